"""A layer holding raw weights of its own beside parameter-holding sublayers (X2Paddle's root).

X2Paddle (trace mode) writes torchvision's convolutions as ``paddle.nn`` sublayers and the
classifier ``Linear`` as two ``create_parameter`` tensors on the root read by one
``paddle.matmul``. The root's output is the whole model's, so pairing the root with the torch
``Linear`` compares the wrong tensors; the weights must pair at parameter level instead.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

import padiff

D, HID, MID, OUT = 8, 16, 12, 4
TOL = {"atol": 1e-5, "rtol": 1e-4}
TRUTH = {"mid_weight": "mid.weight", "mid_bias": "mid.bias"}


class PdConverted(paddle.nn.Layer):
    """Sublayers for two Linears, raw root parameters (torch's ``[out, in]`` layout) for the middle one."""

    def __init__(self, mid: int = MID) -> None:
        super().__init__()
        self.linear0 = paddle.nn.Linear(D, HID)
        self.mid_weight = self.create_parameter([mid, HID])
        self.mid_bias = self.create_parameter([mid], is_bias=True)
        self.linear1 = paddle.nn.Linear(mid, OUT)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        h = paddle.nn.functional.relu(self.linear0(x))
        h = paddle.nn.functional.relu(paddle.matmul(h, self.mid_weight, transpose_y=True) + self.mid_bias)
        return self.linear1(h)


class PtOriginal(torch.nn.Module):
    def __init__(self, reverse: bool = False, mid: int = MID) -> None:
        super().__init__()
        dims = {"first": (D, HID), "mid": (HID, mid), "last": (mid, OUT)}
        for name in (reversed(dims) if reverse else dims):
            setattr(self, name, torch.nn.Linear(*dims[name]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(torch.relu(self.mid(torch.relu(self.first(x)))))


def _case(reverse: bool = False, mid: int = MID) -> tuple[PdConverted, PtOriginal, tuple[dict, dict]]:
    paddle.seed(3)
    torch.manual_seed(4)
    x = np.random.default_rng(0).standard_normal((3, D)).astype("float32")
    return PdConverted(mid), PtOriginal(reverse, mid), ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x.copy())})


@pytest.mark.parametrize("reverse", [False, True])
def test_the_root_with_raw_weights_pairs_them_at_parameter_level(reverse: bool) -> None:
    layer, module, inp = _case(reverse)
    lm = padiff.suggest_layer_map(layer, module, inp)
    assert {pp.paddle_param: pp.torch_param for pp in lm.params} == TRUTH
    assert {(p.paddle_path, p.torch_path) for p in lm.pairs} >= {("linear0", "first"), ("linear1", "last")}
    assert all(p.paddle_path != "" for p in lm.pairs if p.torch_path == "mid")
    assert padiff.auto_diff(layer, module, inp, auto_weights=True, layer_map="auto", options=TOL) is True
    assert np.allclose(layer.mid_weight.numpy(), module.mid.weight.detach().numpy())  # torch layout: copied


def test_a_gradient_fault_in_the_middle_layer_is_named_at_its_parameter() -> None:
    layer, module, inp = _case()
    handle = module.mid.weight.register_hook(lambda g: g * 1.05)
    try:
        rep = padiff.compare(layer, module, inp, auto_weights=True, layer_map="auto", options=TOL)
    finally:
        handle.remove()
    assert not bool(rep)
    failing = {r.item for r in rep.records if r.stage == "grad" and not r.stats.passed}
    assert failing == {"mid_weight <-> mid.weight"}


def test_a_real_shape_difference_keeps_no_parameter_pair_and_fails() -> None:
    layer, module, inp = _case()
    module.mid = torch.nn.Linear(HID, MID + 1)  # the original is wider than the conversion
    module.last = torch.nn.Linear(MID + 1, OUT)
    lm = padiff.suggest_layer_map(layer, module, inp)
    assert not lm.params
    assert padiff.auto_diff(layer, module, inp, auto_weights=True, layer_map="auto", options=TOL) is False


def test_a_square_raw_weight_in_torch_layout_is_copied_as_the_ops_read_it() -> None:
    """``matmul(h, w, transpose_y=True)`` with a square ``w``: the shape cannot say ``[out, in]``, the ops can."""
    layer, module, inp = _case(mid=HID)
    lm = padiff.suggest_layer_map(layer, module, inp)
    conv = {pp.paddle_param: pp.conversion for pp in lm.params}
    assert conv["mid_weight"] == "copy"
    assert any("weight layout" in e for pp in lm.params for e in pp.evidence)
    assert padiff.auto_diff(layer, module, inp, auto_weights=True, layer_map="auto", options=TOL) is True
    assert np.allclose(layer.mid_weight.numpy(), module.mid.weight.detach().numpy())
