"""An opaque pair's weight copy: the pairs inside it place their tensors, not definition order.

The block is a paddle router plus a list of expert MLPs against a torch block holding the
experts as two 3-D tensors, the torch experts defined *before* the router. Paired as one
opaque block, the subtrees' tensors inferred together follow definition order and fail; a
pair stated inside the block (router <-> router) decides where its tensors go and only the
expert stacks are left to the shape inference.
"""

from __future__ import annotations

import pytest

import padiff
from padiff.layer_map import LayerMap, LayerPair
from tests.models import fused_pairs as fp

TOL = dict(atol=1e-5, rtol=1e-4)


def _map(inner: bool = True) -> LayerMap:
    """The block as one opaque pair, with (by default) the pairs a person finds inside it."""
    pairs = [LayerPair("inner", "body", opaque=True)]
    if inner:
        split = ("body.shared_expert.gate_proj", "body.shared_expert.up_proj")
        pairs += [LayerPair("inner.gate", "body.router"),
                  LayerPair("inner.shared_expert.up_gate_proj", split[0], torch_parts=split),
                  LayerPair("inner.shared_expert.down_proj", "body.shared_expert.down_proj")]
    return LayerMap(pairs)


def test_block_with_reversed_torch_order_copies_through_the_pair_inside() -> None:
    case = fp.shared_expert_moe(reverse=True)
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=_map(),
                            options=TOL) is True


def test_block_with_reversed_torch_order_and_no_pair_inside_is_not_guessed_right() -> None:
    """Without the inner pair, definition order is all the copy has: it does not copy this block."""
    case = fp.shared_expert_moe(reverse=True)
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=_map(inner=False),
                            options=TOL) is False


def test_auto_map_on_the_reversed_block_passes() -> None:
    case = fp.shared_expert_moe(reverse=True)
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is True


def test_fault_in_the_torch_experts_is_named_at_the_block() -> None:
    case = fp.shared_expert_moe(reverse=True)
    handle = case.torch.get_submodule("body.experts").register_forward_hook(lambda _m, _i, out: out * 1.05)
    try:
        rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=_map(), options=TOL)
    finally:
        handle.remove()
    assert rep.first_diff is not None
    assert (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("forward", "inner", "body")


def test_router_gradients_are_compared_through_the_block_plan() -> None:
    """The block's parameter comparison uses the same plan: a torch router gradient scaled is a grad difference."""
    case = fp.shared_expert_moe(reverse=True)
    router = case.torch.get_submodule("body.router")
    handle = router.weight.register_hook(lambda g: g * 1.5)
    try:
        rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=_map(), options=TOL)
    finally:
        handle.remove()
    assert not rep
    failed = [(r.stage, r.paddle_path, r.item) for r in rep.records if not r.passed]
    assert failed == [("grad", "inner", "gate.weight")]


@pytest.mark.parametrize("reverse", [False, True], ids=["as-built", "reversed"])
def test_auto_map_pairs_router_and_shared_expert_inside_the_moe_and_the_expert_stack_as_a_block(reverse: bool) -> None:
    """Equal shapes made the one-to-one match pair expert Linears with shared-expert ones; the proposal does not."""
    case = fp.shared_expert_moe(reverse=reverse)
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    got = {(p.paddle_path, p.torch_parts or p.torch_path, p.opaque) for p in lm.pairs
           if p.paddle_path.startswith("inner")}
    assert got == {("inner.gate", "body.router", False),
                   ("inner.shared_expert.up_gate_proj", ("body.shared_expert.gate_proj", "body.shared_expert.up_proj"),
                    False),
                   ("inner.shared_expert.down_proj", "body.shared_expert.down_proj", False),
                   ("inner.experts", "body.experts", True),
                   ("inner", "body", False)}  # compared for the expert list, which is never called itself


def test_fault_in_the_torch_experts_with_the_auto_map_is_named_at_the_pair_compared_for_them() -> None:
    case = fp.shared_expert_moe(reverse=True)
    handle = case.torch.get_submodule("body.experts").register_forward_hook(lambda _m, _i, out: out * 1.05)
    try:
        rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=TOL)
    finally:
        handle.remove()
    passed = {r.paddle_path for r in rep.records if r.stage == "forward" and r.passed}
    assert rep.first_diff is not None
    assert (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("forward", "inner", "body")
    assert {"inner.gate", "inner.shared_expert.down_proj"} <= passed  # the pairs inside still agree


def test_a_router_returning_probabilities_against_a_gate_returning_logits_pairs_by_weights_only() -> None:
    """The softmax runs inside the torch router and after the paddle gate: the pair copies weights, no outputs."""
    case = fp.scoring_router_experts()
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    gate = next(p for p in lm.pairs if p.paddle_path == "inner.gate")
    assert (gate.torch_path, gate.compare_output) == ("body.router", False)
    assert any("Softmax" in e for e in gate.evidence)
    case = fp.scoring_router_experts()
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is True
