"""Tensor-parallel shards: each rank records its local shard and placement; the comparison merges them.

Recording (framework side, only the framework already loaded is looked at): a torch
``DTensor`` (``torch.distributed.tensor``) or a paddle auto-parallel tensor
(``dist.shard_tensor``, ``Tensor.is_dist()``) is recorded as its local shard, with
``{"mesh": [ranks], "mesh_shape": [...], "placements": [{"shard": d} | "replicate" | "partial"],
"global_shape": [...]}``. Nothing is gathered, so recording adds no collective.

A hook can also see a plain local tensor that is a shard without saying so (torch's
``ColwiseParallel`` hands the next layer its local output): such an entry has no placement,
and :func:`merge` infers it from the shape the other run recorded for the same tensor (one
dim ``world`` times larger: shards along it; the same shape: replicated).

Merging (no framework): ``Shard(d)`` concatenates the ranks' shards along ``d`` in mesh order,
``Replicate`` takes the first rank's copy, ``Partial`` sums them; statistics of shards are
combined exactly (counts, moments, extrema). Only one-dimensional meshes are merged.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from padiff.offline import fmt


def local_shard(side_name: str, t: Any) -> tuple[Any, dict[str, Any] | None]:
    """``(local tensor, placement)`` of a distributed tensor, or ``(t, None)`` for a plain one."""
    if side_name == "torch":
        mod = sys.modules.get("torch.distributed.tensor")
        dt = getattr(mod, "DTensor", None) if mod is not None else None
        if dt is None or not isinstance(t, dt):
            return t, None
        mesh = t.device_mesh.mesh
        return t.to_local(), {"mesh": [int(r) for r in mesh.flatten().tolist()], "mesh_shape": list(mesh.shape),
                              "placements": [_torch_placement(p) for p in t.placements],
                              "global_shape": [int(s) for s in t.shape]}
    is_dist = getattr(t, "is_dist", None)
    if not callable(is_dist) or not is_dist():
        return t, None
    mesh = t.process_mesh
    return t._local_value(), {"mesh": [int(r) for r in mesh.process_ids], "mesh_shape": list(mesh.shape),
                              "placements": [_paddle_placement(p) for p in t.placements],
                              "global_shape": [int(s) for s in t.shape]}


def _torch_placement(p: Any) -> Any:
    if p.is_shard():
        return {"shard": int(p.dim)}
    return "partial" if p.is_partial() else "replicate"


def _paddle_placement(p: Any) -> Any:
    if p.is_shard():
        return {"shard": int(p.get_dim())}
    return "partial" if p.is_partial() else "replicate"


def is_distributed(side_name: str, tensors: Sequence[Any]) -> dict[str, Any] | None:
    """The mesh of the first distributed tensor among ``tensors`` (a model's parameters), or None."""
    for t in tensors:
        _, placement = local_shard(side_name, t)
        if placement is not None:
            return {"ranks": placement["mesh"], "shape": placement["mesh_shape"]}
    return None


@dataclass(frozen=True)
class Merged:
    """One tensor put back together from the ranks' shards."""

    entry: dict[str, Any]  # the first rank's entry, with the merged shape and statistics
    array: np.ndarray | None  # None at level "stats"
    how: str  # "" (one rank), "replicated", "sharded on dim d", "partial sums"
    dim: int = -1  # the shard dim, when sharded
    sizes: tuple[int, ...] = ()  # each rank's extent along ``dim``


def merge(entries: Sequence[dict[str, Any]], arrays: Sequence[np.ndarray | None],
          want_shape: Sequence[int] | None) -> Merged:
    """Merge one tensor's entries (and arrays, ``None`` at level stats) from the ranks, in mesh order.

    ``want_shape`` is the shape the other run recorded; it decides for entries without a placement.
    """
    first = entries[0]
    if len(entries) == 1:
        return Merged(first, arrays[0], "")
    placement = first.get("placement")
    kind: Any = None
    if placement and len(placement.get("mesh_shape", [])) == 1:
        kind = placement["placements"][0]
    elif placement is None:
        kind = _infer(first["shape"], want_shape, len(entries))
    if kind == "replicate" or kind is None:
        return Merged(first, arrays[0], "replicated")
    if kind == "partial":
        have = all(a is not None for a in arrays)
        arr = np.sum(np.stack([np.asarray(a, np.float64) for a in arrays if a is not None]), 0) if have else None
        out = np.asarray(arr, dtype=arrays[0].dtype) if arr is not None and arrays[0] is not None else None
        stats = fmt.tensor_stats(out) if out is not None else first["stats"]
        return Merged({**first, "stats": stats}, out, "partial sums")
    dim = int(kind["shard"]) % max(1, len(first["shape"]))
    sizes = tuple(int(e["shape"][dim]) for e in entries)
    shape = list(first["shape"])
    shape[dim] = sum(sizes)
    arr = (np.concatenate([np.asarray(a) for a in arrays], axis=dim)
           if all(a is not None for a in arrays) else None)
    stats = fmt.tensor_stats(arr) if arr is not None else combine_stats(
        [e["stats"] for e in entries], [int(np.prod(e["shape"])) for e in entries])
    return Merged({**first, "shape": shape, "stats": stats}, arr, f"sharded on dim {dim}", dim, sizes)


def _infer(local: Sequence[int], want: Sequence[int] | None, world: int) -> Any:
    """The placement of an unlabelled local tensor, from the full shape the other run saw."""
    if want is None or list(want) == list(local) or len(want) != len(local):
        return "replicate"
    dims = [d for d in range(len(local)) if int(local[d]) * world == int(want[d])
            and all(int(local[k]) == int(want[k]) for k in range(len(local)) if k != d)]
    return {"shard": dims[0]} if len(dims) == 1 else None


def combine_stats(stats: Sequence[Sequence[float]], counts: Sequence[int]) -> list[float]:
    """:data:`~padiff.offline.fmt.STAT_NAMES` of a concatenation, from its parts' statistics."""
    n_nan = sum(s[6] for s in stats)
    n_inf = sum(s[7] for s in stats)
    finite = [(s, c - int(s[6]) - int(s[7])) for s, c in zip(stats, counts)]
    finite = [(s, c) for s, c in finite if c > 0 and not math.isnan(s[0])]
    total = sum(c for _, c in finite)
    if total == 0:
        return [math.nan] * 6 + [float(n_nan), float(n_inf)]
    mean = sum(s[0] * c for s, c in finite) / total
    sq = sum((s[5] ** 2) * c for s, c in finite) / total  # E[x^2] from each part's rms
    abs_mean = sum(s[4] * c for s, c in finite) / total
    std = math.sqrt(max(sq - mean * mean, 0.0))
    return [mean, std, min(s[2] for s, _ in finite), max(s[3] for s, _ in finite), abs_mean, math.sqrt(sq),
            float(n_nan), float(n_inf)]


def shard_of(merged: Merged, index: Sequence[int], ranks: Sequence[int]) -> int | None:
    """The rank whose shard holds element ``index`` of a sharded merge (None when not sharded)."""
    if merged.dim < 0 or not index or merged.dim >= len(index):
        return None
    pos = int(index[merged.dim])
    for r, size in zip(ranks, merged.sizes):
        if pos < size:
            return int(r)
        pos -= size
    return None


def shard_note(m: Merged, side: str, ranks: Sequence[int], a: np.ndarray, b: np.ndarray, stats: Any,
               opts: Any) -> str:
    """``torch ranks 0-1 merged, sharded on dim 2; differs in the shard of rank 1`` for one merged tensor.

    ``a``/``b`` are the compared paddle and torch arrays, the merged side's laid out as merged.
    """
    from padiff.compare.verdict import verdict

    text = f"{side} ranks {ranks[0]}-{ranks[-1]} merged, {m.how}"
    if stats.passed or m.dim < 0 or a.shape != b.shape or m.dim >= a.ndim:
        return text
    bad, start = [], 0
    for r, size in zip(ranks, m.sizes):
        sl = tuple(slice(start, start + size) if d == m.dim else slice(None) for d in range(a.ndim))
        if not verdict(a[sl], b[sl], opts).passed:
            bad.append(int(r))
        start += size
    return text + (f"; differs in the shard of rank {', '.join(str(r) for r in bad)}" if bad else "")


class ShardGroup:
    """The ranks of one tensor-parallel mesh, read as one run (what ``compare_runs`` compares).

    Looks like a :class:`~padiff.offline.reader.RankRun` (``root``, ``meta``, ``skeleton``,
    ``steps``, ``tensors``, ``warnings``; the first rank's records) and adds :meth:`merged`.
    """

    def __init__(self, runs: Sequence[Any]) -> None:
        self.runs = list(runs)
        first = self.runs[0]
        self.ranks = [int(r.meta.get("rank", i)) for i, r in enumerate(self.runs)]
        self.root, self.meta, self.skeleton = first.root, first.meta, first.skeleton
        self.warnings = [w for r in self.runs for w in r.warnings]
        common = set(first.steps).intersection(*(set(r.steps) for r in self.runs[1:]))
        self.steps = {s: first.steps[s] for s in sorted(common)}
        missing = sorted(set().union(*(set(r.steps) for r in self.runs)) - common)
        if missing:
            self.warnings.append(f"steps {missing} were not recorded by every rank of the mesh {self.ranks}; "
                                 "their shards cannot be merged and they are not compared.")
        self._by_key: dict[int, list[dict[str, dict[str, Any]]]] = {}
        self._tensors: dict[int, list[dict[str, np.ndarray]]] = {}

    @property
    def framework(self) -> str:
        """``"paddle"`` or ``"torch"``."""
        return str(self.meta["framework"])

    def tensors(self, step: int) -> dict[str, np.ndarray]:
        """The first rank's tensors (merging goes through :meth:`merged`)."""
        return self._rank_tensors(step)[0]

    def _rank_tensors(self, step: int) -> list[dict[str, np.ndarray]]:
        if step not in self._tensors:
            self._tensors = {step: [r.tensors(step) for r in self.runs]}
        return self._tensors[step]

    def merged(self, step: int, entry: dict[str, Any], want_shape: Sequence[int] | None, stats_only: bool) -> Merged:
        """One entry of the first rank merged with the same entry of every other rank."""
        if step not in self._by_key:
            self._by_key = {step: [{e["key"]: e for e in r.steps[step]["entries"]} for r in self.runs]}
        entries = [keyed.get(entry["key"]) for keyed in self._by_key[step]]
        if any(e is None for e in entries):
            return Merged(entry, None if stats_only else self.tensors(step).get(entry["key"]), "")
        found = [e for e in entries if e is not None]
        arrays: list[np.ndarray | None] = ([None] * len(found) if stats_only else
                                           [t.get(entry["key"]) for t in self._rank_tensors(step)])
        return merge(found, arrays, want_shape)


def group_ranks(ranks: dict[int, Any], other: dict[int, Any]) -> tuple[dict[int, Any], list[str]]:
    """Replace the ranks of a tensor-parallel mesh by one :class:`ShardGroup` under the mesh's first rank,
    when the other run does not have the same mesh (then ranks are compared one by one, as for DP)."""
    notes: list[str] = []
    out = dict(ranks)
    for r, run in sorted(ranks.items()):
        mesh = run.meta.get("mesh")
        if not mesh or r not in out or int(mesh["ranks"][0]) != r:
            continue
        members = [int(x) for x in mesh["ranks"]]
        same = all(m in other and other[m].meta.get("mesh") == mesh for m in members)
        if same or len(members) < 2:
            continue
        if len(mesh.get("shape", [])) != 1 or any(m not in ranks for m in members):
            notes.append(f"the tensor-parallel mesh {members} (shape {mesh.get('shape')}) cannot be merged: "
                         "one-dimensional meshes with every rank recorded only; compared rank by rank.")
            continue
        out[r] = ShardGroup([ranks[m] for m in members])
        for m in members[1:]:
            out.pop(m, None)
        notes.append(f"ranks {members} hold tensor-parallel shards; they were merged before comparing.")
    return out, notes
