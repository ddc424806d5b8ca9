"""A self-contained HTML report of a :class:`DiffReport` (inline CSS, JS and SVG; no network).

What a person looks at first is where the error grows, so the page opens with the
verdict and the first difference, then one plot per stage of the error (log scale)
against the layers in call order (or nesting depth), then both model trees side by
side with paired layers linked (hover or click one to highlight its partner, in the
trees, the plots and the table), then a per-pair table (max abs / rel diff per stage,
cosine, smallest passing atol / rtol) and every comparison in a collapsible table.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from padiff.report.files import atomic_write
from padiff.report.records import STAGES, Comparison, DiffReport
from padiff.report.text import fmt_num, op_rows, tolerance_lines, user_frames

esc = html.escape


@dataclass
class _Pair:
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


def _pairs(rep: DiffReport) -> dict[tuple[str, str], _Pair]:
    pairs: dict[tuple[str, str], _Pair] = {}

    def get(pp: str, tp: str, pc: str = "", tc: str = "") -> _Pair:
        k = (pp, tp)
        if k not in pairs:
            pairs[k] = _Pair(len(pairs), pp, tp, pc, tc)
        return pairs[k]

    for m in rep.mapping:
        get(str(m.get("paddle_path", "")), str(m.get("torch_path", "")), str(m.get("paddle_class", "")),
            str(m.get("torch_class", "")))
    for r in rep.ordered():
        p = get(r.paddle_path, r.torch_path, r.paddle_class, r.torch_class)
        p.records.append(r)
    return pairs


def _show(path: str, root: str = "") -> str:
    return path if path else (f"<root {root}>" if root else "<root>")


def _tree_html(side: str, tree: Sequence[tuple[str, str, int]], root_class: str,
               partner: dict[str, _Pair], first_path: str | None, skipped: set[str]) -> str:
    rows = []
    for path, cls, depth in tree:
        pair = partner.get(path)
        classes = ["node"]
        attrs = ""
        badge = ""
        if pair is not None:
            classes.append("paired")
            classes.append("pass" if pair.passed else "fail")
            other = pair.torch_path if side == "paddle" else pair.paddle_path
            attrs = f' data-pair="{pair.key}" title="paired with {esc(_show(other))}"'
            worst = pair.worst("forward")
            if worst is not None:
                badge = f'<span class="num">{esc(fmt_num(worst.max_abs_diff))}</span>'
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
W, H, ML, MR, MT, MB = 900, 230, 64, 16, 14, 44


def _plot(stage: str, recs: list[Comparison], pairs: dict[tuple[str, str], _Pair], first: Comparison | None,
          atol: float | None, x_of: str) -> str:
    """An inline SVG: log10 max abs diff (solid) and max rel diff (dotted) per comparison."""
    if not recs:
        return ""
    vals = [v for r in recs for v in (r.max_abs_diff, r.max_rel_diff) if math.isfinite(v) and v > 0]
    if atol and atol > 0:
        vals.append(atol)
    lo = math.floor(math.log10(min(vals))) if vals else -8
    hi = math.ceil(math.log10(max(vals))) if vals else 0
    lo = min(lo, hi - 1)
    floor_y = lo - 0.6  # zeros are drawn just below the lowest decade
    top_y = hi + 0.6  # nan / inf just above the highest

    def y_exp(e: float) -> float:
        return MT + (top_y - e) / (top_y - floor_y) * (H - MT - MB)

    def y_of(v: float) -> float:
        if math.isnan(v) or math.isinf(v):
            return y_exp(top_y)
        return y_exp(floor_y if v <= 0 else math.log10(v))

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

    parts = [f'<svg class="plot" role="img" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
             f'data-stage="{esc(stage)}" data-x="{x_of}">',
             f'<rect x="{ML}" y="{MT}" width="{W - ML - MR}" height="{H - MT - MB}" class="frame"/>']
    every = max(1, math.ceil((hi - lo + 1) / 8))  # at most ~8 labelled decades
    for e in range(lo, hi + 1):
        y = y_exp(e)
        parts.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        if (e - lo) % every == 0:
            parts.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">1e{e}</text>')
    parts.append(f'<text x="{ML - 6}" y="{y_of(0.0) + 4:.1f}" class="tick" text-anchor="end">0</text>')
    parts.append(f'<text x="{ML - 6}" y="{y_of(math.inf) + 4:.1f}" class="tick" text-anchor="end">inf/nan</text>')
    if atol and atol > 0:
        y = y_of(atol)
        parts.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" class="atol"/>'
                     f'<text x="{W - MR - 4}" y="{y - 4:.1f}" class="tick" text-anchor="end">atol</text>')
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
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{MT}" y2="{H - MB}" class="stepline"/>'
                         f'<text x="{x + 3:.1f}" y="{MT + 10}" class="tick">step {s}</text>')
        for series, attr in (("abs", "max_abs_diff"), ("rel", "max_rel_diff")):
            pts = " ".join(f"{x_of_i(i):.1f},{y_of(getattr(r, attr)):.1f}" for i, r in enumerate(recs))
            parts.append(f'<polyline points="{pts}" class="line {series}"/>')
    for i, r in enumerate(recs):
        pair = pairs.get((r.paddle_path, r.torch_path))
        key = f' data-pair="{pair.key}"' if pair else ""
        cls = "pt " + ("pass" if r.passed else "fail") + (" first" if r is first else "")
        x, y = x_of_i(i), y_of(r.max_abs_diff)
        tip = (f"{_show(r.paddle_path)} ↔ {_show(r.torch_path)} [{r.item}] step {r.step}: "
               f"max abs {fmt_num(r.max_abs_diff)}, max rel {fmt_num(r.max_rel_diff)}, cosine {fmt_num(r.cosine)}")
        radius = 6 if r is first else 3.5
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" class="{cls}"{key}><title>{esc(tip)}</title>'
                     "</circle>")
        if r is first:
            right = x > ML + (W - ML - MR) * 0.6
            parts.append(f'<text x="{x - 9 if right else x + 9:.1f}" y="{y - 8:.1f}" class="firstlabel" '
                         f'text-anchor="{"end" if right else "start"}">first diff: '
                         f'{esc(_show(r.paddle_path))} ↔ {esc(_show(r.torch_path))}</text>')
    parts.append(f'<text x="{(ML + W - MR) / 2:.0f}" y="{H - 10}" class="axis" text-anchor="middle">'
                 f"{esc(xlabel)}</text>")
    parts.append(f'<text x="14" y="{(MT + H - MB) / 2:.0f}" class="axis" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(MT + H - MB) / 2:.0f})">error (log)</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- page --------------------------------------------------------------------------------------
CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{padding:14px 22px;color:#fff;font-size:18px;font-weight:600}
header.ok{background:#2c7a3f} header.fail{background:#b3261e}
main{padding:8px 22px 40px} h2{font-size:16px;margin:22px 0 8px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 14px;margin:8px 0}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px} .kv div:nth-child(odd){color:#5a6372}
.mono,.num,td{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.trees{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.tree{position:relative;background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:6px 0;
max-height:520px;overflow:auto}
.tree h3{margin:2px 10px 6px;font-size:14px}
.node{padding:1px 8px;white-space:nowrap;border-left:4px solid transparent;cursor:default}
.node i{color:#6b7280;font-style:normal} .node.paired{cursor:pointer}
.node.pass{border-left-color:#3f9d55} .node.fail{border-left-color:#d0433a;background:#fff3f2}
.node.unpaired{color:#8a929e} .node .num{margin-left:10px;color:#6b7280}
.node.first{background:#ffd9d5;font-weight:600}
.here{color:#b3261e;margin-left:10px;font-weight:700} .skip{color:#8a929e;margin-left:8px}
.hl{outline:2px solid #2563eb;background:#dbe7ff!important} .pin{outline:3px solid #1d4ed8}
table{border-collapse:collapse;background:#fff;width:100%} th,td{border:1px solid #e3e6eb;padding:3px 6px;
text-align:left;vertical-align:top} th{background:#eef1f5;font-weight:600;position:sticky;top:0}
tr.fail td{background:#fff3f2} tr.first td{background:#ffd9d5;font-weight:600} tr[data-pair]{cursor:pointer}
svg.plot{background:#fff;border:1px solid #dde1e7;border-radius:6px;max-width:100%;height:auto}
.frame{fill:none;stroke:#c9ced6} .grid{stroke:#eceff3} .tick{font-size:10px;fill:#6b7280}
.axis{font-size:11px;fill:#374151} .atol{stroke:#d97706;stroke-dasharray:5 4}
.stepline{stroke:#9ca3af;stroke-dasharray:2 3} .line{fill:none;stroke-width:1.4}
.line.abs{stroke:#2563eb} .line.rel{stroke:#9333ea;stroke-dasharray:3 3}
.pt.pass{fill:#3f9d55} .pt.fail{fill:#d0433a} .pt.first{stroke:#7f1d1d;stroke-width:3}
.pt.hl{stroke:#2563eb;stroke-width:3;outline:none} .firstlabel{font-size:11px;fill:#b3261e;font-weight:600}
.legend span{margin-right:16px} .sw{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
.warn{color:#92400e} button{font:inherit;padding:2px 10px;margin-right:6px;cursor:pointer}
button.active{background:#1d4ed8;color:#fff;border-color:#1d4ed8}
"""

