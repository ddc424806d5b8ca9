"""What changed between two layer maps: a :class:`MapDiff` record, and its rendering.

:func:`diff_maps` compares; :func:`render_diff` prints. The record is truthy when anything
changed, so the CLI's exit code (``padiff diff``: 0 same, 1 changed) comes from data, not
from the printed text. No models needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from padiff.maps.review import all_pairs
from padiff.maps.types import Ignore, LayerPair, MapData
from padiff.names import show
from padiff.report.table import Table, render_tables

PairKey = tuple[str, str]
CHANGED_FIELDS = ("confidence", "opaque", "compare_output", "paddle_class", "torch_class")


@dataclass(frozen=True)
class Repaired:
    """A layer of ``side`` paired with another layer than before."""

    side: str
    path: str
    was: str
    now: str


@dataclass(frozen=True)
class FieldChange:
    """The same pair in both maps with one field changed."""

    paddle_path: str
    torch_path: str
    field: str
    was: Any
    now: Any


@dataclass(frozen=True)
class MapDiff:
    """Everything that differs from map ``a`` to map ``b``; truthy when anything does."""

    pairs_before: int
    pairs_after: int
    added: tuple[LayerPair, ...] = ()
    removed: tuple[LayerPair, ...] = ()
    repaired: tuple[Repaired, ...] = ()
    changed: tuple[FieldChange, ...] = ()
    ignores_added: tuple[Ignore, ...] = ()
    ignores_removed: tuple[Ignore, ...] = ()
    route_before: str = ""
    route_after: str = ""

    @property
    def n_changes(self) -> int:
        """Pairs added, removed, re-paired, field changes and ignore changes (not the route)."""
        return (len(self.added) + len(self.removed) + len(self.repaired) + len(self.changed)
                + len(self.ignores_added) + len(self.ignores_removed))

    def __bool__(self) -> bool:
        return self.n_changes > 0


def diff_maps(a: MapData, b: MapData) -> MapDiff:
    """What changed from ``a`` to ``b``: pairs added, removed, re-paired, changed; ignores."""
    pa, pb = all_pairs(a), all_pairs(b)
    key_a: dict[PairKey, LayerPair] = {(p.paddle_path, p.torch_path): p for p in pa}
    key_b: dict[PairKey, LayerPair] = {(p.paddle_path, p.torch_path): p for p in pb}
    a_by_p = {p.paddle_path: p for p in pa}
    a_by_t = {p.torch_path: p for p in pa}
    repaired: list[Repaired] = []
    touched: set[PairKey] = set()
    for p in pb:
        if (p.paddle_path, p.torch_path) in key_a:
            continue
        old = a_by_p.get(p.paddle_path)
        if old is not None:
            repaired.append(Repaired("paddle", p.paddle_path, old.torch_path, p.torch_path))
            touched |= {(old.paddle_path, old.torch_path), (p.paddle_path, p.torch_path)}
        old_t = a_by_t.get(p.torch_path)
        if old_t is not None:
            repaired.append(Repaired("torch", p.torch_path, old_t.paddle_path, p.paddle_path))
            touched |= {(old_t.paddle_path, old_t.torch_path), (p.paddle_path, p.torch_path)}

    def only_in(pairs: list[LayerPair], other: dict[PairKey, LayerPair]) -> tuple[LayerPair, ...]:
        return tuple(p for p in pairs if (k := (p.paddle_path, p.torch_path)) not in other and k not in touched)

    changed = tuple(FieldChange(k[0], k[1], f, getattr(key_a[k], f), getattr(p, f))
                    for k, p in key_b.items() if k in key_a
                    for f in CHANGED_FIELDS if getattr(key_a[k], f) != getattr(p, f))
    ig_a, ig_b = set(a.ignores), set(b.ignores)
    return MapDiff(
        pairs_before=len(pa), pairs_after=len(pb),
        added=only_in(pb, key_a), removed=only_in(pa, key_b), repaired=tuple(repaired), changed=changed,
        ignores_added=tuple(sorted(ig_b - ig_a, key=str)), ignores_removed=tuple(sorted(ig_a - ig_b, key=str)),
        route_before=a.route, route_after=b.route,
    )


def render_diff(d: MapDiff, fancy: bool | None = None) -> str:
    """The printable diff: a headline, then tables of added, removed, re-paired, changed, ignores."""
    def pairs_table(title: str, pairs: tuple[LayerPair, ...]) -> Table:
        table = Table(title, ["paddle (class)", "<->", "torch (class)", "conf"])
        for p in pairs:
            table.add(f"{show(p.paddle_path)} ({p.paddle_class or '?'})", "<->",
                      f"{show(p.torch_path)} ({p.torch_class or '?'})", f"{p.confidence:.2f}")
        return table

    repaired = Table("Re-paired", ["side", "layer", "was paired with", "now paired with"])
    for r in d.repaired:
        repaired.add(r.side, show(r.path), show(r.was), show(r.now), mark=True)
    changed = Table("Same pair, changed fields", ["paddle", "torch", "field", "was", "now"])
    for c in d.changed:
        changed.add(show(c.paddle_path), show(c.torch_path), c.field, c.was, c.now)
    ign = Table("Ignores", ["change", "side", "kind", "path", "class"])
    for change, entries in (("added", d.ignores_added), ("removed", d.ignores_removed)):
        for e in entries:
            ign.add(change, e.side, e.kind, show(e.path), e.cls or "-")
    n_ignores = len(d.ignores_added) + len(d.ignores_removed)
    head = (f"Map diff: {d.pairs_before} pair(s) -> {d.pairs_after} pair(s); " +
            ("no changes." if not d else f"{len(d.added)} added, {len(d.removed)} removed, "
             f"{len(d.repaired)} re-paired, {len(d.changed)} field change(s), {n_ignores} ignore change(s)."))
    if d.route_before != d.route_after:
        head += f"\n  route: {d.route_before} -> {d.route_after}"
    return render_tables([head, pairs_table("Added pairs", d.added), pairs_table("Removed pairs", d.removed),
                          repaired, changed, ign], fancy)
