"""A square weight's orientation is never read from its shape: a forward of the two layers settles it."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch
from models.port_pairs import PaddleRawNet, PaddleRawProj, TorchRawNet, TorchRawProj, inputs

import padiff
from padiff.adapters import PADDLE, TORCH
from padiff.errors import WeightAssignError
from padiff.weights.pair_plan import plan_pair


def _outputs_agree(layer: paddle.nn.Layer, module: torch.nn.Module) -> bool:
    x = inputs(4, 8, seed=1)
    with torch.no_grad():
        want = module(**x[1]).numpy()
    return bool(np.allclose(layer(**x[0]).numpy(), want, atol=1e-5))


# (paddle proj, torch proj, the paddle weight as torch's: transposed or not)
CASES = {
    "raw x@W vs torch Linear": (lambda: PaddleRawProj(False), lambda: torch.nn.Linear(8, 8, bias=False), True),
    "raw x@W.T vs torch Linear": (lambda: PaddleRawProj(True), lambda: torch.nn.Linear(8, 8, bias=False), False),
    "paddle Linear vs raw x@W": (lambda: paddle.nn.Linear(8, 8, bias_attr=False), lambda: TorchRawProj(False), False),
    "paddle Linear vs raw x@W.T": (lambda: paddle.nn.Linear(8, 8, bias_attr=False), lambda: TorchRawProj(True), True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_assign_weight_orients_a_raw_square_weight_as_the_forward_shows(case):
    make_p, make_t, transposed = CASES[case]
    layer, module = PaddleRawNet(make_p()), TorchRawNet(make_t())
    assert padiff.assign_weight(layer, module)
    p_w = next(iter(layer.proj.parameters())).numpy()
    t_w = next(iter(module.proj.parameters())).detach().numpy()
    np.testing.assert_array_equal(p_w, t_w.T if transposed else t_w)
    assert _outputs_agree(layer, module)


@pytest.mark.parametrize("case", sorted(CASES))
def test_auto_diff_passes_each_orientation_and_compares_its_gradient(case):
    make_p, make_t, _ = CASES[case]
    layer, module = PaddleRawNet(make_p()), TorchRawNet(make_t())
    opt = [paddle.optimizer.SGD(0.1, parameters=layer.parameters()), torch.optim.SGD(module.parameters(), 0.1)]
    rep = padiff.compare(layer, module, inputs(4, 8), auto_weights=True, layer_map="auto", steps=2, optimizer=opt,
                         options={"atol": 1e-5, "rtol": 1e-4})
    assert rep, rep.first_diff
    proj = [r for r in rep.records if r.stage in ("grad", "weight") and r.paddle_path == "proj"]
    assert {r.stage for r in proj} == {"grad", "weight"}, proj


def test_the_probe_leaves_both_layers_as_they_were():
    p, t = PaddleRawProj(False), torch.nn.Linear(8, 8, bias=False)
    p.train()
    before_p, before_t = p.w.numpy().copy(), t.weight.detach().numpy().copy()
    plan = plan_pair("", p, PADDLE.raw_state(p), "", t, TORCH.raw_state(t))
    assert "confirmed by a forward" in plan.links[0].conversion and plan.links[0].conversion.startswith("transpose")
    np.testing.assert_array_equal(p.w.numpy(), before_p)
    np.testing.assert_array_equal(t.weight.detach().numpy(), before_t)
    assert p.training and t.training


class _Tanh(PaddleRawProj):
    def forward(self, x):
        return paddle.tanh(super().forward(x))


class _Unused(PaddleRawProj):
    def forward(self, x):
        return x * 2.0


class _TakesTwo(PaddleRawProj):
    def forward(self, x, y):
        return super().forward(x) + y


@pytest.mark.parametrize("cls,said", [(_Tanh, "agree under no orientation"),
                                      (_Unused, "agree under no orientation"),
                                      (_TakesTwo, "could not run the two layers alone")])
def test_no_single_agreeing_orientation_is_refused_with_the_layers_named(cls, said):
    p, t = cls(False), torch.nn.Linear(8, 8, bias=False)
    with pytest.raises(WeightAssignError) as info:
        plan_pair("blk.proj", p, PADDLE.raw_state(p), "blk.q", t, TORCH.raw_state(t))
    msg = str(info.value)
    assert said in msg and "blk.proj" in msg and "blk.q" in msg and "conversion=" in msg


def test_a_weight_unused_on_both_sides_agrees_under_both_and_is_refused():
    class TUnused(torch.nn.Linear):
        def forward(self, x):
            return x * 2.0

    p, t = _Unused(False), TUnused(8, 8, bias=False)
    with pytest.raises(WeightAssignError, match="several orientations"):
        plan_pair("a", p, PADDLE.raw_state(p), "b", t, TORCH.raw_state(t))


def test_in_a_run_the_orientation_is_read_from_equal_values_and_refused_when_they_differ():
    p, t = PaddleRawProj(False), torch.nn.Linear(8, 8, bias=False)
    PADDLE.set_value(p.w, t.weight.detach().numpy().T)
    plan = plan_pair("", p, PADDLE.raw_state(p), "", t, TORCH.raw_state(t), settle="values")
    assert plan.links[0].conversion.startswith("transpose")
    PADDLE.set_value(p.w, t.weight.detach().numpy())
    assert plan_pair("", p, PADDLE.raw_state(p), "", t, TORCH.raw_state(t),
                     settle="values").links[0].conversion.startswith("copy")
    PADDLE.set_value(p.w, np.ones((8, 8), np.float32))
    with pytest.raises(WeightAssignError, match="do not hold the same weights"):
        plan_pair("", p, PADDLE.raw_state(p), "", t, TORCH.raw_state(t), settle="values")
    sym = np.arange(64, dtype=np.float32).reshape(8, 8)
    TORCH.set_value(t.weight, sym + sym.T)
    PADDLE.set_value(p.w, sym + sym.T)
    with pytest.raises(WeightAssignError, match="symmetric"):
        plan_pair("", p, PADDLE.raw_state(p), "", t, TORCH.raw_state(t), settle="values")


@pytest.mark.parametrize("transposed", [False, True])
def test_a_parameter_pair_with_auto_conversion_is_settled_by_the_owners_forward(transposed):
    from padiff.layer_map import LayerMap, ParamPair

    layer, module = PaddleRawNet(PaddleRawProj(transposed)), TorchRawNet(torch.nn.Linear(8, 8, bias=False))
    lm = LayerMap()
    lm.params = [ParamPair("proj.w", "proj.weight")]
    assert padiff.assign_weight(layer, module, lm)
    t_w = module.proj.weight.detach().numpy()
    np.testing.assert_array_equal(layer.proj.w.numpy(), t_w if transposed else t_w.T)
    rep = padiff.compare(layer, module, inputs(4, 8), layer_map=lm, options={"atol": 1e-5, "rtol": 1e-4})
    assert rep, rep.first_diff
    assert any(r.stage == "grad" and r.item == "proj.w <-> proj.weight" for r in rep.records)


def test_a_fault_inside_the_layer_in_doubt_is_named_not_guessed_around():
    layer, module = PaddleRawNet(PaddleRawProj(False, fault=0.02)), TorchRawNet(torch.nn.Linear(8, 8, bias=False))
    rep = padiff.compare(layer, module, inputs(4, 8), auto_weights=True, layer_map="auto")
    assert not rep
    assert (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("assign_weight", "proj",
                                                                                              "proj")
    assert "agree under no orientation" in rep.assign_error


def test_a_fault_after_the_layer_in_doubt_is_named_in_forward():
    class Faulty(PaddleRawNet):
        def forward(self, x):
            return self.out(paddle.tanh(self.proj(x)) + 0.02)

    layer, module = Faulty(PaddleRawProj(False)), TorchRawNet(torch.nn.Linear(8, 8, bias=False))
    rep = padiff.compare(layer, module, inputs(4, 8), auto_weights=True, layer_map="auto",
                         options={"atol": 1e-5, "rtol": 1e-4})
    assert not rep
    assert (rep.first_diff.stage, rep.first_diff.paddle_path) == ("forward", "out")
