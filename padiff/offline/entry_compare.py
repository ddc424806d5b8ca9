"""One recorded paddle entry against one recorded torch entry: tensors, statistics or merged shards.

At level ``full`` the tensors are compared (the torch one converted to paddle's layout by the
plan's link first); at level ``stats`` the recorded statistics vectors, element by element.
When one run is tensor-parallel (:class:`~padiff.offline.shards.ShardGroup`) its shards are
merged first, and a difference is attributed to the rank whose shard holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from padiff.compare.verdict import verdict
from padiff.offline.shards import ShardGroup
from padiff.options import DiffOptions
from padiff.report.records import Stats

Fn = Callable[[list[np.ndarray]], np.ndarray] | None


def compare_entry(pe: dict[str, Any], te: dict[str, Any], p_ten: Mapping[str, np.ndarray],
                  t_ten: Mapping[str, np.ndarray], fn: Fn, opts: DiffOptions, use_stats: bool) -> Stats:
    """The verdict of one entry pair (``fn`` converts the torch array; None copies it)."""
    if use_stats or pe["key"] not in p_ten or te["key"] not in t_ten:
        a = np.asarray(pe["stats"], dtype=np.float64)
        b = np.asarray(te["stats"], dtype=np.float64)
        if int(np.prod(pe["shape"])) != int(np.prod(te["shape"])):
            return verdict(np.zeros(pe["shape"]), np.zeros(te["shape"]), opts, mode="strict")
        # moments are layout-free: compare all of them element by element
        return verdict(a, b, opts, mode="strict")
    a, b = p_ten[pe["key"]], t_ten[te["key"]]
    if fn is not None:
        b = fn([b])
    return verdict(a, b, opts, gradient=pe["stage"] in ("backward", "grad"))


def compare_shards(step: int, e: dict[str, Any], te: dict[str, Any], pd: Any, pt: Any,
                   p_ten: Mapping[str, np.ndarray], t_ten: Mapping[str, np.ndarray], fn: Fn, opts: DiffOptions,
                   use_stats: bool) -> tuple[Stats, str]:
    """Compare one entry after merging the tensor-parallel side's shards; say which shard differs."""
    merged = {}
    for name, run, mine, other in (("paddle", pd, e, te), ("torch", pt, te, e)):
        if isinstance(run, ShardGroup):
            m = run.merged(step, mine, other["shape"], use_stats)
            merged[name] = (m, run.ranks)
            ten = {m.entry["key"]: m.array} if m.array is not None else {}
            if name == "paddle":
                e, p_ten = m.entry, ten
            else:
                te, t_ten = m.entry, ten
    stats = compare_entry(e, te, p_ten, t_ten, fn, opts, use_stats)
    notes = []
    for name, (m, ranks) in merged.items():
        if not m.how:
            continue
        text = f"{name} ranks {ranks[0]}-{ranks[-1]} merged, {m.how}"
        if not stats.passed and m.dim >= 0 and m.array is not None:
            bad = _differing_shards(m, name, e["key"], te["key"], p_ten, t_ten, fn, opts, ranks)
            if bad:
                text += f"; differs in the shard of rank {', '.join(str(r) for r in bad)}"
        notes.append(text)
    return stats, "; ".join(notes)


def entry_array(run: Any, step: int, ten: Mapping[str, np.ndarray], entry: dict[str, Any],
                other_shape: Any) -> np.ndarray | None:
    """The tensor of one entry (merged from the ranks when ``run`` is tensor-parallel); None at level stats."""
    if isinstance(run, ShardGroup):
        return run.merged(step, entry, other_shape, False).array
    return ten.get(entry["key"])


def _differing_shards(m: Any, side: str, p_key: str, t_key: str, p_ten: Mapping[str, np.ndarray],
                      t_ten: Mapping[str, np.ndarray], fn: Fn, opts: DiffOptions, ranks: list[int]) -> list[int]:
    """Ranks whose slice of a merged tensor disagrees with the same slice of the other run's tensor."""
    if p_key not in p_ten or t_key not in t_ten:
        return []
    a, b = p_ten[p_key], t_ten[t_key]
    b = fn([b]) if fn is not None else b
    dim = m.dim
    if side == "torch" and fn is not None and b.ndim == 2 and a.shape != t_ten[t_key].shape:
        dim = 1 - dim  # the torch layout was transposed into paddle's
    if a.shape != b.shape or dim >= a.ndim:
        return []
    bad, start = [], 0
    for r, size in zip(ranks, m.sizes):
        sl = tuple(slice(start, start + size) if d == dim else slice(None) for d in range(a.ndim))
        if not verdict(a[sl], b[sl], opts).passed:
            bad.append(r)
        start += size
    return bad
