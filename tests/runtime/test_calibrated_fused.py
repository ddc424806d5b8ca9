"""compare_mode="calibrated" on fused pairs: each part is judged against its own float64 reference slice.

A paddle fused qkv against torch q/k/v (and the reverse, and grouped-query layouts interleaving the
parts) is compared part by part; each part's output and gradient is judged by the calibrated rule
against the float64 reference of that part (a torch part's own, or the fused torch tensor's cut like
it), not by the ``mean`` fallback, and a fault of 0.1% in one part fails there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from models import fused_pairs as fp

import padiff
from padiff.layer_map import LayerMap, LayerPair

CAL = {"compare_mode": "calibrated"}
QKV = ("body.q_proj", "body.k_proj", "body.v_proj")
PARTS = ("inner.q", "inner.k", "inner.v")

CASES: dict[str, tuple[Callable[[], fp.Case], LayerPair, str]] = {
    "paddle fused": (fp.attention, LayerPair("inner.qkv_proj", "", torch_parts=QKV), "body.k_proj"),
    "torch fused": (fp.attention_split_paddle, LayerPair("", "body.in_proj", paddle_parts=PARTS), "body.in_proj"),
    "paddle fused, grouped": (fp.gqa, LayerPair("inner.qkv_proj", "", torch_parts=QKV, groups=2), "body.k_proj"),
    "torch fused, grouped": (fp.gqa_split_paddle, LayerPair("", "body.qkv", paddle_parts=PARTS, groups=2),
                             "body.qkv"),
}


def _parts(rep: Any, pair: LayerPair) -> list[Any]:
    if pair.paddle_parts:  # torch fused: its records name it on the torch side
        return [r for r in rep.records if r.stage in ("forward", "backward") and r.torch_path == pair.torch_path]
    return [r for r in rep.records if r.stage in ("forward", "backward") and r.paddle_path == pair.paddle_path]


@pytest.mark.parametrize("name", list(CASES))
def test_each_fused_part_is_judged_against_its_reference_slice(name: str) -> None:
    make, pair, _ = CASES[name]
    case = make()
    rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=LayerMap([pair]),
                         options=CAL)
    assert rep, [str(r) for r in rep.failures()]
    parts = _parts(rep, pair)
    assert {r.stage for r in parts} == {"forward", "backward"}
    assert len({r.paddle_path if pair.paddle_parts else r.torch_path for r in parts}) == 3
    assert all(r.stats.mode == "calibrated" and r.stats.note_kind != "fallback" for r in parts), [
        (r.item, r.stats.note) for r in parts]


@pytest.mark.parametrize("name", list(CASES))
def test_a_small_fault_in_one_part_fails_there(name: str) -> None:
    make, pair, fault = CASES[name]
    case = make()
    handle = case.torch.get_submodule(fault).register_forward_hook(lambda _m, _i, out: out * 1.001)
    try:
        rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=LayerMap([pair]),
                             options=CAL)
    finally:
        handle.remove()
    first = rep.first_diff
    assert not rep and first is not None and first.stage == "forward" and first.torch_path == fault
    assert first.stats.mode == "calibrated"
