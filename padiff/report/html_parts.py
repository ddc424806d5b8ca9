"""Parts of the HTML report: comparisons grouped per layer pair, the two model trees, the SVG plot.

The plot shows the error against layer order or depth: max abs diff with atol on the left
axis, max rel diff with rtol on its own right axis, both log10, one point per comparison.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from padiff.names import show as show_path
from padiff.report.records import Comparison, DiffReport
from padiff.report.text import fmt_num

esc = html.escape


@dataclass
class Pair:
    """One (paddle path, torch path) pair and its comparisons."""

    key: int
    paddle_path: str
    torch_path: str
    paddle_class: str = ""
    torch_class: str = ""
    records: list[Comparison] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.records)

    def worst(self, stage: str) -> Comparison | None:
        recs = [r for r in self.records if r.stage == stage]
        return max(recs, key=lambda r: _badness(r.max_abs_diff)) if recs else None


def _badness(v: float) -> float:
    return math.inf if math.isnan(v) else v


def group_pairs(rep: DiffReport) -> dict[tuple[str, str], Pair]:
    pairs: dict[tuple[str, str], Pair] = {}

    def get(pp: str, tp: str, pc: str = "", tc: str = "") -> Pair:
        k = (pp, tp)
        if k not in pairs:
            pairs[k] = Pair(len(pairs), pp, tp, pc, tc)
        return pairs[k]

    for m in rep.mapping:
        get(str(m.get("paddle_path", "")), str(m.get("torch_path", "")), str(m.get("paddle_class", "")),
            str(m.get("torch_class", "")))
    for r in rep.ordered():
        p = get(r.paddle_path, r.torch_path, r.paddle_class, r.torch_class)
        p.records.append(r)
    return pairs


def tree_html(side: str, tree: Sequence[tuple[str, str, int]], root_class: str,
               partner: dict[str, Pair], first_path: str | None, skipped: set[str], stages: Sequence[str],
               shown: str) -> str:
    """One tree; a paired node carries its result and number per stage (``data-st-<stage>``), and the
    page's stage selector decides which one colours it. ``shown`` is the stage of the static classes."""
    rows = []
    for path, cls, depth in tree:
        pair = partner.get(path)
        classes = ["node"] + (["root"] if not path else [])
        attrs = ""
        badge = ""
        if pair is not None:
            classes.append("paired")
            now = pair.worst(shown)
            if now is not None:
                classes.append("pass" if now.passed else "fail")
            other = pair.torch_path if side == "paddle" else pair.paddle_path
            attrs = f' data-pair="{pair.key}" title="paired with {esc(show_path(other))}"'
            for stage in stages:
                results = [r for r in pair.records if r.stage == stage]
                worst = pair.worst(stage)
                if worst is None:
                    continue
                attrs += f' data-st-{esc(stage)}="{"pass" if all(r.passed for r in results) else "fail"}"'
                badge += f'<span class="num st" data-st="{esc(stage)}">{esc(fmt_num(worst.max_abs_diff))}</span>'
        else:
            classes.append("unpaired")
        if path in skipped:
            badge += '<span class="skip">(skip)</span>'
        if first_path is not None and path == first_path:
            classes.append("first")
            badge += '<span class="here">&lt;--- *** HERE ***</span>'
        name = path.rsplit(".", 1)[-1] if path else (cls or root_class)
        label = f'<b>{esc(name)}</b> <i>{esc(cls)}</i>' if path else f"<b>{esc(name)}</b>"
        rows.append(f'<div class="{" ".join(classes)}"{attrs} style="padding-left:{0.4 + depth * 1.2:.1f}em">'
                    f'{label}{badge}</div>')
    if not rows:
        rows.append('<div class="node unpaired">(tree not recorded)</div>')
    return "\n".join(rows)


# --- SVG plot ------------------------------------------------------------------------------
W, H, ML, MR, MT, MB = 1200, 260, 70, 70, 22, 44