JS = r"""
(function(){
  function all(k){return document.querySelectorAll('[data-pair="'+k+'"]');}
  function mark(k,cls,on){all(k).forEach(function(e){e.classList.toggle(cls,on);});}
  document.addEventListener('mouseover',function(ev){var t=ev.target.closest('[data-pair]');
    if(t){mark(t.getAttribute('data-pair'),'hl',true);}});
  document.addEventListener('mouseout',function(ev){var t=ev.target.closest('[data-pair]');
    if(t){mark(t.getAttribute('data-pair'),'hl',false);}});
  var pinned=null;
  function pin(k,from){if(pinned!==null){mark(pinned,'pin',false);}
    if(pinned===k){pinned=null;return;}pinned=k;mark(k,'pin',true);
    all(k).forEach(function(e){if(e!==from&&e.classList.contains('node')){var t=e.parentNode;
      t.scrollTop=Math.max(0,e.offsetTop-t.clientHeight/3);}});}
  document.addEventListener('click',function(ev){var t=ev.target.closest('[data-pair]');
    if(t){pin(t.getAttribute('data-pair'),t);}});
  function showX(x){document.querySelectorAll('svg.plot').forEach(function(s){
      s.style.display=(s.getAttribute('data-x')===x)?'':'none';});
    document.querySelectorAll('button[data-x]').forEach(function(b){
      b.classList.toggle('active',b.getAttribute('data-x')===x);});}
  document.querySelectorAll('button[data-x]').forEach(function(b){b.addEventListener('click',function(){
    showX(b.getAttribute('data-x'));});});
  showX(location.hash==='#depth'?'depth':'order');
  document.querySelectorAll('.tree .node.first').forEach(function(n){var t=n.parentNode;
    t.scrollTop=Math.max(0,n.offsetTop-t.clientHeight/3);});
  var m=/^#pair=(\d+)$/.exec(location.hash);if(m){pin(m[1],null);}
})();
"""


