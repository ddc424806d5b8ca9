"""The side-by-side review of a layer map: what a person checks before a run.

Returns a ``str`` (rich tables on a terminal, aligned plain text otherwise) and needs no
models: object entries of ``LayerMap.map`` are shown by class name. The review is the step
between ``suggest_layer_map`` and a run: what is proposed, where it differs from plain
default pairing, what is uncertain and what was left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from padiff.maps.types import LOW_CONFIDENCE, LayerPair, MapData
from padiff.names import show as _show
from padiff.report.table import Table, render_tables


def _shapes(shapes: Iterable[Iterable[int]]) -> str:
    return " ".join("[" + ",".join(str(x) for x in s) + "]" for s in shapes) or "-"


def all_pairs(lm: MapData) -> list[LayerPair]:
    """``lm.pairs`` plus ``lm.map`` object entries (as opaque pairs named by class)."""
    out = list(lm.pairs)
    for p_obj, t_obj in lm.map.items():
        pc, tc = type(p_obj).__name__, type(t_obj).__name__
        out.append(LayerPair(f"<{pc} object>", f"<{tc} object>", pc, tc, opaque=True,
                             evidence=("given in LayerMap.map (paths resolved against the models)",)))
    return out


_AGREE = re.compile(r"^(\d+)/(\d+) .*agree")


def contradictions(p: LayerPair) -> list[str]:
    """Evidence items that speak against the pair: partial agreement ("2/4 ... agree") or a tie."""
    out = []
    for e in p.evidence:
        m = _AGREE.match(e)
        if (m and int(m.group(1)) < int(m.group(2))) or e.startswith("tie:"):
            out.append(e)
    return out


def needs_a_person(p: LayerPair) -> bool:
    """A pair worth a person's look: low confidence or evidence that contradicts it."""
    return p.confidence < LOW_CONFIDENCE or bool(contradictions(p))


def _flags(p: LayerPair) -> str:
    flags = []
    if p.confidence < LOW_CONFIDENCE:
        flags.append("LOW CONFIDENCE")
    flags += [f"check: {c}" for c in contradictions(p)]
    if p.opaque:
        flags.append("opaque")
    if p.split_side:
        flags.append(f"fused: {p.split_side} parts concatenate along axis {p.axis}"
                     + (f", interleaved in {p.groups} groups" if p.groups > 1 else ""))
    if not p.compare_output:
        flags.append("weights only")
    return ", ".join(flags)


def mapping_summary(lm: MapData) -> str:
    """Two or three lines about a map: its route, pairs, how many need a person, how many are unpaired."""
    pairs = all_pairs(lm)
    n_low = sum(p.confidence < LOW_CONFIDENCE for p in pairs)
    n_check = sum(needs_a_person(p) for p in pairs)
    text = (f"layer map (route: {lm.route}): {len(pairs)} pair(s), {n_low} low-confidence (< {LOW_CONFIDENCE}), "
            f"{n_check - n_low} with contradicting evidence, {len(lm.unpaired)} unpaired layer(s)")
    return text


def review_map(lm: MapData, fancy: bool | None = None, width: int | None = None) -> str:
    """The printable review of ``lm``: what needs a person first, then every pair, unpaired, ignores.

    Only pairs with low confidence or contradicting evidence are flagged (``!``); where
    the proposal differs from plain default pairing is shown last, as a secondary view:
    a difference there is what the aligner is for, not a problem by itself.
    """
    pairs = all_pairs(lm)
    head = ["Layer map review — " + mapping_summary(lm) +
            f", {len(lm.ignores) + len(lm.object_ignores)} ignore(s)."]
    head += [f"  note: {n}" for n in lm.notes]
    blocks: list[Table | str] = ["\n".join(head)]

    low = Table(f"Check these first (confidence < {LOW_CONFIDENCE} or contradicting evidence)",
                ["#", "paddle", "torch", "conf", "evidence"],
                empty="(none: every pair is confident and no evidence contradicts it)")
    for i, p in enumerate(pairs):
        if needs_a_person(p):
            low.add(i, p.label("paddle"), p.label("torch"), f"{p.confidence:.2f}",
                    "; ".join(p.evidence) or "-", mark=True)
    for i, pp in enumerate(lm.params):
        if pp.confidence < LOW_CONFIDENCE:
            low.add(f"param {i}", pp.paddle_param, pp.torch_param, f"{pp.confidence:.2f}", pp.conversion, mark=True)
    blocks.append(low)

    un = Table("Unpaired layers", ["side", "path", "class", "reason"])
    for u in lm.unpaired:
        un.add(u.side, _show(u.path), u.cls or "?", u.reason or "-", mark=True)
    blocks.append(un)

    t = Table("Proposed pairs (paddle <-> torch)", ["#", "paddle (class)", "<->", "torch (class)", "conf",
                                                     "paddle shapes", "torch shapes", "flags"],
              optional=(2, 5, 6))
    for i, p in enumerate(pairs):
        t.add(i, f"{p.label('paddle')} ({p.paddle_class or '?'})", "<->",
              f"{p.label('torch')} ({p.torch_class or '?'})", f"{p.confidence:.2f}",
              _shapes(p.paddle_shapes), _shapes(p.torch_shapes), _flags(p), mark=needs_a_person(p))
    blocks.append(t)
    if lm.params:
        pt = Table("Parameter pairs (raw parameters, paddle <-> torch)", ["#", "paddle param", "<->", "torch param",
                                                                         "conversion", "conf"], optional=(2,))
        for i, pp in enumerate(lm.params):
            pt.add(i, pp.paddle_param, "<->", pp.torch_param, pp.conversion, f"{pp.confidence:.2f}",
                   mark=pp.confidence < LOW_CONFIDENCE)
        blocks.append(pt)

    ig = Table("Ignored layers", ["side", "kind", "path", "class"])
    for e in lm.ignores:
        ig.add(e.side, e.kind, _show(e.path), e.cls or "-")
    for kind, obj, cls in lm.object_ignores:
        ig.add("?", kind, f"<{type(obj).__name__} object>", cls.__name__ if cls else "-")
    blocks.append(ig)

    blocks.append(_baseline_table(lm, pairs))
    return render_tables(blocks, fancy, width)


def _baseline_table(lm: MapData, pairs: list[LayerPair]) -> Table | str:
    """Where the proposal differs from what plain default pairing would do."""
    if not lm.baseline:
        return "Default pairing: not recorded for this map (only suggest_layer_map records it)."
    prop_t = {p.paddle_path: p.torch_path for p in pairs}
    prop_p = {p.torch_path: p.paddle_path for p in pairs}
    t = Table("For reference: where the proposal differs from default (definition-order) pairing",
              ["paddle", "default pairs it with", "proposal pairs it with"],
              empty="(none: the proposal agrees with default pairing)")
    for b in lm.baseline:
        proposed = prop_t.get(b.paddle_path)
        if proposed != b.torch_path:
            t.add(_show(b.paddle_path), _show(b.torch_path),
                  _show(proposed) if proposed is not None else "(unpaired)")
    base_paddle = {b.paddle_path for b in lm.baseline}
    base_torch = {b.torch_path for b in lm.baseline}
    for p in pairs:
        if p.paddle_path not in base_paddle and p.torch_path in base_torch and prop_p.get(p.torch_path):
            t.add(_show(p.paddle_path), "(not paired by default)", _show(p.torch_path))
    return t


__all__ = ["LOW_CONFIDENCE", "all_pairs", "contradictions", "mapping_summary", "needs_a_person", "review_map"]
