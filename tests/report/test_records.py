"""DiffReport as data: truthiness, ordering, suggested tolerances."""

from __future__ import annotations

import math

import pytest
from records_factory import rec

from padiff.compare.arrays import Stats
from padiff.report.records import Comparison, DiffReport


def _nan_record(order: int) -> Comparison:
    nan = math.nan
    stats = Stats(passed=False, max_abs_diff=nan, max_rel_diff=nan, mismatched=1, total=1, paddle_mean=nan,
                  torch_mean=nan, cosine=nan, min_atol=nan, min_rtol=nan)
    return Comparison("forward", 0, "a", "a", "L", "L", stats,
                      order=order, dtype="float32")


def test_suggested_tolerances_do_not_depend_on_record_order():
    good = rec("forward", 1, "b", "b", "L", "L", 1e-3, passed=False)
    a = DiffReport(records=[_nan_record(0), good]).suggested_tolerances()
    b = DiffReport(records=[good, _nan_record(0)]).suggested_tolerances()
    assert a == b and a["float32"][0]["atol"] == good.stats.min_atol


def test_first_diff_follows_stage_order_not_insertion_order():
    grad = rec("grad", 0, "fc", "fc", "Linear", "Linear", 1.0, passed=False)
    fwd = rec("forward", 5, "fc", "fc", "Linear", "Linear", 1.0, passed=False)
    rep = DiffReport(records=[grad, fwd])
    assert not rep and rep.first_diff is fwd


def test_json_report_round_trips_through_its_loader(tmp_path):
    import json

    from records_factory import make_report, nan_record

    from padiff.report.json_report import ReportFileError, load_json, report_json, write_json

    rep = make_report()
    rep.records.append(nan_record())
    rep.paddle_tree, rep.paddle_root_class = [("", "Net", 0), ("fc", "Linear", 1)], "Net"
    path = write_json(rep, str(tmp_path / "r.json"))
    back = load_json(path)
    assert json.loads(report_json(back)) == json.loads(report_json(rep))
    assert bool(back) == bool(rep) and back.first_diff is not None and rep.first_diff is not None
    assert back.first_diff.to_dict() == rep.first_diff.to_dict()
    assert back.paddle_tree == rep.paddle_tree and back.records[0].to_dict() == rep.records[0].to_dict()
    data = json.loads(report_json(rep))
    assert data["version"] == 1
    (tmp_path / "old.json").write_text(json.dumps({**data, "version": 99}))
    with pytest.raises(ReportFileError, match="format version 1"):
        load_json(str(tmp_path / "old.json"))


def test_failure_records_without_numbers_agree_on_inf():
    from padiff.compare.arrays import structure_mismatch

    for stats in (Stats.failure("nothing compared", kind="nothing"), structure_mismatch(1, 2)):
        assert not stats.passed and stats.max_abs_diff == stats.min_atol == math.inf and stats.note_kind
    with pytest.raises(TypeError):
        Stats(False, 0.0, 0.0, 0, 0, 0.0, 0.0, 1.0, 0.0, 0.0)  # type: ignore[misc]  # keyword-only


def test_decisions_read_warning_codes_not_wording():
    from padiff.report.records import ReportWarning

    rep = DiffReport(warnings=[ReportWarning("dropout is in train mode", "dropout_train"), "a plain warning"])
    assert rep.has_warning("dropout_train") and not rep.has_warning("mode_mismatch")
    assert rep.warnings[0] == "dropout is in train mode"  # still the text a person reads
    reworded = DiffReport(warnings=["mentions train mode but is about something else"])
    assert not reworded.has_warning("dropout_train", "mode_mismatch")
    assert rep.to_dict()["warning_codes"] == ["dropout_train", "other"]
