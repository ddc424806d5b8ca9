"""Odd models and odd numbers get a correct True or False, with a reason a person can act on."""

from __future__ import annotations

import warnings

import numpy as np
import paddle
import pytest
import torch
from models.basic import DoubleGrad
from reliability._helpers import PNet, TNet, copy_weights, net_pair, pair_inputs, rand

import padiff
from padiff.adapters import PADDLE, TORCH
from padiff.compare.arrays import compare_arrays

OPTS = {"atol": 1e-6}


def _pair(p_cls, t_cls, **arrays):
    layer, module = p_cls(), t_cls()
    copy_weights(layer, module)
    return layer, module, pair_inputs(**(arrays or {"x": rand(3, 4)}))


# --- outputs of different structure --------------------------------------------------------
class _PTwoOut(PNet):
    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(paddle.tanh(h)), h


class _PDict(PNet):
    def forward(self, x):
        h = self.fc1(x)
        return {"out": self.fc2(paddle.tanh(h)), "hidden": h}


class _TDictReordered(TNet):
    def forward(self, x):
        h = self.fc1(x)
        return {"hidden": h, "out": self.fc2(torch.tanh(h))}


class _TDictOtherKeys(TNet):
    def forward(self, x):
        h = self.fc1(x)
        return {"logits": self.fc2(torch.tanh(h))}


def test_more_outputs_on_one_side_is_a_structure_mismatch():
    rep = padiff.compare(*_pair(_PTwoOut, TNet), options=OPTS)
    assert not rep
    first = rep.first_diff
    assert (first.stage, first.item) == ("forward", "model output")
    assert "structure mismatch: paddle gives 2 tensor(s), torch gives 1" in first.note


def test_dict_outputs_are_paired_by_key_not_by_insertion_order():
    rep = padiff.compare(*_pair(_PDict, _TDictReordered), options=OPTS)
    assert rep, rep.first_diff
    assert len([r for r in rep.by_stage("forward") if r.item.startswith("model output")]) == 2


def test_dict_outputs_with_different_keys_and_counts_fail():
    rep = padiff.compare(*_pair(_PDict, _TDictOtherKeys), options=OPTS)
    assert not rep and "structure mismatch" in rep.first_diff.note


# --- NaN and Inf -------------------------------------------------------------------------------
@pytest.mark.parametrize("value, note", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "inf")])
def test_nan_or_inf_in_the_input_is_never_agreement(value, note):
    layer, module, _ = net_pair()
    x = rand(3, 4)
    x[1, 2] = value
    rep = padiff.compare(layer, module, pair_inputs(x=x), options=OPTS)
    assert not rep
    assert (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.note) == ("forward", "fc1", note)


@pytest.mark.parametrize("mode", ["mean", "strict"])
def test_the_same_inf_on_both_sides_is_still_reported(mode):
    a = np.array([[1.0, np.inf], [2.0, -np.inf]], dtype="float32")
    stats = compare_arrays(a, a.copy(), atol=1.0, rtol=1.0, mode=mode)
    assert not stats.passed and stats.note == "inf" and stats.mismatched >= 2
    assert stats.min_atol == np.inf  # no tolerance can make it agree


def test_nan_in_both_tensors_is_never_agreement():
    a = np.array([np.nan, 1.0], dtype="float32")
    for mode in ("mean", "strict"):
        stats = compare_arrays(a, a.copy(), atol=10.0, rtol=10.0, mode=mode)
        assert not stats.passed and stats.note == "nan"


class _PSqrt(PNet):
    def forward(self, x):
        return paddle.sqrt(self.fc2(paddle.tanh(self.fc1(x))) * 0.0)  # forward 0, backward NaN (0 * inf)


class _TSqrt(TNet):
    def forward(self, x):
        return torch.sqrt(self.fc2(torch.tanh(self.fc1(x))) * 0.0)


def test_nan_only_in_the_backward_pass_is_reported_there():
    rep = padiff.compare(*_pair(_PSqrt, _TSqrt), options=OPTS)
    assert not rep
    assert all(r.passed for r in rep.by_stage("forward"))
    assert rep.first_diff.stage == "backward" and rep.first_diff.note == "nan"


