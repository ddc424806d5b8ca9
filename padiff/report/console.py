"""Printing reports and mappings to the terminal (the only place auto_diff prints)."""

from __future__ import annotations

import sys
from typing import Any

from padiff.report.records import DiffReport


def print_report(rep: DiffReport, file: Any = None) -> None:
    """Print the text rendering of a report (long logs go to files; their path is printed)."""
    out = file or sys.stdout
    try:
        from padiff.report.text import render_report
    except ImportError:
        render_report = None
    if render_report is not None:
        print(render_report(rep), file=out)
        return
    first = rep.first_diff
    if first is None:
        print(f"padiff: SUCCESS — stages {', '.join(rep.stages)}; max forward diff {rep.max_diff():.3g}", file=out)
    else:
        print(f"padiff: FAILED at {first.stage} step {first.step}: paddle {first.paddle_path} "
              f"({first.paddle_class}) vs torch {first.torch_path} ({first.torch_class}); "
              f"max abs diff {first.max_abs_diff:.3g} {first.note}", file=out)


def print_mapping(lm: Any, file: Any = None) -> None:
    """Print the mapping a run is about to use (layer_map='auto')."""
    out = file or sys.stdout
    try:
        print(lm.review(), file=out)
    except ImportError:
        print(repr(lm), file=out)
