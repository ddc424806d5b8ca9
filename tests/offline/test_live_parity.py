"""Offline = live: the same models and inputs give the same records through ``compare`` and ``compare_runs``.

The fused decoder block of :mod:`fused_side` (paddle ``qkv_proj`` against torch ``q/k/v_proj``,
paddle raw ``matmul`` parameters against torch Linears, paired parameter by parameter) is run
live in this process and recorded side by side, each side in a subprocess that can import only
its own framework. The records must agree in pairs, stages, items and figures, with the map
``suggest_layer_map`` saved and with ``layer_map="auto"``; a planted fault is named at the same
pair, step and item by both.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.offline.conftest import env

HERE = os.path.dirname(__file__)
RECORD = os.path.join(HERE, "record_fused.py")
OPTS = {"atol": 1e-5, "rtol": 1e-4}
STEPS = 2


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``{name: run folder}``: paddle, torch, and torch with k_proj's output scaled from step 1."""
    base = tmp_path_factory.mktemp("parity_runs")
    jobs = {"pd": ["paddle"], "pt": ["torch"], "pt_fault": ["torch", "--fault", "1.05", "--fault-step", "1"],
            "pt_ref": ["torch", "--reference"]}
    out = {}
    for name, args in jobs.items():
        out[name] = str(base / name)
        p = subprocess.run([sys.executable, RECORD, args[0], out[name], "--steps", str(STEPS), *args[1:]],
                           env=env(), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out


def _live(fault: float, layer_map: Any, options: dict[str, Any] = OPTS) -> Any:
    import paddle
    import torch

    import padiff
    from tests.offline.fused_side import batch, build

    pm, _ = build("paddle")
    tm, ts = build("torch", fault, 1)
    x = batch(0)
    inp = ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)})
    if layer_map is None:
        return padiff.suggest_layer_map(pm, tm, inp)
    ts["step"] = 0

    def t_loss(out: Any) -> Any:
        ts["step"] += 1  # the next forward is the next step's: the fault follows it, as in the recording
        return (out ** 2).mean()

    opts = (paddle.optimizer.SGD(learning_rate=0.1, parameters=pm.parameters()),
            torch.optim.SGD(tm.parameters(), lr=0.1))
    return padiff.compare(pm, tm, inp, steps=STEPS, layer_map=layer_map, optimizer=opts, options=options,
                          loss_fn=(lambda out: (out ** 2).mean(), t_loss))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The map ``suggest_layer_map`` proposes (saved to a file) and the live reports with it."""
    path = str(tmp_path_factory.mktemp("parity_map") / "map.yaml")
    lm = _live(1.0, None)
    lm.save(path)
    return {"map": path, "lm": lm, "ok": _live(1.0, lm), "fault": _live(1.05, lm)}


def _key(r: Any) -> tuple[str, int, str, str, str]:
    return (r.stage, r.step, r.paddle_path, r.torch_path, r.item)


def _assert_same(live_rep: Any, off_rep: Any) -> None:
    live_recs = {_key(r): r for r in live_rep.records}
    off_recs = {_key(r): r for r in off_rep.records}
    assert set(off_recs) == set(live_recs), (sorted(set(off_recs) - set(live_recs)),
                                             sorted(set(live_recs) - set(off_recs)))
    for k, lr in live_recs.items():
        orr = off_recs[k]
        assert orr.passed == lr.passed, k
        assert math.isclose(orr.stats.max_abs_diff, lr.stats.max_abs_diff, rel_tol=1e-3, abs_tol=1e-6), (
            k, orr.stats.max_abs_diff, lr.stats.max_abs_diff)
    assert off_rep.stages == live_rep.stages
    assert bool(off_rep) == bool(live_rep)


def test_saved_map_gives_the_live_records(recorded: dict[str, str], live: dict[str, Any]) -> None:
    import padiff

    live_rep = live["ok"]
    assert live_rep, [str(r) for r in live_rep.failures()]
    stages = {(r.stage, r.torch_path) for r in live_rep.records}
    assert ("forward", "attn.k_proj") in stages  # the fused pair is compared part by part
    assert any(r.item == "mlp.w_up <-> mlp.up.weight" for r in live_rep.records)  # and a parameter pair
    _assert_same(live_rep, padiff.compare_runs(recorded["pd"], recorded["pt"], layer_map=live["map"], options=OPTS))


def test_auto_gives_the_live_records(recorded: dict[str, str], live: dict[str, Any]) -> None:
    import padiff

    off = padiff.compare_runs(recorded["pd"], recorded["pt"], layer_map="auto", options=OPTS)
    _assert_same(live["ok"], off)


def test_planted_fault_named_alike(recorded: dict[str, str], live: dict[str, Any]) -> None:
    import padiff

    live_first = live["fault"].first_diff
    assert live_first is not None
    assert (live_first.stage, live_first.step, live_first.torch_path) == ("forward", 1, "attn.k_proj")
    for layer_map in (live["map"], "auto"):
        off = padiff.compare_runs(recorded["pd"], recorded["pt_fault"], layer_map=layer_map, options=OPTS)
        assert not off
        assert _key(off.first_diff) == _key(live_first), layer_map


def test_the_auto_proposal_is_written_beside_the_report(recorded: dict[str, str], live: dict[str, Any],
                                                        tmp_path: Any) -> None:
    """The proposal ``"auto"`` used is the one suggest_layer_map makes, saved for review next to the report."""
    import padiff
    from padiff.cli import main

    report = os.path.join(str(tmp_path), "r.json")
    assert main(["compare-runs", recorded["pd"], recorded["pt"], "--map", "auto", "--options",
                 "atol=1e-5,rtol=1e-4", "--json", report]) == 0
    saved = padiff.LayerMap.load(os.path.join(str(tmp_path), "r.map.yaml"))

    def pairs(lm: Any) -> set[tuple[tuple[str, ...], tuple[str, ...], int]]:
        return {(p.paddle_paths, p.torch_paths, p.groups) for p in lm.pairs}

    assert pairs(saved) == pairs(live["lm"])
    assert {(p.paddle_param, p.torch_param, p.conversion) for p in saved.params} == {
        (p.paddle_param, p.torch_param, p.conversion) for p in live["lm"].params}
    # the saved proposal, passed back, gives the same verdict
    saved_path = os.path.join(str(tmp_path), "r.map.yaml")
    again = padiff.compare_runs(recorded["pd"], recorded["pt_fault"], layer_map=saved_path, options=OPTS)
    assert not again and again.first_diff.torch_path == "attn.k_proj"


def test_calibrated_fused_parts_are_judged_against_their_reference_slices(recorded: dict[str, str],
                                                                         live: dict[str, Any]) -> None:
    """Each torch part of the fused qkv pair is judged by the calibrated rule against its own float64
    reference, live and offline alike (not by the ``mean`` fallback); so are the parameter pairs."""
    import padiff

    cal = {"compare_mode": "calibrated"}
    live_rep = _live(1.0, live["lm"], cal)
    off = padiff.compare_runs(recorded["pd"], recorded["pt_ref"], layer_map=live["map"], options=cal)
    for rep in (live_rep, off):
        assert rep, [str(r) for r in rep.failures()]
        parts = [r for r in rep.records if r.paddle_path == "attn.qkv_proj" and r.stage in ("forward", "backward")]
        assert {r.torch_path for r in parts} == {"attn.q_proj", "attn.k_proj", "attn.v_proj"}
        assert all(r.stats.mode == "calibrated" and r.stats.note_kind != "fallback" for r in parts), [
            (r.item, r.stats.note) for r in parts]
        pairs = [r for r in rep.records if "<->" in r.item]
        assert pairs and all(r.stats.mode == "calibrated" for r in pairs)
    assert {_key(r): r.passed for r in off.records} == {_key(r): r.passed for r in live_rep.records}
