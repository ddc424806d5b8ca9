"""A tensor only one side holds, at its identity value (unit scale, zero bias), is a convention: noted, not refused."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch
from models.port_pairs import PaddleNormNet, TorchNormNet, inputs

import padiff
from padiff.adapters import PADDLE, TORCH
from padiff.errors import WeightAssignError
from padiff.weights.pair_plan import plan_pair


def _plan(p, t):
    return plan_pair("norm", p, PADDLE.raw_state(p), "norm", t, TORCH.raw_state(t))


@pytest.mark.parametrize("paddle_affine", [True, False])
def test_an_identity_scale_and_bias_on_one_side_is_planned_around_with_a_note(paddle_affine):
    p = paddle.nn.LayerNorm(8) if paddle_affine else paddle.nn.LayerNorm(8, weight_attr=False, bias_attr=False)
    t = torch.nn.LayerNorm(8, elementwise_affine=not paddle_affine)
    plan = _plan(p, t)
    assert plan.links == []
    side = "paddle" if paddle_affine else "torch"
    assert len(plan.notes) == 2 and all(n.startswith(f"{side} norm.") and "identity" in n for n in plan.notes)


@pytest.mark.parametrize("name,value", [("weight", 0.5), ("bias", 0.1)])
def test_an_extra_tensor_off_its_identity_is_refused_by_name(name, value):
    p = paddle.nn.LayerNorm(8)
    PADDLE.set_value(getattr(p, name), np.full([8], value, np.float32))
    with pytest.raises(WeightAssignError) as info:
        _plan(p, torch.nn.LayerNorm(8, elementwise_affine=False))
    msg = str(info.value)
    assert f"paddle norm.{name}" in msg and "not at its identity value" in msg


def test_an_extra_torch_tensor_off_its_identity_is_refused_by_name():
    t = torch.nn.LayerNorm(8)
    with torch.no_grad():
        t.bias.fill_(0.25)
    with pytest.raises(WeightAssignError, match=r"torch norm\.bias"):
        _plan(paddle.nn.LayerNorm(8, weight_attr=False, bias_attr=False), t)


def test_a_shared_tensor_still_pairs_and_the_extra_one_is_noted():
    p = paddle.nn.LayerNorm(8)  # weight and bias
    t = torch.nn.LayerNorm(8, bias=False)  # weight only
    plan = _plan(p, t)
    assert [lk.paddle_name for lk in plan.links] == ["weight"]
    assert len(plan.notes) == 1 and "norm.bias" in plan.notes[0]


@pytest.mark.parametrize("paddle_affine", [True, False])
def test_auto_diff_passes_an_affine_free_norm_against_a_default_one(paddle_affine):
    layer, module = PaddleNormNet(paddle_affine), TorchNormNet(not paddle_affine)
    rep = padiff.compare(layer, module, inputs(4, 8), auto_weights=True, layer_map="auto",
                         options={"atol": 1e-5, "rtol": 1e-4})
    assert rep, rep.first_diff
    assert any("identity" in w for w in rep.warnings), rep.warnings  # noted: its gradient is not compared
    assert not any(r.stage == "grad" and r.paddle_path == "norm" for r in rep.records)
    assert any(r.stage == "forward" and (r.paddle_path, r.torch_path) == ("norm", "norm") for r in rep.records)


def test_auto_diff_names_a_norm_whose_extra_bias_is_not_zero():
    layer, module = PaddleNormNet(True), TorchNormNet(False)
    PADDLE.set_value(layer.norm.bias, np.full([8], 0.3, np.float32))
    before = layer.norm.bias.numpy().copy()
    rep = padiff.compare(layer, module, inputs(4, 8), auto_weights=True, layer_map="auto")
    assert not rep
    assert (rep.first_diff.stage, rep.first_diff.paddle_path) == ("assign_weight", "norm")
    assert "paddle norm.bias" in rep.assign_error and "not at its identity value" in rep.assign_error
    np.testing.assert_array_equal(layer.norm.bias.numpy(), before)
    assert not padiff.assign_weight(layer, module)
    np.testing.assert_array_equal(layer.norm.bias.numpy(), before)


@pytest.mark.parametrize("paddle_affine", [True, False])
def test_assign_weight_pairs_around_the_norm_without_a_map(paddle_affine):
    layer, module = PaddleNormNet(paddle_affine), TorchNormNet(not paddle_affine)
    assert padiff.assign_weight(layer, module)


def test_a_fault_in_the_norm_paired_around_is_still_named():
    layer, module = PaddleNormNet(True, epsilon=1e-3), TorchNormNet(False)
    rep = padiff.compare(layer, module, inputs(4, 8), auto_weights=True, layer_map="auto",
                         options={"atol": 1e-5, "rtol": 1e-4})
    assert not rep
    assert (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("forward", "norm", "norm")
