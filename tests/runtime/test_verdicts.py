"""Verdicts a user can trust: real port bugs fail at their layer, correct ports pass (README "Use").

Each bug is one that signed errors hide from a difference of means: an exact against a
tanh-approximated GELU, a LayerNorm epsilon of 1e-5 against 1e-6, one BatchNorm epsilon
wrong in a conv net. They are checked with the README's float32 tolerances in both modes.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch
from models.basic import inputs, rand

import padiff
from padiff import OptionsError

TOL = {"atol": 1e-5, "rtol": 1e-4}


class PdBlock(paddle.nn.Layer):
    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.fc1 = paddle.nn.Linear(64, 128)
        self.act = paddle.nn.GELU()
        self.fc2 = paddle.nn.Linear(128, 64)
        self.norm = paddle.nn.LayerNorm(64, epsilon=eps)
        self.head = paddle.nn.Linear(64, 8)

    def forward(self, x):
        return self.head(self.norm(self.fc2(self.act(self.fc1(x))) * 0.05))


class PtBlock(torch.nn.Module):
    def __init__(self, eps: float = 1e-6, approximate: str = "none") -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 128)
        self.act = torch.nn.GELU(approximate=approximate)
        self.fc2 = torch.nn.Linear(128, 64)
        self.norm = torch.nn.LayerNorm(64, eps=eps)
        self.head = torch.nn.Linear(64, 8)

    def forward(self, x):
        return self.head(self.norm(self.fc2(self.act(self.fc1(x))) * 0.05))


def _block_input():
    return inputs(("x", "x", rand(4, 16, 64)))


class PdConv(paddle.nn.Layer):
    def __init__(self, eps2: float = 1e-5) -> None:
        super().__init__()
        self.conv1 = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.bn1 = paddle.nn.BatchNorm2D(8)
        self.relu = paddle.nn.ReLU()
        self.conv2 = paddle.nn.Conv2D(8, 8, 3, padding=1)
        self.bn2 = paddle.nn.BatchNorm2D(8, epsilon=eps2)
        self.pool = paddle.nn.AdaptiveAvgPool2D(1)
        self.fc = paddle.nn.Linear(8, 4)

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        return self.fc(self.pool(h).flatten(1))


class PtConv(torch.nn.Module):
    def __init__(self, eps2: float = 1e-5) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.relu = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(8, eps=eps2)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.relu(self.bn2(self.conv2(h)))
        return self.fc(self.pool(h).flatten(1))


def _eval(layer, module):
    layer.eval()
    module.eval()
    return layer, module


CASES = {
    "tanh GELU": (lambda: (PdBlock(), PtBlock(approximate="tanh")), _block_input, ("act", "act")),
    "LayerNorm epsilon": (lambda: (PdBlock(eps=1e-5), PtBlock(eps=1e-6)), _block_input, ("norm", "norm")),
    "BatchNorm epsilon": (lambda: _eval(PdConv(eps2=1e-3), PtConv(eps2=1e-5)),
                          lambda: inputs(("x", "x", rand(2, 3, 8, 8))), ("bn2", "bn2")),
}


@pytest.mark.parametrize("mode", ["mean", "strict"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_planted_bug_fails_at_its_layer_pair(case, mode):
    build, inp, where = CASES[case]
    layer, module = build()
    rep = padiff.compare(layer, module, inp(), auto_weights=True, options={**TOL, "compare_mode": mode})
    assert not rep
    first = rep.first_diff
    assert (first.stage, first.paddle_path, first.torch_path) == ("forward", *where), first
    assert first.stats.mode == mode


@pytest.mark.parametrize("mode", ["mean", "strict"])
@pytest.mark.parametrize("build", [lambda: (PdBlock(), PtBlock()), lambda: _eval(PdConv(), PtConv())],
                         ids=["block", "conv"])
def test_the_correct_port_passes(build, mode):
    layer, module = build()
    shape = (4, 16, 64) if isinstance(layer, PdBlock) else (2, 3, 8, 8)
    rep = padiff.compare(layer, module, inputs(("x", "x", rand(*shape))), auto_weights=True,
                         options={**TOL, "compare_mode": mode})
    assert rep, rep.first_diff


def test_suggested_tolerances_are_complete_settings_that_pass():
    layer, module = PdBlock(), PtBlock(approximate="tanh")
    inp = _block_input()
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={**TOL, "diff_phase": "forward"})
    settings = rep.suggested_tolerances()["float32"]
    assert all(set(s) == {"atol", "rtol"} for s in settings)
    for s in settings:  # each setting on its own makes the same run pass
        again = padiff.compare(layer, module, inp, options={**s, "diff_phase": "forward"})
        assert again, (s, again.first_diff)


def test_mismatch_ratio_is_validated():
    layer, module = PdBlock(), PtBlock()
    with pytest.raises(OptionsError, match="mismatch_ratio"):
        padiff.compare(layer, module, _block_input(), options={"mismatch_ratio": 1.0})
    assert np.isfinite(padiff.DiffOptions.from_mapping({"mismatch_ratio": 1e-4}).mismatch_ratio)


class PdRelu(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = paddle.nn.Linear(4, 128)
        self.act = paddle.nn.ReLU()
        self.head = paddle.nn.Linear(128, 3)

    def forward(self, x):
        return self.head(self.act(self.fc(x)))


class PtRelu(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 128)
        self.act = torch.nn.ReLU()
        self.head = torch.nn.Linear(128, 3)

    def forward(self, x):
        return self.head(self.act(self.fc(x)))


def _flip_pair():
    """One pre-activation element exactly 0 in paddle and 1e-7 above it in torch: its gradient flips."""
    layer, module = PdRelu(), PtRelu()
    x = np.zeros((8, 4), "float32")
    x[:, 0] = np.linspace(1.0, 2.0, 8)
    padiff.assign_weight(layer, module)
    with torch.no_grad():
        module.fc.weight[0].zero_()
        module.fc.bias[0] = 1e-7
    layer.fc.weight.set_value(module.fc.weight.detach().numpy().T.copy())
    bias = module.fc.bias.detach().numpy().copy()
    bias[0] = 0.0
    layer.fc.bias.set_value(bias)
    return layer, module, inputs(("x", "x", x))


@pytest.mark.parametrize("mode", ["mean", "strict"])
def test_a_boundary_flip_is_explained_and_accepted_only_with_mismatch_ratio(mode):
    layer, module, inp = _flip_pair()
    rep = padiff.compare(layer, module, inp, options={**TOL, "compare_mode": mode, "diff_phase": "both"})
    assert not rep
    first = rep.first_diff
    assert (first.stage, first.paddle_path) == ("backward", "fc")
    assert first.stats.flips == 8 and first.note.startswith("boundary flip: 8 of 1024")
    ok = padiff.compare(layer, module, inp, options={**TOL, "compare_mode": mode, "mismatch_ratio": 0.01})
    assert ok, ok.first_diff
    assert any("accepted by mismatch_ratio" in r.note for r in ok.records)


def test_the_op_view_of_a_builtin_layer_points_at_the_models_line_and_reads_momentum_alike():
    layer, module = _eval(PdConv(eps2=1e-3), PtConv(eps2=1e-5))
    rep = padiff.compare(layer, module, inputs(("x", "x", rand(2, 3, 8, 8))), auto_weights=True, options=TOL)
    op = rep.first_diff.op
    assert op is not None and [a[0] for a in op.args] == ["epsilon"]  # paddle's 0.9 is torch's 0.1
    assert "self.bn2(self.conv2(h))" in op.paddle_source and "self.bn2(self.conv2(h))" in op.torch_source
