"""A self-contained HTML report of a :class:`DiffReport` (inline CSS, JS and SVG; no network).

What a person looks at first is the first difference, so the page opens with the verdict
and a banner naming it. A stage selector (forward / backward / grads / weights ...) then
decides what the plots, the trees' colours and the numbers beside each layer show: one
stage at a time, so a strict failure's gradient noise does not paint every layer red
while the forward numbers sit beside them. It opens on the first difference's stage.
The plot shows the error (log scale) against the layers in call order (or nesting
depth), max abs diff with atol on the left axis and max rel diff with rtol on its own
right axis; both model trees sit side by side with paired layers linked (hover or click
one to highlight its partner, in the trees, the plots and the table); then a per-pair
table (max abs / rel diff per stage, cosine, smallest passing atol / rtol) and every
comparison in a collapsible table.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

from padiff.names import show as _show
from padiff.report.files import atomic_write
from padiff.report.html_assets import CSS, JS, STAGE_LABELS, stage_css
from padiff.report.html_calibrated import calibrated_plot_svg
from padiff.report.html_parts import Pair, group_pairs, plot_svg, tree_html
from padiff.report.records import STAGES, Comparison, DiffReport
from padiff.report.text import fmt_num, op_rows, tolerance_lines, user_frames

esc = html.escape


def render_html(rep: DiffReport) -> str:
    """The whole page as a string."""
    first = rep.first_diff
    pairs = group_pairs(rep)
    by_paddle = {p.paddle_path: p for p in pairs.values() if p.paddle_class != "loss"}
    by_torch = {p.torch_path: p for p in pairs.values() if p.torch_class != "loss"}
    skipped: dict[str, set[str]] = {"paddle": set(), "torch": set()}
    for s in rep.skipped:
        skipped.setdefault(s.side, set()).add(s.path)
    ok = bool(rep)
    stages: list[str] = [s for s in STAGES if any(r.stage == s for r in rep.records)]
    stages += [s for s in sorted({r.stage for r in rep.records}) if s not in stages]
    selectable = [s for s in stages if _STAGE_NAME.fullmatch(s)]
    start = first.stage if first is not None and first.stage in selectable else \
        next((s for s in selectable if s == "forward"), selectable[0] if selectable else "")

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>padiff report: {'SUCCESS' if ok else 'FAILED'}</title>",
           f"<style>{CSS}{stage_css(selectable)}</style></head><body data-stage=\"{esc(start)}\">"]
    if ok:
        verdict = (f"padiff: SUCCESS — {len(rep.records)} comparisons agree; max forward diff "
                   f"{fmt_num(rep.max_diff('forward'))}")
    elif first is not None and first.stage != "assign_weight":
        verdict = (f"padiff: FAILED — first difference in {first.stage}, step {first.step}: paddle "
                   f"{_show(first.paddle_path, rep.paddle_root_class)} ({first.paddle_class}) ↔ torch "
                   f"{_show(first.torch_path, rep.torch_root_class)} ({first.torch_class})")
    else:
        verdict = "padiff: FAILED — " + (rep.assign_error or "see below")
    out.append(f'<header class="{"ok" if ok else "fail"}" id="verdict">{esc(verdict)}</header><main>')
    out.append(_banner_html(rep, first))
    out.append(_summary_html(rep, first, stages))
    out.append(_conversions_html(rep))
    out.append(_stage_selector(rep, selectable, start, first))
    out.append(_plots_html(rep, stages, pairs, first))
    out.append('<h2>Model trees (colour and number: the selected stage; hover or click a layer to see its partner)'
               '</h2><div class="trees" id="trees">')
    out.append(f'<div class="treebox"><h3>Paddle: {esc(rep.paddle_root_class or "model")}</h3>'
               '<div class="tree" id="paddle-tree">')
    out.append(tree_html("paddle", rep.paddle_tree, rep.paddle_root_class, by_paddle,
                          first.paddle_path if first else None, skipped["paddle"], selectable, start))
    out.append(f'</div></div><div class="treebox"><h3>Torch: {esc(rep.torch_root_class or "model")}</h3>'
               '<div class="tree" id="torch-tree">')
    out.append(tree_html("torch", rep.torch_tree, rep.torch_root_class, by_torch,
                          first.torch_path if first else None, skipped["torch"], selectable, start))
    out.append("</div></div></div>")
    out.append(_pair_table(pairs, stages, first))
    out.append(_records_table(rep, pairs, first))
    out.append(f"</main><script>{JS}</script></body></html>")
    return "\n".join(out)


_STAGE_NAME = re.compile(r"[a-z_]+")  # stage names safe in CSS selectors and attribute names


def _banner_html(rep: DiffReport, first: Comparison | None) -> str:
    """The first difference in one sentence, in a red box at the top of the page."""
    if first is None or first.stage == "assign_weight":
        return ""
    s = first.stats
    atol, rtol = rep.options.get("atol"), rep.options.get("rtol")
    allowed = f" (allowed: atol {fmt_num(atol)} + rtol {fmt_num(rtol)} · |torch|)" if atol is not None else ""
    if s.mode == "calibrated":  # no tolerance was used: the verdict is the noise ratio
        allowed = f" ({s.note})" if s.note else ""
    return (f'<div class="banner" id="first-diff"><b>First difference</b> — {esc(first.stage)}, step {first.step}, '
            f"{esc(first.item or 'output')}: paddle <b>{esc(_show(first.paddle_path, rep.paddle_root_class))}</b> "
            f"({esc(first.paddle_class)}) ↔ torch <b>{esc(_show(first.torch_path, rep.torch_root_class))}</b> "
            f"({esc(first.torch_class)}): max abs diff {esc(fmt_num(s.max_abs_diff))}{esc(allowed)}, "
            f"{s.mismatched} / {s.total} mismatched; marked in both trees below.</div>")


def _stage_selector(rep: DiffReport, stages: Sequence[str], start: str, first: Comparison | None) -> str:
    if not stages:
        return ""
    buttons = []
    for s in stages:
        recs = [r for r in rep.records if r.stage == s]
        bad = sum(not r.passed for r in recs)
        mark = " ● first difference" if first is not None and first.stage == s else ""
        buttons.append(f'<button data-stage="{esc(s)}" class="{"active" if s == start else ""}">'
                       f'{esc(STAGE_LABELS.get(s, s))} <span class="{"bad" if bad else ""}">'
                       f"({len(recs)}, {bad} failed){esc(mark)}</span></button>")
    return f'<nav id="stages">Stage: {"".join(buttons)}</nav>'


def _conversions_html(rep: DiffReport) -> str:
    """The weight conversions padiff inferred, as a table folded away by default."""
    if not rep.conversions:
        return ""
    rows = []
    for c in rep.conversions:
        where, sep, what = c.partition(": ")
        rows.append(f"<tr><td>{esc(where)}</td><td>{esc(what if sep else '')}</td></tr>")
    return (f'<details class="card" id="conversions"><summary>{len(rep.conversions)} weight conversion(s) inferred '
            "while copying torch → paddle</summary><table><thead><tr><th>paddle ← torch</th><th>conversion</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table></details>")


_VERDICT_TEXT = {
    "mean": "mean abs diff against atol + rtol * mean|torch| (compare_mode=mean)",
    "strict": "every element against atol + rtol * |torch| (compare_mode=strict)",
    "calibrated": "paddle's error against torch's float64 reference, judged in units of torch's own error "
                  "(compare_mode=calibrated; no tolerance used; the note gives the ratio)",
}


def _summary_html(rep: DiffReport, first: Comparison | None, stages: list[str]) -> str:
    rows: list[tuple[str, str]] = []
    if first is not None:
        s = first.stats
        pct = 100.0 * s.mismatched / s.total if s.total else 0.0
        rows += [("first difference", f"{first.stage}, step {first.step}, {first.item or 'output'}"),
                 ("paddle", f"{_show(first.paddle_path, rep.paddle_root_class)} ({first.paddle_class})"),
                 ("torch", f"{_show(first.torch_path, rep.torch_root_class)} ({first.torch_class})"),
                 ("verdict", _VERDICT_TEXT.get(s.mode, _VERDICT_TEXT["strict"])),
                 ("mean abs diff", f"{fmt_num(s.mean_abs_diff)} (mean |torch| {fmt_num(s.mean_abs_ref)})"),
                 ("max abs diff", fmt_num(s.max_abs_diff) + (f" at {tuple(s.worst_index)}" if s.worst_index else "")),
                 ("max rel diff", fmt_num(s.max_rel_diff)),
                 ("elements outside tolerance", f"{s.mismatched} / {s.total} ({pct:.1f}%)"),
                 ("means", f"paddle {fmt_num(s.paddle_mean)}, torch {fmt_num(s.torch_mean)}"),
                 ("cosine", fmt_num(s.cosine)),
                 ("would pass with", f"atol ≥ {fmt_num(s.min_atol)} or rtol ≥ {fmt_num(s.min_rtol)}")]
        if s.mode == "calibrated":  # its min_atol holds paddle's error; tolerances are not what judged it
            rows = [r for r in rows if r[0] not in ("would pass with", "elements outside tolerance")]
        if s.reconciled:
            rows.append(("shapes", s.reconciled))
        if s.note:
            rows.append(("note", s.note))
        rows += op_rows(first.op)
        for side, stack in (("paddle call", user_frames(first.paddle_stack)),
                            ("torch call", user_frames(first.torch_stack))):
            if stack:
                fn, ln, func = stack[-1]
                rows.append((side, f"{fn}:{ln} in {func}"))
    if rep.assign_error:
        rows.append(("weight assignment", rep.assign_error))
    rows.append(("options", ", ".join(f"{k}={v}" for k, v in rep.options.items()) or "(defaults)"))
    rows.append(("steps / stages", f"{rep.steps} / {', '.join(stages) or '(none)'}"))
    for r in rep.by_stage("loss")[:5]:
        rows.append((f"loss, step {r.step}", f"paddle {fmt_num(r.paddle_mean)}, torch {fmt_num(r.torch_mean)}, "
                     f"diff {fmt_num(r.max_abs_diff)} ({'ok' if r.passed else 'FAIL'})"))
    if rep.mapping_route:
        rows.append(("layer map", f"{rep.mapping_route} ({len(rep.mapping)} pairs)"))
    for line in tolerance_lines(rep)[1:]:
        rows.append(("suggested tolerance", line.strip()))
    if rep.log_dir:
        rows.append(("logs", rep.log_dir))
    kv = "".join(f"<div>{esc(k)}</div><div class=\"mono\">{esc(v)}</div>" for k, v in rows)
    warn = "".join(f'<div class="warn">⚠ {esc(w)}</div>' for w in rep.warnings)
    skipped = ""
    if rep.skipped:
        items = "".join(f"<li>{esc(s.side)} {esc(_show(s.path))} ({esc(s.cls)}): {esc(s.reason)}</li>"
                        for s in rep.skipped)
        skipped = f"<details><summary>{len(rep.skipped)} layer(s) ran but were not compared</summary><ul>{items}</ul>" \
                  "</details>"
    return f'<div class="card" id="summary"><div class="kv">{kv}</div>{warn}{skipped}</div>'


def _plots_html(rep: DiffReport, stages: list[str], pairs: dict[tuple[str, str], Pair],
                first: Comparison | None) -> str:
    def tol(name: str) -> float | None:
        v = rep.options.get(name)
        return float(v) if isinstance(v, int | float) else None

    atol, rtol = tol("atol"), tol("rtol")
    out = ['<h2>Where the error grows (selected stage)</h2><div id="plots">',
           '<div class="legend"><button data-x="order">x: call order</button><button data-x="depth">x: nesting '
           'depth</button> <span><i class="sw" style="background:#2563eb"></i>max abs diff (left axis)</span>'
           '<span><i class="sw" style="background:#9333ea"></i>max rel diff (right axis)</span><span><i class="sw" '
           'style="background:#d97706"></i>atol</span><span style="color:#d0433a">● failed</span>'
           '<span style="color:#3f9d55">● passed</span></div>']
    for stage in stages:
        recs = rep.by_stage(stage)
        if not recs:
            continue
        bad = sum(not r.passed for r in recs)
        title = f"{esc(STAGE_LABELS.get(stage, stage))} ({len(recs)} comparisons, {bad} failed)"
        out.append(f'<div class="stageplots" data-stage="{esc(stage)}"><h3>{title}</h3>')
        if len(recs) == 1:  # one point is no chart: say it in words
            r = recs[0]
            out.append(f'<p class="single">One comparison: {esc(_show(r.paddle_path))} ↔ {esc(_show(r.torch_path))} '
                       f"[{esc(r.item)}], step {r.step}: max abs diff {esc(fmt_num(r.max_abs_diff))}, max rel diff "
                       f"{esc(fmt_num(r.max_rel_diff))} — {'ok' if r.passed else 'FAIL'}.</p>")
        else:
            out.append(plot_svg(stage, recs, pairs, first, atol, rtol, "order"))
            out.append(plot_svg(stage, recs, pairs, first, atol, rtol, "depth").replace("<svg ",
                                                                                      '<svg style="display:none" ', 1))
        out.append(calibrated_plot_svg(stage, recs, first))  # "" outside calibrated runs
        out.append("</div>")
    if not stages:
        out.append("<p>Nothing was compared.</p>")
    out.append("</div>")
    return "\n".join(out)


def _pair_table(pairs: dict[tuple[str, str], Pair], stages: list[str], first: Comparison | None) -> str:
    head = "".join(f'<th data-st="{esc(s)}">{esc(s)}<br>max abs / max rel</th>' for s in stages)
    rows = []
    for p in pairs.values():
        if not p.records:
            continue
        is_first = first is not None and first in p.records
        cls = "first" if is_first else ("fail" if not p.passed else "")
        cells = []
        for s in stages:
            w = p.worst(s)
            cells.append(f'<td data-st="{esc(s)}">{esc(fmt_num(w.max_abs_diff))} / {esc(fmt_num(w.max_rel_diff))}</td>'
                         if w else f'<td data-st="{esc(s)}"></td>')
        cos = min((r.cosine for r in p.records), key=lambda c: c if math.isfinite(c) else -math.inf)
        min_atol = max(r.stats.min_atol for r in p.records)
        min_rtol = max(r.stats.min_rtol for r in p.records)
        rows.append(f'<tr class="{cls}" data-pair="{p.key}"><td>{esc(_show(p.paddle_path))} <i>{esc(p.paddle_class)}'
                    f'</i></td><td>{esc(_show(p.torch_path))} <i>{esc(p.torch_class)}</i></td>{"".join(cells)}'
                    f"<td>{esc(fmt_num(cos))}</td><td>{esc(fmt_num(min_atol))}</td><td>{esc(fmt_num(min_rtol))}</td>"
                    f"<td>{'PASS' if p.passed else 'FAIL'}</td></tr>")
    return ('<h2>Compared layers (worst over calls, tensors and steps)</h2><table id="pairs"><thead><tr>'
            f"<th>paddle</th><th>torch</th>{head}<th>cosine (min)</th><th>min passing atol</th>"
            f"<th>min passing rtol</th><th>result</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _records_table(rep: DiffReport, pairs: dict[tuple[str, str], Pair], first: Comparison | None) -> str:
    rows = []
    for r in rep.ordered():
        p = pairs.get((r.paddle_path, r.torch_path))
        key = f' data-pair="{p.key}"' if p else ""
        cls = "first" if r is first else ("fail" if not r.passed else "")
        s = r.stats
        rows.append(f'<tr class="{cls}"{key}><td>{esc(r.stage)}</td><td>{r.step}</td><td>{esc(_show(r.paddle_path))}'
                    f"</td><td>{esc(_show(r.torch_path))}</td><td>{esc(r.item)}</td><td>{esc(fmt_num(s.max_abs_diff))}"
                    f"</td><td>{esc(fmt_num(s.max_rel_diff))}</td><td>{s.mismatched}/{s.total}</td>"
                    f"<td>{esc(fmt_num(s.cosine))}</td><td>{esc(fmt_num(s.min_atol))}</td>"
                    f"<td>{esc(fmt_num(s.min_rtol))}</td><td>{'ok' if r.passed else 'FAIL'}</td>"
                    f"<td>{esc(s.note)}</td></tr>")
    return (f'<h2>All comparisons</h2><details id="records"><summary>{len(rep.records)} comparisons in run order'
            "</summary><table><thead><tr><th>stage</th><th>step</th><th>paddle</th><th>torch</th><th>tensor</th>"
            "<th>max abs</th><th>max rel</th><th>mismatched</th><th>cosine</th><th>min atol</th><th>min rtol</th>"
            f"<th>result</th><th>note</th></tr></thead><tbody>{''.join(rows)}</tbody></table></details>")


def write_html(report: DiffReport, path: str) -> str:
    """Write the self-contained HTML report to ``path`` (atomically) and return the path."""
    return atomic_write(path, render_html(report), what="the HTML report")
