"""One recorded paddle entry against one recorded torch entry: tensors, statistics or merged shards.

At level ``full`` the tensors are compared (the torch one converted to paddle's layout by the
plan's link first); at level ``stats`` the recorded statistics vectors, element by element.
When one run is tensor-parallel (:class:`~padiff.offline.shards.ShardGroup`) its shards are
merged first, and a difference is attributed to the rank whose shard holds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from padiff.compare.calibrated import K, judge
from padiff.compare.verdict import verdict
from padiff.offline.shards import ShardGroup
from padiff.options import DiffOptions
from padiff.report.records import Stats

Fn = Callable[[list[np.ndarray]], np.ndarray] | None

#: the moments of :data:`padiff.offline.fmt.STAT_NAMES` a calibrated verdict on statistics judges (not the counts)
_MOMENTS = 6


@dataclass(frozen=True)
class Reference:
    """The float64 reference of one torch entry (``compare_mode="calibrated"``), or why there is none.

    ``array``: the tensor (level ``full``), ``stats``: its recorded statistics; ``allowance``: an error
    the optimizers' weight-decay conventions explain; ``noise_scale``: the scale of the pass's
    gradients (a gradient below ``NOISE_TAU`` resolutions of it on both sides is rounding noise);
    ``k``: the allowed ratio, which depends on the training step as live
    (:func:`padiff.compare.calibrated.allowed_ratio`).
    """

    array: np.ndarray | None = None
    stats: list[float] | None = None
    why: str = ""
    allowance: float = 0.0
    noise_scale: float = 0.0
    k: float = K

    @classmethod
    def of(cls, te: dict[str, Any], refs: Mapping[str, np.ndarray], noise_scale: float = 0.0,
           k: float = K) -> Reference:
        """The reference the torch run recorded for entry ``te`` (``refs``: the step's reference tensors)."""
        info = te.get("reference")
        if not isinstance(info, dict):
            return cls(why=str(te.get("reference_why") or "none recorded for this tensor"))
        return cls(refs.get(te["key"]), info.get("stats"), "", float(info.get("allowance", 0.0)), noise_scale, k)

    def converted(self, fn: Fn) -> Reference:
        """The reference in paddle's layout (the link that converts the torch tensor converts it too)."""
        if fn is None or self.array is None:
            return self
        try:
            return replace(self, array=fn([self.array]))
        except Exception as e:  # noqa: BLE001 - a conversion the float64 tensor cannot take: no reference
            return Reference(None, None, f"the float64 tensor could not be converted: {type(e).__name__}")


def calibrated(a: np.ndarray, b: np.ndarray, ref: Reference | None, dtype: str, opts: DiffOptions,
               gradient: bool = False, of_gradients: bool | None = None) -> Stats:
    """Paddle ``a`` against torch ``b`` judged against the float64 reference, by the live engine's rule
    (:func:`padiff.compare.calibrated.judge`; no reference: the ``mean`` verdict, saying why).

    ``gradient``: shapes that differ by broadcasting are reconciled as gradients; ``of_gradients``
    (default: ``gradient``): the arrays are gradients, so rounding noise is measured against the pass's."""
    ref = ref or Reference(why="none recorded for this tensor")
    grads = gradient if of_gradients is None else of_gradients
    return judge(a, b, ref.array, ref.why, dtype or str(b.dtype), atol=opts.atol, rtol=opts.rtol,
                 mismatch_ratio=opts.mismatch_ratio, gradient=gradient, allowance=ref.allowance,
                 noise_scale=ref.noise_scale if grads else 0.0, k=ref.k)


def compare_entry(pe: dict[str, Any], te: dict[str, Any], p_ten: Mapping[str, np.ndarray],
                  t_ten: Mapping[str, np.ndarray], fn: Fn, opts: DiffOptions, use_stats: bool,
                  ref: Reference | None = None) -> Stats:
    """The verdict of one entry pair (``fn`` converts the torch array; None copies it).

    ``compare_mode="calibrated"``: judged against ``ref``, the torch entry's float64 reference; at level
    ``stats`` the same rule judges the recorded moments (mean, std, min, max, mean |x|, rms) against the
    reference's, after the NaN/Inf counts agree.
    """
    dtype = str(te.get("dtype", ""))
    grad = pe["stage"] in ("backward", "grad")
    if use_stats or pe["key"] not in p_ten or te["key"] not in t_ten:
        a = np.asarray(pe["stats"], dtype=np.float64)
        b = np.asarray(te["stats"], dtype=np.float64)
        if int(np.prod(pe["shape"])) != int(np.prod(te["shape"])):
            return verdict(np.zeros(pe["shape"]), np.zeros(te["shape"]), opts, mode="strict")
        if opts.compare_mode == "calibrated" and np.array_equal(a[_MOMENTS:], b[_MOMENTS:]):
            r = ref.stats if ref is not None else None
            r_arr = np.asarray(r, dtype=np.float64)[:_MOMENTS] if r is not None else None
            why = (ref.why if ref is not None else "") or "no float64 statistics recorded for this tensor"
            base = ref if ref is not None else Reference()
            return calibrated(a[:_MOMENTS], b[:_MOMENTS], replace(base, array=r_arr, stats=None, why=why,
                                                                  noise_scale=0.0), dtype, opts)
        # moments are layout-free: compare all of them element by element
        return verdict(a, b, opts, mode="strict")
    a, b = p_ten[pe["key"]], t_ten[te["key"]]
    if fn is not None:
        b = fn([b])
    if opts.compare_mode == "calibrated":
        return calibrated(a, b, ref.converted(fn) if ref is not None else None, dtype, opts, gradient=grad)
    return verdict(a, b, opts, gradient=grad)


def compare_shards(step: int, e: dict[str, Any], te: dict[str, Any], pd: Any, pt: Any,
                   p_ten: Mapping[str, np.ndarray], t_ten: Mapping[str, np.ndarray], fn: Fn, opts: DiffOptions,
                   use_stats: bool, ref: Reference | None = None) -> tuple[Stats, str]:
    """Compare one entry after merging the tensor-parallel side's shards; say which shard differs.

    ``ref``: the torch entry's float64 reference (``compare_mode="calibrated"``), usable when torch's
    side is not the sharded one."""
    if isinstance(pt, ShardGroup):
        ref = Reference(why="the torch run's tensor-parallel shards are merged without a float64 reference")
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
    stats = compare_entry(e, te, p_ten, t_ten, fn, opts, use_stats, ref)
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
