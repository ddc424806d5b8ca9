"""Terminal rendering of DiffReports, the long logs, and the JSON dump (hand-built records)."""

from __future__ import annotations

import json
import os

import pytest
from records_factory import make_report, model_forward_line, nan_record

from padiff.report.json_report import report_json, write_json
from padiff.report.logs import render_report, write_logs
from padiff.report.text import HERE, render_summary


def test_success_is_short_and_says_success(tmp_path):
    rep = make_report(fail_at=None)
    text = render_report(rep, log_dir=str(tmp_path))
    assert text.startswith("padiff: SUCCESS")
    assert "stages: forward, loss, backward, grad" in text and "steps: 1" in text
    assert "max forward diff 1e-08" in text
    assert len(text.splitlines()) < 15
    assert os.listdir(tmp_path) == []  # no logs for a success by default


def test_failure_names_stage_step_layers_and_numbers(tmp_path):
    rep = make_report()
    text = render_report(rep, log_dir=str(tmp_path))
    lines = text.splitlines()
    assert lines[0] == "padiff: FAILED — first difference in forward, step 0"
    assert "  paddle  encoder.fc2 (Linear)" in lines and "  torch   enc.second (Linear)" in lines
    assert any("max abs diff" in ln and "0.1" in ln and "at index (1, 2)" in ln for ln in lines)
    assert "  max rel diff      1" in lines
    assert ("  mismatched        20 / 20 (100.0%) elements outside atol + rtol * |torch|"
            "  [compare_mode=strict: the verdict's figure]") in lines
    assert any(ln.startswith("  means") and "paddle 0.5" in ln and "torch 0.55" in ln for ln in lines)
    assert "  cosine            0.99" in lines
    assert any("would pass with   atol >= 0.1 (at rtol 0)  or  rtol >= 1" in ln for ln in lines)


def test_failure_marks_both_trees_and_skips():
    rep = make_report()
    text = render_summary(rep)
    lines = text.splitlines()
    here = [ln for ln in lines if HERE in ln]
    assert len(here) == 2
    assert "fc2 (Linear)" in here[0] and "second (Linear)" in here[1]
    assert any("act (ReLU)  (skip)" in ln for ln in lines)
    assert text.index("Paddle model (PaddleNet):") < text.index("Torch model (TorchNet):")


def test_failure_shows_user_code_on_both_sides():
    text = render_summary(make_report())
    assert "Paddle call (innermost last):" in text and "Torch call (innermost last):" in text
    assert f'line {model_forward_line()}, in user_code' in text
    assert text.count("return x * 2  # the user's offending call") == 2


def test_failure_lists_tolerances_warnings_skipped_and_other_diffs():
    text = render_summary(make_report())
    assert "Suggested tolerances" in text
    assert "float32   atol=0.15, rtol=0   or   atol=1e-06, rtol=" in text and "float64" in text
    assert "Warning: the paddle model is in train mode" in text
    assert "paddle encoder.act (ReLU): functional relu on the torch side" in text
    assert "Other differences (" in text and "head (Linear) <-> torch out (Linear)" in text


def test_failure_writes_logs_and_prints_their_path(tmp_path):
    rep = make_report()
    text = render_report(rep, log_dir=str(tmp_path))
    (stamp,) = os.listdir(tmp_path)
    log_dir = os.path.join(tmp_path, stamp)
    assert rep.log_dir == log_dir and f"Full logs: {log_dir}" in text
    files = set(os.listdir(log_dir))
    assert {"summary.txt", "records.txt", "trees.txt", "mapping.txt", "report.json"} <= files
    def read(name):
        with open(os.path.join(log_dir, name)) as fh:
            return fh.read()

    records = read("records.txt")
    assert records.count("] FAIL ") + records.count("] ok   ") == len(rep.records)
    assert json.loads(read("report.json"))["ok"] is False
    assert "encoder.fc1 (Linear) <-> torch enc.first (Linear)" in read("mapping.txt")


def test_log_dirs_never_overwrite_each_other(tmp_path):
    a = write_logs(make_report(), str(tmp_path))
    b = write_logs(make_report(), str(tmp_path))
    assert a != b and os.path.isdir(a) and os.path.isdir(b)


def test_log_dir_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PADIFF_LOG_DIR", str(tmp_path / "env"))
    path = write_logs(make_report())
    assert path.startswith(str(tmp_path / "env"))


