"""Text for calibrated records (``compare_mode="calibrated"``): errors in units of torch's own rounding.

A calibrated record's verdict figure is ``noise_ratio``, paddle's error against the float64
reference divided by torch's own (or by the dtype's resolution floor): "paddle error 1.4x torch's
own rounding". These lines replace the tolerance lines of the other modes in the text report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from padiff.report.records import Comparison, Stats


def ratio_text(s: Stats) -> str:
    """``"paddle error 1.4x torch's own rounding"`` (empty for a record without a reference)."""
    if math.isnan(s.noise_ratio):
        return ""
    r = s.noise_ratio
    shown = f"{r:.2g}x" if r < 10 else f"{r:.3g}x" if r < 1e4 else f"{r:.2e}x"
    return f"paddle error {shown} torch's own rounding"


def _num(v: float) -> str:
    return "nan" if math.isnan(v) else "0" if v == 0 else f"{v:.4g}"


def calibrated_numbers(rec: Comparison) -> list[str]:
    """The figures of one calibrated record, the verdict's first (the caller adds shapes, note and dtype)."""
    s = rec.stats
    lines = []
    if not math.isnan(s.noise_ratio):
        lines += [f"  noise ratio       {ratio_text(s)}  [compare_mode=calibrated: the verdict's figure]",
                  f"  errors            paddle {_num(s.paddle_error)}   torch {_num(s.torch_error)}   "
                  "(mean |x - float64 reference|)"]
    lines += [f"  mean abs diff     {_num(s.mean_abs_diff)} (paddle vs torch)",
              f"  max abs diff      {_num(s.max_abs_diff)}",
              f"  means             paddle {_num(s.paddle_mean)}   torch {_num(s.torch_mean)}"]
    return lines


def largest_ratio_line(records: Sequence[Comparison]) -> str:
    """``"  largest noise ratio: paddle error 1.6x torch's own rounding (grad, step 0, qkv [bias])"``."""
    judged = [r for r in records if not math.isnan(r.stats.noise_ratio)]
    if not judged:
        return ""
    top = max(judged, key=lambda r: r.stats.noise_ratio)
    fell_back = sum(r.stats.note_kind == "fallback" for r in records)
    where = f"{top.stage}, step {top.step}, {top.torch_path or '<root>'}" + (f" [{top.item}]" if top.item else "")
    return (f"  largest noise ratio: {ratio_text(top.stats)} ({where})"
            + (f"; {fell_back} record(s) without a float64 reference judged by compare_mode='mean'"
               if fell_back else ""))
