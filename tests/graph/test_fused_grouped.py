"""Fused pairs interleaved per group, and parts that feed different layers (real ports).

paddleformers' ERNIE 4.5 and Qwen2 fuse q/k/v per key-value head (``[q_0, k_0, v_0, q_1, ...]``),
not as ``[q | k | v]``; their ``up_gate_proj`` halves go different ways (gate into the activation
module, up into the product). These synthetic pairs have the same shapes of dataflow, so the fixes
are checked without the real-pairs venv.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import yaml
from models import fused_pairs as fp

import padiff
from padiff import LayerMap, LayerPair, MapFileError, MappingError
from padiff.compare.fused import assemble, describe, part_indices, take
from padiff.layer_map import map_from_dict, map_to_dict
from padiff.weights.layout_infer import Tensor, infer_links
from padiff.weights.layout_stack import split_unstack_links, unstack_links

TOL = {"atol": 1e-5, "rtol": 1e-4}


def _with_fault(case: fp.Case, torch_leaf: str, layer_map: object) -> padiff.DiffReport:
    """``compare`` with the output of the torch layer ``torch_leaf`` scaled by 1.05 (hook removed after)."""
    handle = case.torch.get_submodule(torch_leaf).register_forward_hook(lambda _m, _i, out: out * 1.05)
    try:
        return padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=layer_map,
                              options=TOL)
    finally:
        handle.remove()
QKV = ("body.q_proj", "body.k_proj", "body.v_proj")


# --- the arithmetic --------------------------------------------------------------------------------
def test_part_indices_interleave_each_part_per_group() -> None:
    q, k, v = part_indices([4, 2, 2], groups=2)  # type: ignore[misc]
    assert q.tolist() == [0, 1, 4, 5] and k.tolist() == [2, 6] and v.tolist() == [3, 7]
    assert [x.tolist() for x in part_indices([4, 2, 2]) or []] == [[0, 1, 2, 3], [4, 5], [6, 7]]
    assert part_indices([4, 3], groups=2) is None  # 3 does not cut into 2 equal blocks
    assert describe(q, 2) == "[0:2, 4:6] (2 groups)" and describe(np.arange(4, 6)) == "[4:6]"


def test_assemble_is_the_inverse_of_cutting() -> None:
    arr = np.arange(2 * 16).reshape(2, 16)
    index = part_indices([8, 4, 4], groups=2)
    assert index is not None
    parts = [take(arr, 1, idx) for idx in index]
    assert np.array_equal(assemble(parts, 1, groups=2), arr)
    assert not np.array_equal(assemble(parts, 1), arr)  # plain concatenation is another layout


def test_weights_concatenate_interleaved_per_group() -> None:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((8, 3)), rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    ps = [Tensor("qkv.weight", (3, 16), "Linear")]
    ts = [Tensor(f"{n}.weight", a.shape, "Linear") for n, a in zip("qkv", (q, k, v))]
    links = infer_links(ps, ts, groups=2)
    assert links is not None and "interleaved in 2 groups" in links[0].conversion
    got = links[0].fn([q, k, v])
    want = np.concatenate([q.T[:, :4], k.T[:, :2], v.T[:, :2], q.T[:, 4:], k.T[:, 2:], v.T[:, 2:]], axis=1)
    assert np.array_equal(got, want)
    assert not np.array_equal(infer_links(ps, ts)[0].fn([q, k, v]), want)  # type: ignore[index]
    assert infer_links(ps, ts, groups=3) is None  # 8, 4, 4 do not cut into 3 groups


def test_weights_split_interleaved_per_group() -> None:
    whole = np.arange(16 * 3, dtype=float).reshape(16, 3)  # torch fused [out, in]
    ps = [Tensor(f"{n}.weight", (3, w), "Linear") for n, w in zip("qkv", (8, 4, 4))]
    links = infer_links(ps, [Tensor("qkv.weight", (16, 3), "Linear")], groups=2)
    assert links is not None
    q, k, _ = (lk.fn([whole]) for lk in links)
    assert np.array_equal(q, whole[[0, 1, 2, 3, 8, 9, 10, 11]].T) and np.array_equal(k, whole[[4, 5, 12, 13]].T)
    assert "(2 groups)" in links[1].conversion


# --- the map format ---------------------------------------------------------------------------------
def test_groups_are_written_only_when_interleaved_and_read_back() -> None:
    pair = LayerPair("inner.qkv_proj", "", torch_parts=QKV, groups=2)
    data = map_to_dict(LayerMap([pair]))
    assert data["pairs"][0]["groups"] == 2
    assert map_from_dict(yaml.safe_load(yaml.safe_dump(data))).pairs[0] == pair
    plain = map_to_dict(LayerMap([LayerPair("inner.qkv_proj", "", torch_parts=QKV)]))
    assert "groups" not in plain["pairs"][0]


@pytest.mark.parametrize("groups", [0, -2, 1.5, "two", True])
def test_bad_groups_are_refused_with_the_reason(groups: object) -> None:
    entry = {"paddle_path": "a", "torch_path": ["c", "d"], "groups": groups}
    with pytest.raises(MapFileError, match="groups must be a whole number"):
        map_from_dict({"version": 2, "pairs": [entry]})
    with pytest.raises(MappingError, match="groups must be a whole number"):
        LayerPair("a", "", torch_parts=("c", "d"), groups=groups)  # type: ignore[arg-type]


def test_a_hand_written_grouped_pair_makes_the_port_agree_and_plain_concatenation_does_not() -> None:
    case = fp.gqa()
    text = ("version: 2\npairs:\n- paddle_path: inner.qkv_proj\n"
            "  torch_path: [body.q_proj, body.k_proj, body.v_proj]\n  groups: 2\n")
    lm = LayerMap.from_dict(yaml.safe_load(text), case.paddle, case.torch)
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=lm,
                            options=TOL) is True
    case = fp.gqa()
    plain = LayerMap.from_dict(yaml.safe_load(text.replace("  groups: 2\n", "")), case.paddle, case.torch)
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=plain,
                            options=TOL) is False


def test_a_grouped_pair_compares_each_part_against_its_interleaved_slices() -> None:
    case = fp.gqa()
    lm = LayerMap([LayerPair("inner.qkv_proj", "", torch_parts=QKV, groups=2)])
    rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=lm, options=TOL)
    assert bool(rep)
    assert not [w for w in rep.warnings if "not paired" in w]  # the fused layer is paired with its parts
    fwd = {(r.torch_path, r.item) for r in rep.records if r.stage == "forward" and r.paddle_path == "inner.qkv_proj"}
    assert fwd == {("body.q_proj", "output [0:4, 8:12] (2 groups) of axis -1"),
                   ("body.k_proj", "output [4:6, 12:14] (2 groups) of axis -1"),
                   ("body.v_proj", "output [6:8, 14:16] (2 groups) of axis -1")}
    grads = {r.torch_path for r in rep.records if r.stage == "backward" and r.paddle_path == "inner.qkv_proj"}
    assert grads == set(QKV)


def test_grouped_pairs_in_single_step_hand_each_part_its_gradient_slice() -> None:
    case = fp.gqa()
    lm = LayerMap([LayerPair("inner.qkv_proj", "", torch_parts=QKV, groups=2)])
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=lm,
                            options={**TOL, "single_step": True}) is True


def test_torch_fused_grouped_against_paddle_parts_by_hand() -> None:
    case = fp.gqa_split_paddle()
    lm = LayerMap([LayerPair("", "body.qkv", paddle_parts=("inner.q", "inner.k", "inner.v"), groups=2)])
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=lm,
                            options=TOL) is True
    case = fp.gqa_split_paddle()
    lm = LayerMap([LayerPair("", "body.qkv", paddle_parts=("inner.q", "inner.k", "inner.v"), groups=2)])
    rep = _with_fault(case, "body.qkv", lm)
    assert rep.first_diff is not None and rep.first_diff.torch_path == "body.qkv"


# --- through layer_map="auto" ------------------------------------------------------------------------
CASES: dict[str, Callable[[], fp.Case]] = {
    "gqa": fp.gqa,
    "gqa_reversed": lambda: fp.gqa(reverse=True),
    "up_gate_act": fp.up_gate_act,
    "up_gate_act_reversed": lambda: fp.up_gate_act(reverse=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_proposal_pairs_the_fused_layer_with_its_parts_in_order(name: str) -> None:
    case = CASES[name]()
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    fused = [p for p in lm.pairs if p.split_side]
    assert [(p.paddle_path, p.torch_parts) for p in fused] == [case.fused]
    assert fused[0].groups == (2 if name.startswith("gqa") else 1)
    assert not fused[0].opaque and fused[0].confidence >= 0.9


@pytest.mark.parametrize("name", list(CASES))
def test_correct_port_agrees_and_a_fault_in_one_part_is_named(name: str) -> None:
    case = CASES[name]()
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is True
    case = CASES[name]()
    rep = _with_fault(case, case.fault, "auto")
    assert rep.first_diff is not None
    assert (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == (
        "forward", case.fused[0] if case.fused else "", case.fault)


# --- experts stacked on the torch side ----------------------------------------------------------------
def test_numbered_paddle_experts_are_cut_from_a_stacked_torch_tensor_by_index() -> None:
    rng = np.random.default_rng(0)
    gate_up, down = rng.standard_normal((3, 6, 4)), rng.standard_normal((3, 4, 4))  # down is square per expert
    ps = [Tensor(f"{e}.{n}.weight", s, "Linear") for e in (2, 0, 1) for n, s in (("up", (4, 6)), ("down", (4, 4)))]
    ts = [Tensor("down_proj", down.shape, "Experts"), Tensor("gate_up_proj", gate_up.shape, "Experts")]
    links, p_rest, t_rest = unstack_links(ps, ts)
    assert not p_rest and not t_rest
    by_name = {lk.paddle_name: lk for lk in links}
    arrays = {"gate_up_proj": gate_up, "down_proj": down}
    for e in range(3):
        up = by_name[f"{e}.up.weight"]
        assert np.array_equal(up.fn([arrays[up.torch_names[0]]]), gate_up[e].T)
        # the square piece follows the non-square tensor of the same torch layer: transposed too
        dn = by_name[f"{e}.down.weight"]
        assert np.array_equal(dn.fn([arrays[dn.torch_names[0]]]), down[e].T)


def test_a_square_stack_with_no_sibling_to_follow_is_not_guessed() -> None:
    ps = [Tensor(f"{e}.down.weight", (4, 4), "Linear") for e in range(3)]
    links, p_rest, t_rest = unstack_links(ps, [Tensor("down_proj", (3, 4, 4), "Experts")])
    assert not links and len(p_rest) == 3 and len(t_rest) == 1


def test_paddle_expert_list_against_torch_stacked_experts_as_one_block_by_hand() -> None:
    case = fp.stacked_torch_experts()
    lm = LayerMap([LayerPair("inner", "body", opaque=True)])
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=lm,
                            options=TOL) is True
    case = fp.stacked_torch_experts()
    rep = _with_fault(case, "body.experts", LayerMap([LayerPair("inner", "body", opaque=True)]))
    assert rep.first_diff is not None
    assert (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("forward", "inner", "body")


# --- several paddle pieces per expert cut from one stacked torch tensor -------------------------------
def _split_case(gate_first_in_paddle: bool, fused: str = "gate_up_proj"):
    rng = np.random.default_rng(0)
    gate_up, down = rng.standard_normal((3, 12, 4)), rng.standard_normal((3, 4, 6))
    names = ("gate_proj", "up_proj") if gate_first_in_paddle else ("up_proj", "gate_proj")
    ps = [Tensor(f"{e}.{n}.weight", s, "Linear") for e in (2, 0, 1)
          for n, s in ((names[0], (4, 6)), (names[1], (4, 6)), ("down_proj", (6, 4)))]
    ts = [Tensor(f"experts.{fused}", gate_up.shape, "Experts"), Tensor("experts.down_proj", down.shape, "Experts")]
    return ps, ts, {f"experts.{fused}": gate_up, "experts.down_proj": down}


@pytest.mark.parametrize("gate_first", [True, False], ids=["gate-defined-first", "up-defined-first"])
def test_per_expert_gate_and_up_are_cut_from_gate_up_in_the_order_its_name_gives(gate_first: bool) -> None:
    ps, ts, arrays = _split_case(gate_first)
    links, p_rest, t_rest = split_unstack_links(ps, ts)
    assert not p_rest and not t_rest
    by_name = {lk.paddle_name: lk for lk in links}
    for e in range(3):
        got = {n: by_name[f"{e}.{n}.weight"] for n in ("gate_proj", "up_proj", "down_proj")}
        assert np.array_equal(got["gate_proj"].fn([arrays[got["gate_proj"].torch_names[0]]]),
                              arrays["experts.gate_up_proj"][e][:6].T)
        assert np.array_equal(got["up_proj"].fn([arrays[got["up_proj"].torch_names[0]]]),
                              arrays["experts.gate_up_proj"][e][6:].T)
        assert np.array_equal(got["down_proj"].fn([arrays["experts.down_proj"]]), arrays["experts.down_proj"][e].T)
    assert "in the order the name gives: gate_proj, up_proj" in by_name["0.up_proj.weight"].conversion
    assert infer_links(ps, ts) is not None  # the whole inference takes it


def test_a_split_whose_names_do_not_give_the_order_is_not_guessed() -> None:
    ps, ts, _ = _split_case(True, fused="w13")
    links, p_rest, t_rest = split_unstack_links(ps, ts)
    assert not links and len(p_rest) == len(ps) and len(t_rest) == len(ts)


@pytest.mark.parametrize("reverse", [False, True], ids=["as-built", "paddle-up-first"])
def test_split_paddle_experts_against_torch_stacked_experts(reverse: bool) -> None:
    lm = LayerMap([LayerPair("inner", "body", opaque=True)])
    case = fp.split_paddle_experts(reverse)
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=lm,
                            options=TOL) is True
    case = fp.split_paddle_experts(reverse)
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is True
    case = fp.split_paddle_experts(reverse)
    rep = _with_fault(case, "body.experts", lm)
    assert rep.first_diff is not None and rep.first_diff.torch_path == "body"