def test_nan_in_a_weight_is_reported():
    layer, module, inp = net_pair()
    with torch.no_grad():
        module.fc2.bias[0] = float("inf")
    layer.fc2.bias.set_value(module.fc2.bias.detach().numpy())
    rep = padiff.compare(layer, module, inp, options=OPTS)
    assert not rep and rep.first_diff.paddle_path == "fc2" and rep.first_diff.note in ("inf", "nan")


# --- models without parameters -----------------------------------------------------------------
class _PNoParams(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.act = paddle.nn.Softmax(-1)

    def forward(self, x):
        return self.act(paddle.tanh(x) * 3.0) * x


class _TNoParams(torch.nn.Module):
    def __init__(self, factor: float = 3.0):
        super().__init__()
        self.act = torch.nn.Softmax(-1)
        self.factor = factor

    def forward(self, x):
        return self.act(torch.tanh(x) * self.factor) * x


def test_models_without_parameters_are_compared_forward_and_backward():
    inp = pair_inputs(x=rand(3, 4))
    rep = padiff.compare(_PNoParams(), _TNoParams(), inp, options=OPTS)
    assert rep, rep.first_diff
    assert {"forward", "backward"} <= {r.stage for r in rep.records}
    assert any("no trainable parameter" in w for w in rep.warnings)
    assert inp[0]["x"].stop_gradient and not inp[1]["x"].requires_grad  # put back
    assert inp[0]["x"].grad is None and inp[1]["x"].grad is None


def test_a_parameter_free_model_that_differs_is_found():
    class TDiff(_TNoParams):
        def __init__(self):
            super().__init__(factor=3.01)

    rep = padiff.compare(_PNoParams(), TDiff(), pair_inputs(x=rand(3, 4)), options=OPTS)
    assert not rep and rep.first_diff.stage == "forward"
    grads = [r for r in rep.by_stage("backward") if r.item == "grad of input"]
    assert grads and not grads[0].passed


def test_a_backward_only_difference_of_a_parameter_free_model_is_found_in_the_input_grad():
    class TBadGrad(torch.nn.Module):
        def forward(self, x):
            return torch.tanh(DoubleGrad.apply(x)) * 3.0

    class PSame(paddle.nn.Layer):
        def forward(self, x):
            return paddle.tanh(x) * 3.0

    rep = padiff.compare(PSame(), TBadGrad(), pair_inputs(x=rand(3, 4)), options=OPTS)
    assert not rep
    assert (rep.first_diff.stage, rep.first_diff.item) == ("backward", "grad of input")


def test_inputs_that_require_grad_have_their_grads_compared():
    layer, module, (p, t) = net_pair()
    p["x"].stop_gradient = False
    t["x"].requires_grad_(True)
    rep = padiff.compare(layer, module, (p, t), options=OPTS)
    assert rep
    assert [r.item for r in rep.by_stage("backward") if r.paddle_path == ""] == ["grad of input"]


# --- dtypes --------------------------------------------------------------------------------------
class _PDouble(PNet):
    def __init__(self):
        super().__init__()
        self.fc1 = paddle.nn.Linear(4, 6)
        self.fc2 = paddle.nn.Linear(6, 3)
        self.to(dtype="float64")


def test_float64_is_compared_in_float64():
    layer, module = _PDouble(), TNet().double()
    copy_weights(layer, module)
    rep = padiff.compare(layer, module, pair_inputs(x=rand(3, 4, dtype="float64")), options={"atol": 1e-12})
    assert rep, rep.first_diff
    assert {r.dtype for r in rep.by_stage("forward")} == {"float64"}


class _HalfLinear(paddle.nn.Linear):
    """Paddle has no CPU float16 matmul: the half weights are widened for the product."""

    def forward(self, x):
        w, b = self.weight.astype("float32"), self.bias.astype("float32")
        return paddle.nn.functional.linear(x.astype("float32"), w, b).astype(self.weight.dtype)


class _PHalf(paddle.nn.Layer):
    def __init__(self, dtype: str):
        super().__init__()
        self.fc = _HalfLinear(4, 3)
        self.to(dtype=dtype)

    def forward(self, x):
        return self.fc(x)


class _THalf(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return (self.fc(x) + 1.0) - 1.0  # computed in half: rounds where paddle's float32 result does not


def _half_pair(dtype: str):
    layer, module = _PHalf(dtype), _THalf()
    module.to(getattr(torch, dtype))
    copy_weights(layer, module)
    x = rand(3, 4)
    p = paddle.to_tensor(x).astype(dtype)
    t = torch.tensor(x).to(getattr(torch, dtype))
    return layer, module, ({"x": p}, {"x": t})


@pytest.mark.parametrize("dtype, rtol", [("float16", 1e-3), ("bfloat16", 1.6e-2)])
def test_half_types_are_compared_in_float32_and_the_report_says_so(dtype, rtol):
    layer, module, inp = _half_pair(dtype)
    tight = padiff.compare(layer, module, inp, options={"compare_mode": "strict"})
    assert not tight  # half rounding on the torch side only
    assert all(r.dtype == dtype for r in tight.records if r.stage in ("forward", "grad"))
    warning = next(w for w in tight.warnings if w.startswith(dtype))
    assert "compared in float32" in warning and f"'rtol': {rtol:g}" in warning
    loose = padiff.compare(layer, module, inp, options={"atol": 2 * rtol, "rtol": 2 * rtol, "compare_mode": "strict"})
    assert loose, loose.first_diff
    assert [w for w in loose.warnings if w.startswith(dtype)] == [
        f"{dtype} tensors were compared in float32 (both sides widened, means in float64)."]


def test_half_tensors_widen_to_float32_on_both_sides():
    x = rand(2, 3)
    for dtype in ("float16", "bfloat16"):
        p = PADDLE.to_numpy(paddle.to_tensor(x).astype(dtype))
        t = TORCH.to_numpy(torch.tensor(x).to(getattr(torch, dtype)))
        assert p.dtype == np.float32 and t.dtype == np.float32
        np.testing.assert_array_equal(p, t)  # the same rounding on both sides


class _PEmbed(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.emb = paddle.nn.Embedding(10, 4)
        self.fc = paddle.nn.Linear(4, 2)

    def forward(self, ids, scale):
        return self.fc(self.emb(ids)) * scale


class _TEmbed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, ids, scale):
        return self.fc(self.emb(ids)) * scale


def test_int_inputs_and_python_scalars():
    layer, module = _PEmbed(), _TEmbed()
    copy_weights(layer, module)
    ids = np.array([[1, 2, 3], [4, 5, 9]], dtype="int64")
    inp = ({"ids": paddle.to_tensor(ids), "scale": 2}, {"ids": torch.tensor(ids), "scale": 2})
    rep = padiff.compare(layer, module, inp, options=OPTS)
    assert rep, rep.first_diff
    assert ("emb", "weight") in {(r.paddle_path, r.item) for r in rep.by_stage("grad")}


def test_int_outputs_are_compared_exactly():
    class PArg(PNet):
        def forward(self, x):
            return paddle.argmax(super().forward(x), axis=-1)

    class TArg(TNet):
        def forward(self, x):
            return torch.argmax(super().forward(x), dim=-1) + 1  # off by one

    rep = padiff.compare(*_pair(PArg, TArg), options={**OPTS, "diff_phase": "forward", "compare_mode": "strict"})
    assert not rep and rep.first_diff.item == "model output" and rep.first_diff.mismatched == 3


# --- reuse, in-place, no_grad ----------------------------------------------------------------------
class _PReuse(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.cell = paddle.nn.Linear(4, 4)
        self.head = paddle.nn.Linear(4, 2)

    def forward(self, x):
        for _ in range(3):
            x = paddle.tanh(self.cell(x))
        return self.head(x)


class _TReuse(torch.nn.Module):
    def __init__(self, bad_call: int = -1):
        super().__init__()
        self.step = torch.nn.Linear(4, 4)
        self.out = torch.nn.Linear(4, 2)
        self.bad_call = bad_call

    def forward(self, x):
        for i in range(3):
            x = torch.tanh(self.step(x))
            if i == self.bad_call:
                x = x * 1.01
        return self.out(x)


def test_a_layer_reused_several_times_is_compared_at_each_call():
    rep = padiff.compare(*_pair(_PReuse, _TReuse), options=OPTS)
    assert rep, rep.first_diff
    assert [r.call for r in rep.by_stage("forward") if r.paddle_path == "cell"] == [0, 1, 2]


def test_a_fault_after_the_second_call_names_the_third_call():
    layer, module = _PReuse(), _TReuse(bad_call=1)
    copy_weights(layer, module)
    rep = padiff.compare(layer, module, pair_inputs(x=rand(3, 4)), options=OPTS)
    assert not rep
    assert (rep.first_diff.paddle_path, rep.first_diff.torch_path, rep.first_diff.call) == ("cell", "step", 2)


class _PInplace(PNet):
    def forward(self, x):
        h = self.fc1(x)
        h.scale_(2.0)
        h.add_(paddle.full_like(h, -0.5))
        h = paddle.nn.functional.relu_(h)
        return self.fc2(h)


class _TInplace(TNet):
    def __init__(self):
        super().__init__()
        self.act = torch.nn.ReLU(inplace=True)

    def forward(self, x):
        h = self.fc1(x)
        h.mul_(2.0)
        h -= 0.5
        return self.fc2(self.act(h))


@pytest.mark.parametrize("single_step", [False, True])
def test_in_place_ops_after_a_layer_do_not_corrupt_its_recorded_output(single_step):
    rep = padiff.compare(*_pair(_PInplace, _TInplace), options={**OPTS, "single_step": single_step})
    assert rep, rep.first_diff
    fc1 = next(r for r in rep.by_stage("forward") if r.paddle_path == "fc1")
    assert fc1.passed and fc1.total == 18
    assert ("fc1", "weight") in {(r.paddle_path, r.item) for r in rep.by_stage("grad")}


def test_in_place_fault_is_found_at_the_next_layer():
    class TInplaceBad(_TInplace):
        def forward(self, x):
            h = self.fc1(x)
            h.mul_(2.01)
            h -= 0.5
            return self.fc2(self.act(h))

    rep = padiff.compare(*_pair(_PInplace, TInplaceBad), options=OPTS)
    assert not rep and rep.first_diff.paddle_path == "fc2"  # fc1 itself agreed


class _PNoGrad(PNet):
    def forward(self, x):
        with paddle.no_grad():
            h = self.fc1(x)
        return self.fc2(paddle.tanh(h))


class _TNoGrad(TNet):
    def forward(self, x):
        with torch.no_grad():
            h = self.fc1(x)
        return self.fc2(torch.tanh(h))


def test_no_grad_regions_inside_forward():
    rep = padiff.compare(*_pair(_PNoGrad, _TNoGrad), options=OPTS)
    assert rep, rep.first_diff
    assert "fc1" in {r.paddle_path for r in rep.by_stage("forward")}
    grads = {r.paddle_path for r in rep.by_stage("grad")}
    assert "fc2" in grads and "fc1" not in grads  # no gradient reaches fc1 on either side


def test_no_grad_on_one_side_only_is_a_difference():
    rep = padiff.compare(*_pair(PNet, _TNoGrad), options=OPTS)
    assert not rep
    assert rep.first_diff.stage in ("backward", "grad") and rep.first_diff.paddle_path == "fc1"


def test_whole_forward_under_no_grad_says_what_to_do():
    class TAllNoGrad(TNet):
        def forward(self, x):
            with torch.no_grad():
                return super().forward(x)

    with pytest.raises(padiff.ModelRunError, match="diff_phase': 'forward'"):
        padiff.compare(*_pair(PNet, TAllNoGrad), options=OPTS)


# --- randomness ----------------------------------------------------------------------------------
class _PDrop(PNet):
    def __init__(self):
        super().__init__()
        self.drop = paddle.nn.Dropout(0.5)

    def forward(self, x):
        return self.fc2(self.drop(paddle.tanh(self.fc1(x))))


class _TDrop(TNet):
    def __init__(self):
        super().__init__()
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        return self.fc2(self.drop(torch.tanh(self.fc1(x))))


def test_dropout_layers_in_train_mode_are_warned_about():
    rep = padiff.compare(*_pair(_PDrop, _TDrop), options=OPTS)
    msgs = [w for w in rep.warnings if "train mode" in w]
    assert any(w.startswith("paddle drop (Dropout, p=0.5)") for w in msgs)
    assert any(w.startswith("torch drop (Dropout, p=0.5)") for w in msgs)
    assert all(".eval()" in w and "p=0" in w for w in msgs)


def test_dropout_in_eval_mode_agrees_without_warning():
    layer, module, inp = _pair(_PDrop, _TDrop)
    layer.eval()
    module.eval()
    rep = padiff.compare(layer, module, inp, options=OPTS)
    assert rep, rep.first_diff
    assert not rep.warnings


class _PFuncDrop(PNet):
    def forward(self, x):
        h = paddle.nn.functional.dropout(paddle.tanh(self.fc1(x)), 0.3, training=self.training)
        return self.fc2(h)


class _TFuncDrop(TNet):
    def forward(self, x):
        return self.fc2(torch.nn.functional.dropout(torch.tanh(self.fc1(x)), 0.3, training=self.training))


def test_functional_dropout_in_train_mode_is_detected_when_results_differ():
    layer, module, inp = _pair(_PFuncDrop, _TFuncDrop)
    rep = padiff.compare(layer, module, inp, options=OPTS)
    assert not rep
    assert any("calls dropout" in w and ".eval()" in w for w in rep.warnings)
    layer.eval()
    module.eval()
    assert padiff.compare(layer, module, inp, options=OPTS)


def test_random_noise_in_forward_is_detected():
    class TNoise(TNet):
        def forward(self, x):
            return super().forward(x) + 0.01 * torch.randn(3, 3)

    layer, module, inp = _pair(PNet, TNoise)
    module.eval()
    layer.eval()
    rep = padiff.compare(layer, module, inp, options=OPTS)
    assert not rep and any("calls randn" in w for w in rep.warnings)


def test_a_real_difference_in_train_mode_is_not_blamed_on_randomness():
    layer, module, inp = net_pair()
    with torch.no_grad():
        module.fc2.bias.add_(0.1)
    rep = padiff.compare(layer, module, inp, options=OPTS)
    assert not rep and not rep.warnings


def test_empty_outputs_agree_and_do_not_make_a_nan_loss():
    class PEmpty(PNet):
        def forward(self, x):
            out = super().forward(x)
            return out, out[:0]

    class TEmpty(TNet):
        def forward(self, x):
            out = super().forward(x)
            return out, out[:0]

    rep = padiff.compare(*_pair(PEmpty, TEmpty), options=OPTS)
    assert rep, rep.first_diff
    assert [r.note for r in rep.by_stage("forward") if r.item == "model output[1]"] == ["empty"]


def test_outputs_on_one_side_only_are_a_structure_mismatch():
    class PNone(PNet):
        def forward(self, x):
            super().forward(x)

    rep = padiff.compare(*_pair(PNone, TNet), options={**OPTS, "diff_phase": "forward"})
    assert not rep and "paddle gives 0 tensor(s), torch gives 1" in rep.first_diff.note


def test_a_frozen_model_is_compared_through_its_layer_and_input_gradients():
    layer, module, inp = net_pair()
    for p in layer.parameters():
        p.stop_gradient = True
    for p in module.parameters():
        p.requires_grad_(False)
    rep = padiff.compare(layer, module, inp, options=OPTS)
    assert rep, rep.first_diff
    assert not rep.by_stage("grad")  # no parameter gradient exists on either side
    assert {r.paddle_path for r in rep.by_stage("backward")} >= {"fc1", "fc2", ""}
    assert any("no trainable parameter" in w for w in rep.warnings)
    assert all(p.stop_gradient for p in layer.parameters())
    assert not any(p.requires_grad for p in module.parameters())


@pytest.mark.parametrize("imag_scale, agree", [(1.0, True), (1.01, False)])
def test_complex_outputs_are_compared_with_their_imaginary_part(imag_scale, agree):
    class PComplex(PNet):
        def forward(self, x):
            out = super().forward(x)
            return out, paddle.complex(out, out)

    class TComplex(TNet):
        def forward(self, x):
            out = super().forward(x)
            return out, torch.complex(out, out * imag_scale)

    for mode in ("mean", "strict"):
        rep = padiff.compare(*_pair(PComplex, TComplex), options={**OPTS, "compare_mode": mode})
        assert bool(rep) == agree, rep.first_diff
        if not agree:
            assert rep.first_diff.item == "model output[1]"


def test_complex_comparison_never_warns():
    a = np.array([1 + 2j, 3 - 1j], dtype=np.complex64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compare_arrays(a, a.copy(), 0.0, 0.0, "strict").passed
        assert not compare_arrays(a, a.conj(), 0.0, 0.0, "mean").passed  # only the imaginary part differs


def test_sparse_outputs_are_compared_as_dense_values():
    class PSparse(PNet):
        def forward(self, x):
            out = super().forward(x)
            return out, paddle.nn.functional.relu(out).to_sparse_coo(2)

    class TSparse(TNet):
        def forward(self, x):
            out = super().forward(x)
            return out, torch.relu(out).to_sparse()

    loss = [lambda o: o[0].mean(), lambda o: o[0].mean()]  # the built-in loss cannot average a sparse tensor
    rep = padiff.compare(*_pair(PSparse, TSparse), loss_fn=loss, options=OPTS)
    assert rep, rep.first_diff
    assert [r.total for r in rep.by_stage("forward") if r.item == "model output[1]"] == [9]


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
def test_quantized_torch_tensors_are_dequantized():
    t = torch.quantize_per_tensor(torch.tensor([0.5, 1.0, -1.0]), scale=0.5, zero_point=0, dtype=torch.qint8)
    np.testing.assert_array_equal(TORCH.to_numpy(t), [0.5, 1.0, -1.0])


def test_randomness_on_the_paddle_side_only_is_detected():
    layer, module, inp = _pair(_PFuncDrop, TNet)  # the port forgot the dropout
    rep = padiff.compare(layer, module, inp, options=OPTS)
    assert not rep
    assert any(w.startswith("the paddle model gives different outputs for different random seeds")
               for w in rep.warnings)


def test_nan_in_the_loss_and_in_trained_weights_is_reported_in_those_stages():
    layer, module, inp = net_pair()
    nan_loss = [lambda o: o.mean() * float("nan"), lambda o: o.mean() * float("nan")]
    rep = padiff.compare(layer, module, inp, loss_fn=nan_loss, options={**OPTS, "diff_phase": "forward"})
    assert not rep and (rep.first_diff.stage, rep.first_diff.note) == ("loss", "nan")

    layer, module, inp = net_pair()
    opts = [paddle.optimizer.SGD(float("inf"), parameters=layer.parameters()),
            torch.optim.SGD(module.parameters(), lr=float("inf"))]
    rep = padiff.compare(layer, module, inp, optimizer=opts, options=OPTS)
    assert not rep
    assert rep.first_diff.stage == "weight" and rep.first_diff.note in ("nan", "inf")
    assert all(r.passed for r in rep.records if r.stage != "weight")


def test_nothing_compared_is_not_a_silent_true():
    class PSilent(paddle.nn.Layer):
        def forward(self, x, sink):
            sink.append(paddle.tanh(x))

    class TSilent(torch.nn.Module):
        def forward(self, x, sink):
            sink.append(torch.tanh(x) * 2)  # differs, but padiff cannot see it

    a = rand(3, 4)
    inp = ({"x": paddle.to_tensor(a), "sink": []}, {"x": torch.tensor(a), "sink": []})
    for phase in ("forward", "both"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # e.g. torch's non-leaf .grad warning
            rep = padiff.compare(PSilent(), TSilent(), inp, options={"diff_phase": phase})
        assert not rep and "nothing was compared" in rep.first_diff.note
        assert rep.first_diff.stats.min_atol == np.inf  # no tolerance makes it pass
