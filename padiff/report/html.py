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
               partner: dict[str, _Pair], first_path: str | None, skipped: set[str], stages: Sequence[str],
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
            attrs = f' data-pair="{pair.key}" title="paired with {esc(_show(other))}"'
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


def _plot(stage: str, recs: list[Comparison], pairs: dict[tuple[str, str], _Pair], first: Comparison | None,
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
        tip = (f"{_show(r.paddle_path)} ↔ {_show(r.torch_path)} [{r.item}] step {r.step}: "
               f"max abs {fmt_num(r.max_abs_diff)}, max rel {fmt_num(r.max_rel_diff)}, cosine {fmt_num(r.cosine)}")
        radius = 6 if r is first else 3.5
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" class="{cls}"{key}><title>{esc(tip)}</title>'
                     "</circle>")
        if r is first:
            right = x > ML + (W - ML - MR) * 0.6
            parts.append(f'<text x="{x - 9 if right else x + 9:.1f}" y="{max(y - 8, MT + 12):.1f}" '
                         f'class="firstlabel" text-anchor="{"end" if right else "start"}">first diff: '
                         f'{esc(_show(r.paddle_path))} ↔ {esc(_show(r.torch_path))}</text>')
    parts.append(f'<text x="{(ML + W - MR) / 2:.0f}" y="{H - 10}" class="axis" text-anchor="middle">'
                 f"{esc(xlabel)}</text>")
    mid = (MT + H - MB) / 2
    parts.append(f'<text x="16" y="{mid:.0f}" class="axis abs" text-anchor="middle" '
                 f'transform="rotate(-90 16 {mid:.0f})">max abs diff (log)</text>')
    parts.append(f'<text x="{W - 14}" y="{mid:.0f}" class="axis rel" text-anchor="middle" '
                 f'transform="rotate(90 {W - 14} {mid:.0f})">max rel diff (log)</text>')
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
.tree{position:relative;background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:0 0 6px;
max-height:520px;overflow:auto}
.treebox h3{margin:2px 10px 6px;font-size:14px}
.node{padding:1px 8px;white-space:nowrap;border-left:4px solid transparent;cursor:default}
.node i{color:#6b7280;font-style:normal} .node.paired{cursor:pointer}
.node.unpaired{color:#8a929e} .node .num{margin-left:10px;color:#6b7280} .st{display:none}
.node.root{position:sticky;top:0;background:#e6ebf3;z-index:1;border-bottom:1px solid #d5dbe5}
.node.first{background:#ffd9d5;font-weight:600}
.here{color:#b3261e;margin-left:10px;font-weight:700} .skip{color:#8a929e;margin-left:8px}
.hl{outline:2px solid #2563eb;background:#dbe7ff!important} .pin{outline:3px solid #1d4ed8}
table{border-collapse:collapse;background:#fff;width:100%} th,td{border:1px solid #e3e6eb;padding:3px 6px;
text-align:left;vertical-align:top} th{background:#eef1f5;font-weight:600;position:sticky;top:0}
tr.fail td{background:#fff3f2} tr.first td{background:#ffd9d5;font-weight:600} tr[data-pair]{cursor:pointer}
svg.plot{background:#fff;border:1px solid #dde1e7;border-radius:6px;width:100%;height:auto;display:block}
.frame{fill:none;stroke:#c9ced6} .grid{stroke:#eceff3} .tick{font-size:10px;fill:#6b7280}
.axis{font-size:11px;fill:#374151} .tol.atol{stroke:#d97706;stroke-dasharray:5 4}
.tol.rtol{stroke:#9333ea;stroke-dasharray:2 5;opacity:.7} .tick.rel,.axis.rel{fill:#7e22ce}
.stepline{stroke:#9ca3af;stroke-dasharray:2 3} .line{fill:none;stroke-width:1.4}
.line.abs{stroke:#2563eb} .line.rel{stroke:#9333ea;stroke-dasharray:3 3}
.pt.pass{fill:#3f9d55} .pt.fail{fill:#d0433a} .pt.first{stroke:#7f1d1d;stroke-width:3}
.pt.hl{stroke:#2563eb;stroke-width:3;outline:none} .firstlabel{font-size:11px;fill:#b3261e;font-weight:600}
.legend span{margin-right:16px} .sw{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
.warn{color:#92400e} button{font:inherit;padding:2px 10px;margin-right:6px;cursor:pointer}
button.active{background:#1d4ed8;color:#fff;border-color:#1d4ed8}
.banner{background:#fde8e6;border:2px solid #b3261e;border-radius:6px;padding:10px 14px;margin:12px 0;
font-size:15px} .banner b{color:#b3261e}
#stages{position:sticky;top:0;z-index:3;background:#f6f7f9;padding:8px 0;border-bottom:1px solid #dde1e7}
#stages button{padding:4px 12px} #stages .bad{color:#b3261e;font-weight:600} #stages button.active .bad{color:#fff}
.stageplots{display:none} .single{color:#374151}
details.card summary{cursor:pointer;font-weight:600}
"""


def _stage_css(stages: Sequence[str]) -> str:
    """Per stage: colour of the trees' nodes, the numbers shown, the plots and the table column."""
    out = []
    for s in stages:
        sel = f'body[data-stage="{s}"]'
        out.append(f'{sel} .node[data-st-{s}="pass"]{{border-left-color:#3f9d55}}'
                   f'{sel} .node[data-st-{s}="fail"]{{border-left-color:#d0433a;background:#fff3f2}}'
                   f'{sel} .st[data-st="{s}"]{{display:inline}}{sel} .stageplots[data-stage="{s}"]{{display:block}}'
                   f'{sel} #pairs [data-st="{s}"]{{box-shadow:inset 0 0 0 2px #93b4f5}}')
    return "\n".join(out)


STAGE_LABELS = {"forward": "forward", "loss": "loss", "backward": "backward", "grad": "grads", "weight": "weights",
                "assign_weight": "weight assignment"}

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
  function showStage(s){if(!document.querySelector('button[data-stage="'+s+'"]')){return;}
    document.body.setAttribute('data-stage',s);
    document.querySelectorAll('button[data-stage]').forEach(function(b){
      b.classList.toggle('active',b.getAttribute('data-stage')===s);});}
  document.querySelectorAll('button[data-stage]').forEach(function(b){b.addEventListener('click',function(){
    showStage(b.getAttribute('data-stage'));});});
  var st=/[#&]stage=(\w+)/.exec(location.hash);if(st){showStage(st[1]);}
  // scroll a tree only when its first difference is out of view; the root row stays pinned on top
  document.querySelectorAll('.tree .node.first').forEach(function(n){var t=n.parentNode;
    if(n.offsetTop+n.offsetHeight>t.scrollTop+t.clientHeight){t.scrollTop=n.offsetTop-t.clientHeight/2;}});
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
    selectable = [s for s in stages if _STAGE_NAME.fullmatch(s)]
    start = first.stage if first is not None and first.stage in selectable else \
        next((s for s in selectable if s == "forward"), selectable[0] if selectable else "")

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>padiff report: {'SUCCESS' if ok else 'FAILED'}</title>",
           f"<style>{CSS}{_stage_css(selectable)}</style></head><body data-stage=\"{esc(start)}\">"]
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
    out.append(_tree_html("paddle", rep.paddle_tree, rep.paddle_root_class, by_paddle,
                          first.paddle_path if first else None, skipped["paddle"], selectable, start))
    out.append(f'</div></div><div class="treebox"><h3>Torch: {esc(rep.torch_root_class or "model")}</h3>'
               '<div class="tree" id="torch-tree">')
    out.append(_tree_html("torch", rep.torch_tree, rep.torch_root_class, by_torch,
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


def _plots_html(rep: DiffReport, stages: list[str], pairs: dict[tuple[str, str], _Pair],
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
            out.append(_plot(stage, recs, pairs, first, atol, rtol, "order"))
            out.append(_plot(stage, recs, pairs, first, atol, rtol, "depth").replace("<svg ",
                                                                                      '<svg style="display:none" ', 1))
        out.append("</div>")
    if not stages:
        out.append("<p>Nothing was compared.</p>")
    out.append("</div>")
    return "\n".join(out)


def _pair_table(pairs: dict[tuple[str, str], _Pair], stages: list[str], first: Comparison | None) -> str:
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
    return atomic_write(path, render_html(report), what="the HTML report")