def _decades(vals: list[float], tol: float | None) -> tuple[int, int]:
    """The log10 range (whole decades) holding the finite positive values and the tolerance."""
    vals = [v for v in vals if math.isfinite(v) and v > 0]
    if tol and tol > 0:
        vals.append(tol)
    lo = math.floor(math.log10(min(vals))) if vals else -8
    hi = math.ceil(math.log10(max(vals))) if vals else 0
    return min(lo, hi - 1), hi


def first_diff_label(x: float, y: float, text: str, left: float, right: float, top: float) -> str:
    """The "first diff: ..." label beside the marked point at ``(x, y)`` (``text`` already escaped).

    Placed left of the point when it sits in the right 40% of the plot area ``[left, right]``, and
    kept below the area's ``top``; shared by every plot of the HTML report.
    """
    on_right = x > left + (right - left) * 0.6
    return (f'<text x="{x - 9 if on_right else x + 9:.1f}" y="{max(y - 8, top + 12):.1f}" class="firstlabel" '
            f'text-anchor="{"end" if on_right else "start"}">first diff: {text}</text>')


def plot_svg(stage: str, recs: list[Comparison], pairs: dict[tuple[str, str], Pair], first: Comparison | None,  # noqa: C901, PLR0915  # draws axes, ticks, lines and points of one SVG in order
          atol: float | None, rtol: float | None, x_of: str) -> str:
    """An inline SVG: max abs diff (solid, left axis, with atol) and max rel diff (dotted, right axis, with
    rtol) per comparison, both log10. Separate axes: a relative diff of 1e3 on a near-zero passing tensor
    says nothing about the absolute error, and must not squash it."""
    if not recs:
        return ""
    axes = {"abs": _decades([r.max_abs_diff for r in recs], atol),
            "rel": _decades([r.max_rel_diff for r in recs], rtol)}

    def y_exp(e: float, series: str) -> float:
        lo, hi = axes[series]
        floor_y, top_y = lo - 0.6, hi + 0.6  # zeros just below the lowest decade, nan / inf above the highest
        return MT + (top_y - e) / (top_y - floor_y) * (H - MT - MB)

    def y_of(v: float, series: str = "abs") -> float:
        lo, hi = axes[series]
        if math.isnan(v) or math.isinf(v):
            return y_exp(hi + 0.6, series)
        return y_exp(lo - 0.6 if v <= 0 else math.log10(v), series)

    if x_of == "depth":
        # spread the comparisons of one depth side by side inside a band centred on the depth
        depths = [r.depth for r in recs]
        count = {d: depths.count(d) for d in set(depths)}
        seen: dict[int, int] = {}
        xs_raw = []
        for d in depths:
            k = seen.get(d, 0)
            seen[d] = k + 1
            xs_raw.append(d + 0.5 + ((k + 0.5) / count[d] - 0.5) * 0.6)
        span = float(max(depths) + 1)
        xlabel = "nesting depth of the paddle layer (0 = the model) →"
    else:
        xs_raw = [float(i) for i in range(len(recs))]
        span = max(len(recs) - 1, 1)
        xlabel = "comparisons in run order (call order; deeper into the network →)"

    def x_of_i(i: int) -> float:
        return ML + (xs_raw[i] / span) * (W - ML - MR) if span else ML

    parts = [f'<svg class="plot" role="img" viewBox="0 0 {W} {H}" preserveAspectRatio="xMinYMin meet" '
             f'data-stage="{esc(stage)}" data-x="{x_of}">',
             f'<rect x="{ML}" y="{MT}" width="{W - ML - MR}" height="{H - MT - MB}" class="frame"/>']
    for series, x_tick, anchor in (("abs", ML - 6, "end"), ("rel", W - MR + 6, "start")):
        lo, hi = axes[series]
        every = max(1, math.ceil((hi - lo + 1) / 8))  # at most ~8 labelled decades
        for e in range(lo, hi + 1):
            y = y_exp(e, series)
            if series == "abs":
                parts.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
            if (e - lo) % every == 0:
                parts.append(f'<text x="{x_tick}" y="{y + 4:.1f}" class="tick {series}" text-anchor="{anchor}">'
                             f"1e{e}</text>")
        parts.append(f'<text x="{x_tick}" y="{y_of(0.0, series) + 4:.1f}" class="tick {series}" '
                     f'text-anchor="{anchor}">0</text>')
        parts.append(f'<text x="{x_tick}" y="{y_of(math.inf, series) + 4:.1f}" class="tick {series}" '
                     f'text-anchor="{anchor}">inf/nan</text>')
    for tol, series, name in ((atol, "abs", "atol"), (rtol, "rel", "rtol")):
        if tol and tol > 0:
            y = y_of(tol, series)
            x_label = ML + 4 if series == "abs" else W - MR - 4
            parts.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" class="tol {name}"/>'
                         f'<text x="{x_label}" y="{y - 4:.1f}" class="tick {series}" '
                         f'text-anchor="{"start" if series == "abs" else "end"}">{name}</text>')
    if x_of == "depth":
        for d in range(int(span)):
            x = ML + ((d + 0.5) / span) * (W - ML - MR)
            parts.append(f'<text x="{x:.1f}" y="{H - MB + 14}" class="tick" text-anchor="middle">{d}</text>')
            if d:
                xb = ML + (d / span) * (W - ML - MR)
                parts.append(f'<line x1="{xb:.1f}" x2="{xb:.1f}" y1="{MT}" y2="{H - MB}" class="grid"/>')
    else:
        steps = sorted({r.step for r in recs})
        for s in steps[1:]:
            i = next(i for i, r in enumerate(recs) if r.step == s)
            x = x_of_i(i) - 3
            right = x > ML + (W - ML - MR) * 0.85
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MT}" y2="{H - MB}" class="stepline"/>'
                         f'<text x="{x - 3 if right else x + 3:.1f}" y="{MT - 6}" class="tick" '
                         f'text-anchor="{"end" if right else "start"}">step {s}</text>')
        for series, attr in (("abs", "max_abs_diff"), ("rel", "max_rel_diff")):
            pts = " ".join(f"{x_of_i(i):.1f},{y_of(getattr(r, attr), series):.1f}" for i, r in enumerate(recs))
            parts.append(f'<polyline points="{pts}" class="line {series}"/>')
    for i, r in enumerate(recs):
        pair = pairs.get((r.paddle_path, r.torch_path))
        key = f' data-pair="{pair.key}"' if pair else ""
        cls = "pt " + ("pass" if r.passed else "fail") + (" first" if r is first else "")
        x, y = x_of_i(i), y_of(r.max_abs_diff)
        tip = (f"{show_path(r.paddle_path)} ↔ {show_path(r.torch_path)} [{r.item}] step {r.step}: "
               f"max abs {fmt_num(r.max_abs_diff)}, max rel {fmt_num(r.max_rel_diff)}, cosine {fmt_num(r.cosine)}")
        radius = 6 if r is first else 3.5
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" class="{cls}"{key}><title>{esc(tip)}</title>'
                     "</circle>")
        if r is first:
            parts.append(first_diff_label(x, y, f"{esc(show_path(r.paddle_path))} ↔ {esc(show_path(r.torch_path))}",
                                          ML, W - MR, MT))
    parts.append(f'<text x="{(ML + W - MR) / 2:.0f}" y="{H - 10}" class="axis" text-anchor="middle">'
                 f"{esc(xlabel)}</text>")
    mid = (MT + H - MB) / 2
    parts.append(f'<text x="16" y="{mid:.0f}" class="axis abs" text-anchor="middle" '
                 f'transform="rotate(-90 16 {mid:.0f})">max abs diff (log)</text>')
    parts.append(f'<text x="{W - 14}" y="{mid:.0f}" class="axis rel" text-anchor="middle" '
                 f'transform="rotate(90 {W - 14} {mid:.0f})">max rel diff (log)</text>')
    parts.append("</svg>")
    return "".join(parts)