def render_html(rep: DiffReport) -> str:
    """The whole page as a string."""
    first = rep.first_diff
    pairs = _pairs(rep)
    by_paddle = {p.paddle_path: p for p in pairs.values() if p.paddle_class != "loss"}
    by_torch = {p.torch_path: p for p in pairs.values() if p.torch_class != "loss"}
    skipped = {"paddle": set(), "torch": set()}
    for s in rep.skipped:
        skipped.setdefault(s.side, set()).add(s.path)
    ok = bool(rep)
    stages = [s for s in STAGES if any(r.stage == s for r in rep.records)]
    stages += [s for s in sorted({r.stage for r in rep.records}) if s not in stages]

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>padiff report: {'SUCCESS' if ok else 'FAILED'}</title>", f"<style>{CSS}</style></head><body>"]
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

    out.append(_summary_html(rep, first, stages))
    out.append(_plots_html(rep, stages, pairs, first))
    out.append('<h2>Model trees (hover or click a layer to see its partner)</h2><div class="trees" id="trees">')
    out.append(f'<div class="tree" id="paddle-tree"><h3>Paddle: {esc(rep.paddle_root_class or "model")}</h3>')
    out.append(_tree_html("paddle", rep.paddle_tree, rep.paddle_root_class, by_paddle,
                          first.paddle_path if first else None, skipped["paddle"]))
    out.append(f'</div><div class="tree" id="torch-tree"><h3>Torch: {esc(rep.torch_root_class or "model")}</h3>')
    out.append(_tree_html("torch", rep.torch_tree, rep.torch_root_class, by_torch,
                          first.torch_path if first else None, skipped["torch"]))
    out.append("</div></div>")
    out.append(_pair_table(pairs, stages, first))
    out.append(_records_table(rep, pairs, first))
    out.append(f"</main><script>{JS}</script></body></html>")
    return "\n".join(out)


