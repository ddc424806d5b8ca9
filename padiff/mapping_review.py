"""Reading a ``LayerMap``: the side-by-side review of a proposal, and the diff of two maps.

Both return a ``str`` (rich tables on a terminal, aligned plain text otherwise) and need
no models: object entries of ``LayerMap.map`` are shown by class name. The review is the
step between ``suggest_layer_map`` and a run: a person checks what is proposed, where it
differs from plain default pairing, what is uncertain and what was left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from padiff.layer_map import LayerMap, LayerPair
from padiff.report.table import Table, render_tables

LOW_CONFIDENCE = 0.8


def _show(path: str) -> str:
    return path if path else "<root>"


def _shapes(shapes: Iterable[Iterable[int]]) -> str:
    return " ".join("[" + ",".join(str(x) for x in s) + "]" for s in shapes) or "-"


def all_pairs(lm: LayerMap) -> list[LayerPair]:
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
        flags.append(f"fused: {p.split_side} parts concatenate along axis {p.axis}")
    if not p.compare_output:
        flags.append("weights only")
    return ", ".join(flags)


def mapping_summary(lm: LayerMap) -> str:
    """Two or three lines about a map: its route, pairs, how many need a person, how many are unpaired."""
    pairs = all_pairs(lm)
    n_low = sum(p.confidence < LOW_CONFIDENCE for p in pairs)
    n_check = sum(needs_a_person(p) for p in pairs)
    text = (f"layer map (route: {lm.route}): {len(pairs)} pair(s), {n_low} low-confidence (< {LOW_CONFIDENCE}), "
            f"{n_check - n_low} with contradicting evidence, {len(lm.unpaired)} unpaired layer(s)")
    return text


def review_map(lm: LayerMap, fancy: bool | None = None, width: int | None = None) -> str:
    """The printable review of ``lm``: what needs a person first, then every pair, unpaired, ignores.

    Only pairs with low confidence or contradicting evidence are flagged (``!``); where
    the proposal differs from plain default pairing is shown last, as a secondary view:
    a difference there is what the aligner is for, not a problem by itself.
    """
    pairs = all_pairs(lm)
    head = ["Layer map review — " + mapping_summary(lm) +
            f", {len(lm.ignores) + len(getattr(lm, '_object_ignores', []))} ignore(s)."]
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
    for kind, obj, cls in getattr(lm, "_object_ignores", []):
        ig.add("?", kind, f"<{type(obj).__name__} object>", cls.__name__ if cls else "-")
    blocks.append(ig)

    blocks.append(_baseline_table(lm, pairs))
    return render_tables(blocks, fancy, width)


def _baseline_table(lm: LayerMap, pairs: list[LayerPair]) -> Table | str:
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


def diff_maps(a: LayerMap, b: LayerMap, fancy: bool | None = None) -> str:
    """What changed from ``a`` to ``b``: pairs added, removed, re-paired, changed; ignores."""
    pa, pb = all_pairs(a), all_pairs(b)
    key_a = {(p.paddle_path, p.torch_path): p for p in pa}
    key_b = {(p.paddle_path, p.torch_path): p for p in pb}
    a_by_p = {p.paddle_path: p for p in pa}
    a_by_t = {p.torch_path: p for p in pa}

    repaired = Table("Re-paired", ["side", "layer", "was paired with", "now paired with"])
    touched: set[tuple[str, str]] = set()
    for p in pb:
        if (p.paddle_path, p.torch_path) in key_a:
            continue
        old = a_by_p.get(p.paddle_path)
        if old is not None:
            repaired.add("paddle", _show(p.paddle_path), _show(old.torch_path), _show(p.torch_path), mark=True)
            touched |= {(old.paddle_path, old.torch_path), (p.paddle_path, p.torch_path)}
        old_t = a_by_t.get(p.torch_path)
        if old_t is not None:
            repaired.add("torch", _show(p.torch_path), _show(old_t.paddle_path), _show(p.paddle_path), mark=True)
            touched |= {(old_t.paddle_path, old_t.torch_path), (p.paddle_path, p.torch_path)}

    added = _only_in("Added pairs", pb, key_a, touched)
    removed = _only_in("Removed pairs", pa, key_b, touched)

    changed = Table("Same pair, changed fields", ["paddle", "torch", "field", "was", "now"])
    for k, p in key_b.items():
        old = key_a.get(k)
        if old is None:
            continue
        for f in ("confidence", "opaque", "compare_output", "paddle_class", "torch_class"):
            if getattr(old, f) != getattr(p, f):
                changed.add(_show(p.paddle_path), _show(p.torch_path), f, getattr(old, f), getattr(p, f))

    ig_a, ig_b = set(a.ignores), set(b.ignores)
    ign = Table("Ignores", ["change", "side", "kind", "path", "class"])
    for e in sorted(ig_b - ig_a, key=str):
        ign.add("added", e.side, e.kind, _show(e.path), e.cls or "-")
    for e in sorted(ig_a - ig_b, key=str):
        ign.add("removed", e.side, e.kind, _show(e.path), e.cls or "-")

    n = len(added.rows) + len(removed.rows) + len(repaired.rows) + len(changed.rows) + len(ign.rows)
    head = (f"Map diff: {len(pa)} pair(s) -> {len(pb)} pair(s); " +
            ("no changes." if n == 0 else f"{len(added.rows)} added, {len(removed.rows)} removed, "
             f"{len(repaired.rows)} re-paired, {len(changed.rows)} field change(s), {len(ign.rows)} ignore change(s)."))
    if a.route != b.route:
        head += f"\n  route: {a.route} -> {b.route}"
    return render_tables([head, added, removed, repaired, changed, ign], fancy)


def maps_differ(a: LayerMap, b: LayerMap) -> bool:
    """True when ``diff_maps`` would report any change (for the CLI's exit code)."""
    return "no changes." not in diff_maps(a, b, fancy=False).splitlines()[0]


__all__ = ["LOW_CONFIDENCE", "all_pairs", "contradictions", "diff_maps", "mapping_summary", "maps_differ",
           "needs_a_person", "review_map"]


def _only_in(title: str, pairs: list[LayerPair], other: Mapping[tuple[str, str], Any],
             touched: set[tuple[str, str]]) -> Table:
    """The pairs of one map that the other map lacks and that were not re-paired."""
    table = Table(title, ["paddle (class)", "<->", "torch (class)", "conf"])
    for p in pairs:
        k = (p.paddle_path, p.torch_path)
        if k not in other and k not in touched:
            table.add(f"{_show(p.paddle_path)} ({p.paddle_class or '?'})", "<->",
                      f"{_show(p.torch_path)} ({p.torch_class or '?'})", f"{p.confidence:.2f}")
    return table
