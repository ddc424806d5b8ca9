"""The HTML report's calibrated plot: paddle's error against torch's own, per record, in call order.

In a ``compare_mode="calibrated"`` run every record measured two errors against the float64
reference. Both are drawn on one log scale, paddle's solid and torch's dashed, so a port as
accurate as the original shows two lines lying together and a fault shows paddle's line leaving
torch's at the failing layer (marked, with its ratio).
"""

from __future__ import annotations

import math
from html import escape as esc

from padiff.names import show as show_path
from padiff.report.calibrated_text import ratio_text
from padiff.report.html_parts import first_diff_label
from padiff.report.records import Comparison

W, H, ML, MR, MT, MB = 1200, 240, 70, 20, 22, 44
PADDLE_COLOUR, TORCH_COLOUR = "#2563eb", "#9ca3af"


def calibrated_plot_svg(stage: str, recs: list[Comparison], first: Comparison | None) -> str:
    """An inline SVG of ``paddle_error`` and ``torch_error`` per calibrated record ("" when there are none)."""
    judged = [r for r in recs if not math.isnan(r.stats.noise_ratio)]
    if len(judged) < 2:
        return ""
    values = [v for r in judged for v in (r.stats.paddle_error, r.stats.torch_error) if v > 0 and math.isfinite(v)]
    lo = math.floor(math.log10(min(values))) if values else -10
    hi = math.ceil(math.log10(max(values))) if values else 0
    lo = min(lo, hi - 1)
    floor_e = lo - 0.5

    def y_of(v: float) -> float:
        e = math.log10(v) if v > 0 and math.isfinite(v) else floor_e
        return MT + (hi - e) / (hi - floor_e) * (H - MT - MB)

    def x_of(i: int) -> float:
        return ML + i / max(len(judged) - 1, 1) * (W - ML - MR)

    parts = [f'<svg class="plot calibrated" role="img" viewBox="0 0 {W} {H}" preserveAspectRatio="xMinYMin meet" '
             f'data-stage="{esc(stage)}">',
             f'<rect x="{ML}" y="{MT}" width="{W - ML - MR}" height="{H - MT - MB}" class="frame"/>']
    for e in range(lo, hi + 1):
        y = y_of(10.0 ** e)
        parts.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{ML - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">1e{e}</text>')
    for attr, colour, dash in (("torch_error", TORCH_COLOUR, ' stroke-dasharray="6 4"'),
                               ("paddle_error", PADDLE_COLOUR, "")):
        pts = " ".join(f"{x_of(i):.1f},{y_of(getattr(r.stats, attr)):.1f}" for i, r in enumerate(judged))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>')
    for i, r in enumerate(judged):
        x, y = x_of(i), y_of(r.stats.paddle_error)
        colour = "#3f9d55" if r.passed else "#d0433a"
        tip = (f"{show_path(r.paddle_path)} ↔ {show_path(r.torch_path)} [{r.item}] step {r.step}: "
               f"{ratio_text(r.stats)} (paddle {r.stats.paddle_error:.3g}, torch {r.stats.torch_error:.3g})")
        radius = 6 if r is first else 3.5
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}"><title>{esc(tip)}</title>'
                     "</circle>")
        if r is first:
            parts.append(first_diff_label(x, y, f"{esc(show_path(r.torch_path))}, {esc(ratio_text(r.stats))}",
                                          ML, W - MR, MT))
    parts.append(f'<text x="{(ML + W - MR) / 2:.0f}" y="{H - 10}" class="axis" text-anchor="middle">'
                 "records in call order: paddle's error (solid) and torch's own rounding (dashed) against the "
                 "float64 reference, log scale</text>")
    parts.append("</svg>")
    return "".join(parts)