def _summary_html(rep: DiffReport, first: Comparison | None, stages: list[str]) -> str:
    rows: list[tuple[str, str]] = []
    if first is not None:
        s = first.stats
        pct = 100.0 * s.mismatched / s.total if s.total else 0.0
        rows += [("first difference", f"{first.stage}, step {first.step}, {first.item or 'output'}"),
                 ("paddle", f"{_show(first.paddle_path, rep.paddle_root_class)} ({first.paddle_class})"),
                 ("torch", f"{_show(first.torch_path, rep.torch_root_class)} ({first.torch_class})"),
                 ("verdict", "mean abs diff against atol + rtol * mean|torch| (compare_mode=mean)"
                  if s.mode == "mean" else "every element against atol + rtol * |torch| (compare_mode=strict)"),
                 ("mean abs diff", f"{fmt_num(s.mean_abs_diff)} (mean |torch| {fmt_num(s.mean_abs_ref)})"),
                 ("max abs diff", fmt_num(s.max_abs_diff) + (f" at {tuple(s.worst_index)}" if s.worst_index else "")),
                 ("max rel diff", fmt_num(s.max_rel_diff)),
                 ("elements outside tolerance", f"{s.mismatched} / {s.total} ({pct:.1f}%)"),
                 ("means", f"paddle {fmt_num(s.paddle_mean)}, torch {fmt_num(s.torch_mean)}"),
                 ("cosine", fmt_num(s.cosine)),
                 ("would pass with", f"atol ≥ {fmt_num(s.min_atol)} or rtol ≥ {fmt_num(s.min_rtol)}")]
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
    if rep.mapping_route:
        rows.append(("layer map", f"{rep.mapping_route} ({len(rep.mapping)} pairs)"))
    for line in tolerance_lines(rep)[1:]:
        rows.append(("suggested tolerance", line.strip()))
    if rep.conversions:
        rows.append(("weight conversions", "; ".join(rep.conversions)))
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


def _plots_html(rep: DiffReport, stages: list[str], pairs: dict[tuple[str, str], _Pair],
                first: Comparison | None) -> str:
    atol = rep.options.get("atol")
    atol = float(atol) if isinstance(atol, int | float) else None
    out = ['<h2>Where the error grows</h2><div id="plots">',
           '<div class="legend"><button data-x="order">x: call order</button><button data-x="depth">x: nesting '
           'depth</button> <span><i class="sw" style="background:#2563eb"></i>max abs diff</span><span><i class="sw" '
           'style="background:#9333ea"></i>max rel diff</span><span><i class="sw" style="background:#d97706"></i>atol'
           '</span><span style="color:#d0433a">● failed</span><span style="color:#3f9d55">● passed</span></div>']
    for stage in stages:
        recs = [r for r in rep.by_stage(stage)]
        if not recs:
            continue
        out.append(f"<h3>{esc(stage)} ({len(recs)} comparisons, {sum(not r.passed for r in recs)} failed)</h3>")
        out.append(_plot(stage, recs, pairs, first, atol, "order"))
        out.append(_plot(stage, recs, pairs, first, atol, "depth").replace("<svg ", '<svg style="display:none" ', 1))
    if not stages:
        out.append("<p>Nothing was compared.</p>")
    out.append("</div>")
    return "\n".join(out)


def _pair_table(pairs: dict[tuple[str, str], _Pair], stages: list[str], first: Comparison | None) -> str:
    head = "".join(f"<th>{esc(s)}<br>max abs / max rel</th>" for s in stages)
    rows = []
    for p in pairs.values():
        if not p.records:
            continue
        is_first = first is not None and first in p.records
        cls = "first" if is_first else ("fail" if not p.passed else "")
        cells = []
        for s in stages:
            w = p.worst(s)
            cells.append(f"<td>{esc(fmt_num(w.max_abs_diff))} / {esc(fmt_num(w.max_rel_diff))}</td>" if w else
                         "<td></td>")
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


def _records_table(rep: DiffReport, pairs: dict[tuple[str, str], _Pair], first: Comparison | None) -> str:
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
    return atomic_write(path, render_html(report))
