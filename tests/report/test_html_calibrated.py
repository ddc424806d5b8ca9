"""The HTML report of a calibrated run plots paddle's error against torch's own per record, failure marked."""

from __future__ import annotations

import dataclasses

from records_factory import make_report

from padiff.report.html import render_html
from padiff.report.html_calibrated import calibrated_plot_svg


def _calibrated(report):
    """The factory's report with each record judged as a calibrated one (failures 40x torch's own)."""
    recs = []
    for r in report.records:
        ratio = 1.2 if r.passed else 40.0
        stats = dataclasses.replace(r.stats, mode="calibrated", torch_error=1e-8, paddle_error=1e-8 * ratio,
                                    noise_ratio=ratio)
        recs.append(dataclasses.replace(r, stats=stats))
    report.records = recs
    return report


def test_a_calibrated_run_gets_the_error_plot_with_the_failing_layer_marked():
    rep = _calibrated(make_report(fail_at="encoder.fc2"))
    page = render_html(rep)
    assert "torch's own rounding (dashed)" in page
    svg = calibrated_plot_svg("forward", rep.by_stage("forward"), rep.first_diff)
    assert svg.count("<polyline") == 2 and "first diff: " in svg and "paddle error 40x torch&#x27;s own" in svg


def test_other_runs_get_no_calibrated_plot():
    rep = make_report(fail_at="encoder.fc2")
    assert calibrated_plot_svg("forward", rep.by_stage("forward"), rep.first_diff) == ""
    assert "torch's own rounding (dashed)" not in render_html(rep)


def test_a_calibrated_first_difference_is_not_described_by_tolerances():
    # no atol/rtol judged it: the banner and the summary speak of the reference, not of tolerances
    rep = _calibrated(make_report(fail_at="encoder.fc2"))
    rep.options = {**rep.options, "compare_mode": "calibrated"}
    page = render_html(rep)
    banner = page[page.index('id="first-diff"'):].split("</div>", 1)[0]
    assert "allowed: atol" not in banner
    assert "float64 reference" in page and "would pass with" not in page
    assert "every element against atol" not in page


def test_the_x_axis_buttons_leave_the_calibrated_plot_shown():
    # the buttons switch between the call-order and nesting-depth plots (svg.plot with data-x); the
    # calibrated plot has no x choice and must not be hidden by them
    page = render_html(_calibrated(make_report(fail_at="encoder.fc2")))
    cal = page[page.index('<svg class="plot calibrated"'):].split(">", 1)[0]
    assert "data-x" not in cal and "display:none" not in cal
    assert "querySelectorAll('svg.plot[data-x]')" in page
