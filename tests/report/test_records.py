"""DiffReport as data: truthiness, ordering, suggested tolerances."""

from __future__ import annotations

import math

from records_factory import rec

from padiff.report.records import Comparison, DiffReport
from padiff.runtime.compare import Stats


def _nan_record(order: int) -> Comparison:
    nan = math.nan
    return Comparison("forward", 0, "a", "a", "L", "L", Stats(False, nan, nan, 1, 1, nan, nan, nan, nan, nan),
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
