"""Fused against split layers through ``layer_map="auto"``: correct ports pass, faults are named, shapes still fail.

Each case is checked three ways (README "The structural aligner"): the correct port agrees with ``auto_weights=True,
layer_map="auto"``; a fault planted in one torch piece (its output scaled by 1.05) is named at
that piece's pair; a real shape difference still fails. Both directions of fusing, GPT-2's
Conv1D layout, expert stacks and reversed torch definition order are covered.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from models import fused_pairs as fp

import padiff
from padiff.layer_map import LayerMap

TOL = {"atol": 1e-5, "rtol": 1e-4}

CASES: dict[str, Callable[[], fp.Case]] = {
    "qkv_vs_split": fp.attention,
    "qkv_vs_split_reversed": lambda: fp.attention(reverse=True),
    "split_vs_fused_torch": fp.attention_split_paddle,
    "split_reversed_vs_fused_torch": lambda: fp.attention_split_paddle(reverse=True),
    "up_gate_vs_gate_up": fp.up_gate,
    "up_gate_vs_gate_up_reversed": lambda: fp.up_gate(reverse=True),
    "linears_vs_conv1d": fp.conv1d,
    "expert_tensors_vs_expert_list": fp.experts,
    # a compared block whose paddle side returns one output more (router logits) must not blind the layout search
    "qkv_reversed_beside_moe_returning_logits": fp.attention_and_moe_logits,
}


@pytest.mark.parametrize("name", list(CASES))
def test_correct_port_agrees_with_auto_map(name: str) -> None:
    case = CASES[name]()
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is True


def _scale_output(module: object, path: str) -> object:
    return module.get_submodule(path).register_forward_hook(lambda _m, _i, out: out * 1.05)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", list(CASES))
def test_fault_in_one_torch_piece_is_named_at_its_pair(name: str) -> None:
    case = CASES[name]()
    handle = _scale_output(case.torch, case.fault)
    try:
        rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=TOL)
    finally:
        handle.remove()
    assert not bool(rep)
    first = rep.first_diff
    assert first is not None and first.stage == "forward"
    if case.fused is None:  # expert stack: the enclosing block pair holds the faulty expert
        assert (first.paddle_path, first.torch_path) == ("inner", "body")
    elif case.fused[0].startswith("inner"):  # paddle fused, torch split: the faulty part is named
        assert (first.paddle_path, first.torch_path) == (case.fused[0], case.fault)
    else:  # torch fused: named at the fused torch layer and a paddle part
        assert first.torch_path == case.fault and first.paddle_path in case.fused[1]


def test_fused_output_is_compared_slice_by_slice_against_each_part() -> None:
    case = fp.attention(reverse=True)
    rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=TOL)
    fwd = {(r.torch_path, r.item) for r in rep.records if r.stage == "forward" and r.paddle_path == "inner.qkv_proj"}
    assert fwd == {("body.q_proj", "output [0:8] of axis -1"), ("body.k_proj", "output [8:16] of axis -1"),
                   ("body.v_proj", "output [16:24] of axis -1")}
    grads = {r.torch_path for r in rep.records if r.stage == "backward" and r.paddle_path == "inner.qkv_proj"}
    assert grads == {"body.q_proj", "body.k_proj", "body.v_proj"}


def test_parts_are_ordered_by_numbers_not_definition_order() -> None:
    case = fp.attention(reverse=True)  # torch defines v_proj, k_proj, q_proj
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    fused = [p for p in lm.pairs if p.split_side]
    assert [(p.paddle_path, p.torch_parts) for p in fused] == [case.fused]
    assert any("settled numerically" in e for e in fused[0].evidence)


def test_expert_stack_is_one_opaque_block_pair() -> None:
    case = fp.experts()
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    block = [p for p in lm.pairs if p.opaque]
    assert [(p.paddle_path, p.torch_path) for p in block] == [("inner", "body")]
    assert not [u for u in lm.unpaired if u.path.startswith(("inner", "body"))]


def test_real_shape_difference_still_fails_with_auto() -> None:
    case = fp.attention_narrow_key()  # torch's key projection is half as wide
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is False


def test_real_shape_difference_fails_at_the_pair_a_hand_map_states() -> None:
    case = fp.attention_narrow_key()
    single, parts = case.fused  # type: ignore[misc]
    lm = LayerMap.from_dict({"version": 2, "pairs": [{"paddle_path": single, "torch_path": list(parts)}]})
    rep = padiff.compare(case.paddle, case.torch, case.inputs, layer_map=lm, options=TOL)
    assert not bool(rep)
    first = rep.first_diff
    assert first.paddle_path == single and first.torch_path in parts
    assert not padiff.assign_weight(case.paddle, case.torch, lm)  # the weights do not split either


@pytest.mark.parametrize("name", ["qkv_vs_split_reversed", "split_vs_fused_torch", "expert_tensors_vs_expert_list"])
def test_saved_and_loaded_proposal_equals_auto(name: str, tmp_path: object) -> None:
    case = CASES[name]()
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    path = f"{tmp_path}/map.yaml"
    lm.save(path, case.paddle, case.torch)
    loaded = LayerMap.load(path, case.paddle, case.torch)
    assert [p.to_dict() for p in loaded.pairs] == [p.to_dict() for p in lm.pairs]
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=loaded,
                            options=TOL) is True
