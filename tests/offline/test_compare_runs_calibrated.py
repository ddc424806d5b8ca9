"""Calibrated verdicts offline: ``Recorder(..., reference="float64")`` and ``compare_runs(compare_mode="calibrated")``.

Each side of :mod:`calibrated_side` is recorded in a subprocess that can import its own framework only
(:mod:`record_calibrated`); the torch side also runs its float64 copy. The live comparison of the same
training runs in a subprocess too. The records must be the live
engine's, figure for figure (both errors, their ratio, the notes), and the verdicts those of the
calibrated rule: a correct float32 port passes with no tolerance, planted faults fail at their pair,
AdamW on a bias whose true gradient is zero passes with its note.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import pytest

import padiff
from padiff.compare.calibrated import K
from padiff.errors import OptionsError
from tests.offline.conftest import record_two_at_a_time

HERE = os.path.dirname(__file__)
RECORD = os.path.join(HERE, "record_calibrated.py")
CAL = {"compare_mode": "calibrated"}

#: name -> (framework, extra args)
RUNS = {
    "pd": ("paddle", []),
    "pt": ("torch", []),
    "pt_scale": ("torch", ["--scale", "1.001"]),
    "pt_eps": ("torch", ["--eps", "1e-6"]),
    "pd_adamw": ("paddle", ["--opt", "adamw"]),
    "pt_adamw": ("torch", ["--opt", "adamw"]),
    "pt_noref": ("torch", ["--reference", "0"]),
    "pt_nofn": ("torch", ["--loss-fn", "0"]),
    "pd_stats": ("paddle", ["--level", "stats"]),
    "live": ("live", []),
    "live_adamw": ("live", ["--opt", "adamw"]),
    "live_eps": ("live", ["--eps", "1e-6"]),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Record every run of :data:`RUNS` (two at a time) and return ``{name: run folder}``."""
    return record_two_at_a_time(RECORD, RUNS, str(tmp_path_factory.mktemp("calibrated_runs")),
                                suffix=lambda fw: ".json" if fw == "live" else "")


def _live(runs: dict[str, str], name: str) -> Any:
    from padiff.report.json_report import load_json

    return load_json(runs[name])


def _key(r: Any) -> tuple[str, int, str, str, str]:
    return (r.stage, r.step, r.paddle_path, r.torch_path, r.item)


def _words(note: str) -> str:
    return re.sub(r"\d[\d.e+-]*", "#", note)


def assert_same_records(live_rep: Any, off_rep: Any) -> None:
    """The same records: keys, verdicts, both errors and their ratio, notes; the same first difference.

    Both ran single-threaded (:func:`tests.offline.conftest.env`), so torch's own rounding is the same."""
    live_recs = {_key(r): r for r in live_rep.records}
    off_recs = {_key(r): r for r in off_rep.records}
    assert set(off_recs) == set(live_recs), (sorted(set(off_recs) - set(live_recs)),
                                             sorted(set(live_recs) - set(off_recs)))
    for k, lr in live_recs.items():
        a, b = off_recs[k].stats, lr.stats
        assert (a.passed, a.mode, a.note_kind, _words(a.note)) == (b.passed, b.mode, b.note_kind, _words(b.note)), k
        for name in ("paddle_error", "torch_error", "noise_ratio"):
            x, y = getattr(a, name), getattr(b, name)
            assert (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-30), (k, name, x, y)
    assert (None if off_rep.first_diff is None else _key(off_rep.first_diff)) == \
        (None if live_rep.first_diff is None else _key(live_rep.first_diff))
    assert bool(off_rep) == bool(live_rep)


def test_a_correct_float32_port_passes_with_no_tolerance_as_live(runs: dict[str, str]) -> None:
    off = padiff.compare_runs(runs["pd"], runs["pt"], options=CAL)
    assert off, [str(r) for r in off.failures()]
    assert {r.stats.mode for r in off.records} == {"calibrated"}  # nothing fell back: every entry had its reference
    assert {r.stage for r in off.records} == {"forward", "loss", "backward", "grad", "weight"}
    assert all(r.stats.paddle_error >= 0 and r.stats.torch_error >= 0 for r in off.records)
    assert_same_records(_live(runs, "live"), off)


def test_adamw_on_a_bias_a_batchnorm_removes_passes_with_its_note_as_live(runs: dict[str, str]) -> None:
    off = padiff.compare_runs(runs["pd_adamw"], runs["pt_adamw"], options=CAL)
    assert off, [str(r) for r in off.failures()]
    bias = [r for r in off.records if r.stage == "weight" and r.paddle_path == "fc1" and r.item == "bias"]
    assert bias and all("update driven by rounding-level gradients on both sides" in r.stats.note for r in bias)
    # without the calibrated rule the same updates differ far beyond rounding
    mean = padiff.compare_runs(runs["pd_adamw"], runs["pt_adamw"], options={"atol": 1e-6, "rtol": 1e-5})
    assert not mean and mean.first_diff.stage == "weight" and mean.first_diff.paddle_path == "fc1"
    assert_same_records(_live(runs, "live_adamw"), off)


@pytest.mark.parametrize("run, live, at", [("pt_scale", "", "head"), ("pt_eps", "live_eps", "ln")])
def test_a_planted_fault_fails_at_its_pair_as_live(runs: dict[str, str], run: str, live: str, at: str) -> None:
    off = padiff.compare_runs(runs["pd"], runs[run], options=CAL)
    assert not off
    first = off.first_diff
    assert (first.stage, first.step, first.torch_path) == ("forward", 0, at)
    assert first.stats.mode == "calibrated" and first.stats.noise_ratio > K
    if live:
        assert_same_records(_live(runs, live), off)


def test_a_torch_run_without_its_reference_is_refused_with_what_to_do(runs: dict[str, str]) -> None:
    with pytest.raises(OptionsError, match=r"reference='float64'"):
        padiff.compare_runs(runs["pd"], runs["pt_noref"], options=CAL)
    assert padiff.compare_runs(runs["pd"], runs["pt_noref"], options={"atol": 1e-5, "rtol": 1e-4})  # mean still works


def test_without_the_loss_function_the_loss_falls_back_and_says_how_to_calibrate_it(runs: dict[str, str]) -> None:
    off = padiff.compare_runs(runs["pd"], runs["pt_nofn"], options=CAL)
    assert off, [str(r) for r in off.failures()]
    loss = [r for r in off.records if r.stage == "loss"]
    assert loss and all(r.stats.note_kind == "fallback" and "fn=" in r.stats.note for r in loss)
    # the backward starts from torch's own gradient at the output: everything else is calibrated
    rest = [r for r in off.records if r.stage != "loss"]
    assert {r.stats.mode for r in rest} == {"calibrated"}


def test_level_stats_judges_the_moments_by_the_calibrated_rule(runs: dict[str, str]) -> None:
    """A paddle run at level stats against the full torch runs: their moments and the reference's are compared."""
    ok = padiff.compare_runs(runs["pd_stats"], runs["pt"], options=CAL)
    assert ok, [str(r) for r in ok.failures()]
    assert {r.stats.mode for r in ok.records} == {"calibrated"}
    bad = padiff.compare_runs(runs["pd_stats"], runs["pt_eps"], options=CAL)
    assert not bad and (bad.first_diff.stage, bad.first_diff.torch_path) == ("forward", "ln")


def test_the_paddle_side_cannot_record_a_reference(tmp_path: Any) -> None:
    import paddle

    from padiff.errors import InputError

    with pytest.raises(InputError, match="torch model only"):
        padiff.Recorder(paddle.nn.Linear(2, 2), tmp_path / "p", reference="float64")
