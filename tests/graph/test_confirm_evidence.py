"""Confidence that means something: a numeric verdict is evidence only when its alternative was measured."""

from __future__ import annotations

import math
from types import SimpleNamespace

from padiff.graph.confirm import _record_group, not_evaluated
from padiff.graph.confirm_local import BIG, GUESS
from padiff.graph.match import ProposedPair


def _group() -> list[ProposedPair]:
    return [ProposedPair("attn.to_k", "attn.to_k", 0.6, ("tie: x",), True, True),
            ProposedPair("attn.to_v", "attn.to_v", 0.6, ("tie: x",), True, True)]


def _record(verdict: tuple[bool, float, float]) -> dict[str, ProposedPair]:
    trial = SimpleNamespace(current={"attn.to_k": "attn.to_v", "attn.to_v": "attn.to_k"})
    updated: dict[str, ProposedPair] = {}
    _record_group(trial, _group(), {0: verdict, 1: verdict}, {"attn.to_k": None, "attn.to_v": None}, updated, [])
    return updated


def test_a_swap_whose_runner_up_was_never_measured_is_not_settled():
    for runner_up in (BIG, math.nan, 2 * BIG):
        out = _record((True, 6.1e-2, runner_up))
        assert all(p.confidence <= GUESS < 0.9 and p.uncertain for p in out.values()), out
        assert all("no other assignment could be evaluated" in p.evidence[-1] for p in out.values())


def test_a_swap_measured_against_its_runner_up_is_settled():
    out = _record((True, 1e-7, 3e-1))
    assert all(p.confidence >= 0.9 and not p.uncertain for p in out.values())
    assert all("settled numerically" in p.evidence[-1] for p in out.values())


def test_no_other_allowed_candidate_is_not_the_same_as_never_measured():
    assert not not_evaluated(math.inf) and not not_evaluated(0.3)
    assert not_evaluated(BIG) and not_evaluated(math.nan)


def test_a_fused_pair_whose_layouts_cannot_be_tried_is_a_guess(monkeypatch):
    from padiff.graph import confirm_layouts, confirm_trial, fused

    pair = ProposedPair("qkv", "q", 0.95, ("fused against split",), True, True, torch_parts=("q", "k", "v"))
    monkeypatch.setattr(confirm_trial, "fits", lambda trial, pr: False)  # no layout splits its weights
    monkeypatch.setattr(fused, "layout_groups", lambda pr, p, t: [1])
    trial = SimpleNamespace(result=SimpleNamespace(pairs=[pair]))
    updated: dict[str, ProposedPair] = {}
    notes: list[str] = []
    confirm_layouts.settle_orders(trial, [0], updated, notes, {}, {})
    assert updated["qkv"].confidence <= GUESS and updated["qkv"].uncertain
    assert "a guess" in updated["qkv"].evidence[-1] and notes