def test_unwritable_log_dir_does_not_hide_the_result(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    text = render_report(make_report(), log_dir=str(blocker))
    assert text.startswith("padiff: FAILED") and "could not write the log files" in text


def test_assign_error_is_shown():
    rep = make_report(fail_at=None)
    rep.assign_error = "cannot pair the weights of paddle head (Linear) and torch out (Linear)"
    text = render_summary(rep)
    assert "weights could not be assigned" in text and "cannot pair the weights" in text


def test_nan_first_diff():
    rep = make_report(fail_at=None)
    rep.records.insert(0, nan_record())
    text = render_summary(rep)
    assert "max abs diff      nan" in text and "note              nan" in text


def test_json_dump_is_strict_json(tmp_path):
    rep = make_report()
    rep.records.append(nan_record(order=99))
    path = write_json(rep, str(tmp_path / "sub" / "r.json"))
    with open(path) as fh:
        text = fh.read()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)
    assert data["ok"] is False
    assert data["first_diff"]["paddle_path"] == "encoder.fc2"
    assert len(data["records"]) == len(rep.records)
    assert data["suggested_tolerances"]["float32"][0]["atol"] == pytest.approx(0.15)
    assert any(r["max_abs_diff"] == "nan" for r in data["records"])
    assert report_json(rep) == text


def test_long_trees_are_folded_around_the_marked_layer(tmp_path):
    from padiff.report.records import Comparison

    rep = make_report()
    tree = [("", "Big", 0), ("blocks", "LayerList", 1)]
    for i in range(40):
        tree += [(f"blocks.{i}", "Block", 2), (f"blocks.{i}.fc", "Linear", 3), (f"blocks.{i}.norm", "LayerNorm", 3)]
    tree.append(("head", "Linear", 1))
    rep.paddle_tree = tree
    first = rep.first_diff
    moved = Comparison(**{**{f: getattr(first, f) for f in first.__dataclass_fields__}, "paddle_path": "blocks.20.fc"})
    rep.records = [moved if r is first else r for r in rep.records]
    text = render_summary(rep)
    paddle_part = text.split("Paddle model (PaddleNet):")[1].split("Torch model")[0]
    assert "fc (Linear)  <--- *** HERE ***" in paddle_part
    assert "norm (LayerNorm)" in paddle_part  # sibling of the marked layer
    assert "      ... 53 more" in paddle_part and "      ... 50 more" in paddle_part  # other blocks folded
    for kept in ("0 (Block)", "18 (Block)", "22 (Block)", "39 (Block)", "head (Linear)"):
        assert kept in paddle_part
    assert "17 (Block)" not in paddle_part and "23 (Block)" not in paddle_part
    assert len(paddle_part.splitlines()) < 25
    log_dir = write_logs(rep, str(tmp_path))
    with open(os.path.join(log_dir, "trees.txt")) as fh:
        full = fh.read()
    assert full.count("(Block)") == 40 and "<--- *** HERE ***" in full


def test_str_of_a_report_is_the_text_report_not_the_dataclass_fields(tmp_path):
    for rep in (make_report(fail_at=None), make_report()):
        text = str(rep)
        assert text == rep.summary() == render_summary(rep)
        assert text.startswith("padiff: SUCCESS" if rep else "padiff: FAILED")
        assert "Comparison(" not in text and "records=" not in text
        assert repr(rep).startswith("DiffReport(")  # the fields stay available for debugging
    assert os.listdir(tmp_path) == []  # str() writes no logs


def test_log_size_is_said_once_with_the_way_to_cap_it(tmp_path, monkeypatch):
    monkeypatch.delenv("PADIFF_LOG_KEEP", raising=False)
    first = render_report(make_report(), log_dir=str(tmp_path))
    second = render_report(make_report(), log_dir=str(tmp_path))
    assert first.count("PADIFF_LOG_KEEP=N") == 1 and "1 run(s)" in first
    assert "PADIFF_LOG_KEEP" not in second
    import re

    assert re.search(r"\(\d+ kB this run", first)
    assert second.splitlines()[-1].startswith("Full logs: ") and os.path.isdir(second.splitlines()[-1][11:])


def test_log_keep_removes_only_the_oldest_padiff_runs(tmp_path, monkeypatch):
    import time

    mine = tmp_path / "my_notes"
    mine.mkdir()
    made = []
    for _ in range(4):
        rep = make_report()
        made.append(write_logs(rep, str(tmp_path), keep=2))
        time.sleep(0.002)
    left = sorted(os.listdir(tmp_path))
    assert left == sorted(["my_notes", *(os.path.basename(p) for p in made[-2:])])
    monkeypatch.setenv("PADIFF_LOG_KEEP", "1")
    write_logs(make_report(), str(tmp_path))
    assert len(os.listdir(tmp_path)) == 2 and mine.exists()
    monkeypatch.setenv("PADIFF_LOG_KEEP", "some")
    from padiff.errors import OptionsError

    with pytest.raises(OptionsError, match="PADIFF_LOG_KEEP must be a whole number"):
        write_logs(make_report(), str(tmp_path))
