"""Record each side in its own process, compare offline: agreement, planted faults, stages, steps."""

from __future__ import annotations

import os

import padiff

TOL = {"atol": 1e-6, "rtol": 1e-5}


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def test_equal_models_agree_every_stage_and_step(runs: dict[str, str]) -> None:
    rep = padiff.compare_runs(runs["pd"], runs["pt"], options=TOL)
    assert rep, rep.failures()[:3]
    assert rep.steps == 3
    assert rep.stages == ["forward", "loss", "backward", "grad", "weight"]
    assert {r.paddle_path for r in rep.records} >= {"", "fc1", "act", "fc2"}
    assert not rep.warnings


def test_planted_scale_named_at_its_layer_and_step(runs: dict[str, str]) -> None:
    rep = padiff.compare_runs(runs["pd"], runs["pt_scale"], options=TOL)
    first = rep.first_diff
    assert not rep and first is not None
    assert (first.stage, first.step, first.paddle_path, first.torch_path) == ("forward", 1, "fc2", "fc2")
    assert all(r.passed for r in rep.records if r.step == 0)


def test_learning_rate_difference_found_at_the_weight_stage_of_step_0(runs: dict[str, str]) -> None:
    rep = padiff.compare_runs(runs["pd"], runs["pt_lr"], options=TOL)
    first = rep.first_diff
    assert first is not None and (first.stage, first.step) == ("weight", 0)
    assert all(r.passed for r in rep.records if r.step == 0 and r.stage != "weight")


def test_gradient_accumulation_agrees_then_names_the_micro_step(runs: dict[str, str]) -> None:
    rep = padiff.compare_runs(runs["pd_acc"], runs["pt_acc"], options=TOL)
    step0 = [r for r in rep.records if r.step == 0]
    assert step0 and all(r.passed for r in step0)
    assert any(r.stage == "grad" for r in step0)  # summed over both micro-batches, on both sides
    first = rep.first_diff
    assert first is not None and (first.stage, first.step, first.paddle_path) == ("forward", 1, "fc2")
    assert "micro-step 1" in first.item
    # micro-batches fed to one run only are told apart by the input digests
    other = padiff.compare_runs(runs["pd_acc"], runs["pt"], options=TOL)
    assert any("different inputs" in w for w in other.warnings)


def test_stats_level_is_much_smaller_and_still_localises_a_5_percent_scale(runs: dict[str, str]) -> None:
    full, stats = _size(runs["pd_big"]), _size(runs["pd_big_stats"])
    assert stats * 3 < full, (stats, full)
    rep = padiff.compare_runs(runs["pd_big_stats"], runs["pt_big_stats"], options={"atol": 1e-6, "rtol": 1e-3})
    first = rep.first_diff
    assert first is not None and (first.stage, first.step, first.paddle_path) == ("forward", 0, "fc2")
    assert all(r.passed for r in rep.by_stage("forward") if r.step == 0 and r.paddle_path in ("fc1", "act"))


def test_killed_run_is_readable_up_to_its_last_complete_step(runs: dict[str, str]) -> None:
    rep = padiff.compare_runs(runs["pd"], runs["pt_killed"], options=TOL)
    assert rep and rep.steps == 2
    assert any("step 2 was recorded by the paddle run only" in w for w in rep.warnings)


def test_frozen_parameter_found_at_the_weight_stage_and_one_sided_grads_reported(runs: dict[str, str]) -> None:
    rep = padiff.compare_runs(runs["pd"], runs["pt_frozen"], options=TOL)
    first = rep.first_diff
    assert first is not None and (first.stage, first.step, first.paddle_path) == ("weight", 0, "fc1")
    assert all(r.passed for r in rep.records if r.step == 0 and r.stage in ("forward", "loss", "grad"))
    assert any("recorded by the paddle run only" in w and "grad fc1 [weight]" in w for w in rep.warnings)
