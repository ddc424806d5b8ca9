"""Offline = live on the real pairs (opt-in: ``pytest -m real_pairs tests/real_pairs/test_offline_real.py``).

Per pair and torch definition order (:mod:`offline`): ``import_weights`` with ``"auto"`` and with the
saved ``suggest_layer_map`` proposal equals the hand copy or refuses, never writing a wrong tensor;
``compare_runs`` on the two runs, each recorded in a process that never imports the other framework,
gives the live ``compare``'s verdict, stages and first difference, record for record, and names a
planted fault where the live run does. The fused decoder pairs run by default (one recording per pair and
order serves every check); ``PADIFF_OFFLINE_PAIRS`` chooses others (comma-separated names, or ``all``).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .offline import OfflineRow, offline_row
from .pairs import PAIRS, RealPair
from .score import missing_requirements
from .test_real_pairs import FAULT_XFAIL

pytestmark = pytest.mark.real_pairs

DEFAULT = ("llama", "ernie4_5", "qwen2", "qwen2_moe")
# pairs whose recorded comparison compares more than the live one, and why (the extra records must pass)
OFFLINE_EXTRA: dict[str, str] = {
    "qwen2_moe": "the paddle experts are a LayerList that is never called: live compares a pair's parameters only "
                 "when its layers run, so the expert stacks' gradients and trained weights (an opaque pair) are "
                 "compared offline only",
}


def _chosen() -> list[RealPair]:
    want = os.environ.get("PADIFF_OFFLINE_PAIRS", "")
    if want == "all":
        return list(PAIRS)
    names = [n for n in want.split(",") if n] or list(DEFAULT)
    return [p for p in PAIRS if p.name in names]


CHOSEN = _chosen()
_ROWS: dict[tuple[str, bool], OfflineRow] = {}


def _row(pair: RealPair, reverse: bool) -> OfflineRow:
    for mod in missing_requirements(pair):
        pytest.skip(f"{mod} not installed (make real-pairs installs it)")
    key = (pair.name, reverse)
    if key not in _ROWS:
        _ROWS[key] = offline_row(pair, reverse)
    row = _ROWS[key]
    assert not row.error, row.reports.get("traceback", row.error)
    return row


def _first(rep: Any) -> tuple[str, int, str, str, str] | None:
    r = rep.first_diff
    return None if r is None else (r.stage, r.step, r.paddle_path, r.torch_path, r.item)


_CASES = [(p, r) for p in CHOSEN for r in (False, True)]
params = pytest.mark.parametrize("pair,reverse", _CASES,
                                 ids=[f"{p.name}-{'reversed' if r else 'as-built'}" for p, r in _CASES])


@params
def test_import_weights_equals_the_hand_copy_or_refuses(pair: RealPair, reverse: bool) -> None:
    row = _row(pair, reverse)
    for key, res in row.reports["imports"].items():
        if res["refused"]:
            assert not res["changed_on_refusal"], (key, res["changed_on_refusal"])  # a refusal writes nothing
            assert "import_weights copied nothing" in res["refused"] or "cannot copy" in res["refused"], res
        else:
            assert not res["wrong"], f"import_weights({key}) wrote tensors unlike the hand copy: {res['wrong']}"
    assert not row.reports["imports"]["map"]["refused"], "the confirmed map of suggest_layer_map must import"


@params
@pytest.mark.parametrize("how", ["auto", "map"])
def test_compare_runs_gives_the_live_records(pair: RealPair, reverse: bool, how: str) -> None:
    row = _row(pair, reverse)
    live, off = row.reports["live_map" if how == "map" else "live_auto"], row.reports[f"offline_{how}"]
    agree = row.offline[how]
    assert agree.same_verdict, (bool(live), [str(r) for r in off.failures()[:5]])
    assert agree.same_stages, (live.stages, off.stages)
    assert _first(off) == _first(live)
    assert (agree.only_live, agree.passed_differs) == (0, 0), agree
    if agree.only_offline and pair.name in OFFLINE_EXTRA:
        live_keys = {(r.stage, r.step, r.paddle_path, r.torch_path, r.item) for r in live.records}
        extra = [r for r in off.records if (r.stage, r.step, r.paddle_path, r.torch_path, r.item) not in live_keys]
        assert all(r.stage in ("grad", "weight") and r.passed for r in extra), [str(r) for r in extra[:5]]
        return
    assert agree.only_offline == 0, agree


@params
@pytest.mark.parametrize("how", ["auto", "map"])
def test_planted_fault_named_as_live(pair: RealPair, reverse: bool, how: str) -> None:
    row = _row(pair, reverse)
    live, off = row.reports["live_fault"], row.reports[f"offline_fault_{how}"]
    assert not off
    assert _first(off) == _first(live), (row.fault[how], row.fault["live"])
    if pair.name in FAULT_XFAIL:
        pytest.xfail(FAULT_XFAIL[pair.name])
    assert row.fault_named[how], row.fault[how]
