"""compare_mode="calibrated": each record judged against a float64 run of the torch model, in units of
torch's own rounding; correct ports pass with no tolerance given, planted faults fail at their pair."""

from __future__ import annotations

import math

import pytest
import torch
from models.calibrated_pairs import FAULT_AT, FAULTS, adamw_pair, bf16_block_pair, block_pair, conv_in_pair

import padiff
from padiff.compare.calibrated import K
from padiff.errors import OptionsError

CAL = {"compare_mode": "calibrated"}


def _ratios(report: padiff.DiffReport) -> list[float]:
    return [r.stats.noise_ratio for r in report.records if not math.isnan(r.stats.noise_ratio)]


def test_a_correct_float32_port_passes_with_no_tolerance_and_every_record_carries_both_errors():
    layer, module, inp = block_pair()
    report = padiff.compare(layer, module, inp, auto_weights=True, options=CAL)
    assert report, report.first_diff
    stages = {r.stage for r in report.records}
    assert {"forward", "loss", "backward", "grad"} <= stages
    for r in report.records:
        assert r.stats.mode == "calibrated" and r.stats.noise_ratio <= K, r
        assert r.stats.torch_error >= 0 and r.stats.paddle_error >= 0
    assert max(_ratios(report)) < K / 2  # the margin of correct ports (README: how k was chosen)
    # the same run under the default tolerances fails: rounding alone exceeds rtol 1e-7
    layer, module, inp = block_pair()
    assert not padiff.compare(layer, module, inp, auto_weights=True)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_planted_fault_fails_at_its_pair(fault):
    layer, module, inp = block_pair(fault)
    report = padiff.compare(layer, module, inp, auto_weights=True, options=CAL)
    assert not report
    first = report.first_diff
    assert (first.stage, first.torch_path) == ("forward", FAULT_AT[fault])
    assert first.stats.noise_ratio > 2 * K  # the margin of faults
    assert "torch's own rounding" in first.note and "above the allowed" in first.note
    text = report.summary()  # the terminal report speaks in units of torch's own rounding
    assert "noise ratio       paddle error" in text and "largest noise ratio: paddle error" in text
    assert "Suggested tolerances" not in text  # a calibrated verdict uses none


def test_the_torch_model_is_left_as_it_was():
    layer, module, inp = block_pair()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    padiff.compare(layer, module, inp, auto_weights=True, options=CAL)
    after = module.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())


def test_a_bfloat16_port_is_judged_by_bfloat16_noise():
    layer, module, inp = bf16_block_pair()
    report = padiff.compare(layer, module, inp, options=CAL)
    assert report, report.first_diff
    assert any(r.dtype == "bfloat16" for r in report.records)
    layer, module, inp = bf16_block_pair("sqrt_d")
    report = padiff.compare(layer, module, inp, options=CAL)
    assert not report and report.first_diff.torch_path == "proj"


def test_adamw_on_biases_with_zero_true_gradient_passes_with_its_note():
    layer, module, inp = conv_in_pair()
    padiff.assign_weight(layer, module)
    report = padiff.compare(layer, module, inp, steps=3, optimizer=adamw_pair(layer, module), options=CAL)
    assert report, report.first_diff
    noisy = [r for r in report.records if r.stage == "weight" and r.torch_path in ("conv1", "conv2")
             and r.item == "bias"]
    assert len(noisy) == 6
    assert all("update driven by rounding-level gradients on both sides" in r.note for r in noisy)
    grads = [r for r in report.records if r.stage == "grad" and r.item == "bias" and r.torch_path == "conv1"]
    assert all(r.stats.note_kind == "noise" for r in grads)
    # what the calibrated verdict replaces: the port-check tolerances call these updates a difference
    layer, module, inp = conv_in_pair()
    padiff.assign_weight(layer, module)
    report = padiff.compare(layer, module, inp, steps=3, optimizer=adamw_pair(layer, module),
                            options={"atol": 1e-5, "rtol": 1e-4})
    assert not report and (report.first_diff.stage, report.first_diff.item) == ("weight", "bias")


def test_without_a_float64_run_records_fall_back_and_say_why():
    layer, module, inp = conv_in_pair()
    padiff.assign_weight(layer, module)
    p_opt, t_opt = adamw_pair(layer, module)

    def t_step() -> None:  # a callable cannot be rebuilt on the float64 copy
        t_opt.step()
        t_opt.zero_grad()

    def p_step() -> None:
        p_opt.step()
        p_opt.clear_grad()

    report = padiff.compare(layer, module, inp, steps=2, optimizer=[p_step, t_step], options=CAL)
    weights = [r for r in report.records if r.stage == "weight"]
    assert weights and all(r.stats.note_kind == "fallback" and "optimizer is a callable" in r.note for r in weights)
    assert all(r.stats.mode == "calibrated" for r in report.records if r.step == 0 and r.stage == "forward")


class _Float32Only(torch.nn.Module):
    """A torch op with no float64 kernel, as some fused or quantised kernels are."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        if self.fc.weight.dtype != torch.float32:
            raise RuntimeError("no float64 kernel")
        return self.fc(x)


def test_a_model_the_float64_copy_cannot_run_falls_back_and_says_so():
    import paddle

    class PaddleOne(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.fc = paddle.nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x)

    layer, module = PaddleOne(), _Float32Only()
    x = torch.randn(2, 4)
    report = padiff.compare(layer, module, ({"x": paddle.to_tensor(x.numpy())}, {"x": x}), auto_weights=True,
                            options=CAL)
    assert report
    assert all(r.stats.note_kind == "fallback" and "RuntimeError: no float64 kernel" in r.note
               for r in report.records)


def test_calibrated_does_not_combine_with_single_step():
    with pytest.raises(OptionsError, match="cannot be combined with single_step"):
        padiff.compare(*block_pair(), options={**CAL, "single_step": True})


def test_a_model_that_cannot_be_copied_falls_back_and_says_so():
    import threading

    import paddle

    class PaddleOne(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.fc = paddle.nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x)

    class TorchLocked(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)
            self.lock = threading.Lock()  # deepcopy cannot copy a lock

        def forward(self, x):
            return self.fc(x)

    x = torch.randn(2, 4)
    report = padiff.compare(PaddleOne(), TorchLocked(), ({"x": paddle.to_tensor(x.numpy())}, {"x": x}),
                            auto_weights=True, options=CAL)
    assert report
    assert all("the torch model could not be copied to float64" in r.note for r in report.records)
