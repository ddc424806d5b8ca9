"""Shape reconciliation: two arrays that hold the same values in a layout-free different shape.

Pure numpy. :func:`reconcile_shapes` gives both arrays one shape and says what it did (the
record's ``Stats.reconciled``), or None for a real shape difference, which then fails.
"""

from __future__ import annotations

import itertools

import numpy as np

#: axis permutations are tried only up to this rank (at most (rank - 2)! candidates)
MAX_PERMUTED_RANK = 6
#: at most this many permuted layouts are compared value by value before a shape difference is final
MAX_LAYOUTS_TRIED = 8


def reconcile_shapes(a: np.ndarray, b: np.ndarray, *,
                     gradient: bool = False) -> tuple[np.ndarray, np.ndarray, str] | None:
    """``(a, b, how)`` with equal shapes when the two differ only in a layout-free way, else None.

    Accepted, in this order: size-1 dims only (``[S, D]`` vs ``[1, S, D]``); broadcasting
    of one side's size-1 dims (``[1, S, D]`` vs ``[B, S, D]``: transformers builds position
    ids as ``[1, S]``, paddle ports as ``[B, S]``); a reshape that only merges or splits
    adjacent dims (``[B, H*W, C]`` vs ``[B, H, W, C]``), which keeps the element order; and,
    for rank 4 and up, the middle axes in another order with the first (batch) and last
    (feature) axes in place (paddle's attention keeps ``[B, S, H, D]``, torch's ``[B, H, S, D]``).
    Any other difference (a transposed matrix, a feature axis moved) is a real shape difference.
    ``how`` says what was done, for the record. With ``gradient``, a broadcast is undone the way
    autograd does it: the bigger side is summed over the broadcast dims.
    """
    sa, sb = list(a.shape), list(b.shape)
    if a.size == b.size and [d for d in sa if d != 1] == [d for d in sb if d != 1]:
        return a.reshape(b.shape), b, f"shapes {sa} vs {sb} differ only by size-1 dims"
    n = max(a.ndim, b.ndim)
    pa, pb = [1] * (n - a.ndim) + sa, [1] * (n - b.ndim) + sb
    differ = [i for i in range(n) if pa[i] != pb[i]]
    if differ and a.size and b.size:
        dims = tuple(differ)
        if all(pa[i] == 1 for i in differ):
            if gradient:
                return (a, b.sum(axis=dims, keepdims=True).reshape(sa),
                        f"torch gradient {sb} summed over the broadcast dims to paddle {sa}")
            return np.broadcast_to(a.reshape(pa), pb), b, f"paddle {sa} broadcast to torch {sb}"
        if all(pb[i] == 1 for i in differ):
            if gradient:
                return (a.sum(axis=dims, keepdims=True).reshape(sb), b,
                        f"paddle gradient {sa} summed over the broadcast dims to torch {sb}")
            return a, np.broadcast_to(b.reshape(pb), pa), f"torch {sb} broadcast to paddle {sa}"
    if a.size == b.size and a.size and _merges_adjacent(sa, sb):
        return a.reshape(b.shape), b, f"paddle {sa} compared with torch {sb} as a reshape (same element order)"
    perm = middle_axes_permutation(a, b)
    if perm is not None:
        return (np.transpose(a, perm), b,
                f"paddle {sa} compared with torch {sb} with its middle axes reordered as {list(perm)}")
    return None


def _merges_adjacent(sa: list[int], sb: list[int]) -> bool:
    """Whether one shape is the other with runs of adjacent dims merged (same element order)."""
    def cuts(shape: list[int]) -> set[int]:
        out, p = set(), 1
        for d in shape:
            p *= d
            out.add(p)
        return out
    ca, cb = cuts(sa), cuts(sb)
    return ca <= cb or cb <= ca


def middle_axes_permutation(a: np.ndarray, b: np.ndarray) -> tuple[int, ...] | None:
    """The order of ``a``'s axes that gives ``b``'s shape moving only the middle axes, or None.

    Both arrays must have the same rank (4 to :data:`MAX_PERMUTED_RANK`), the same first and last
    dim and the same middle dims in another order. When several orders give the shape (two middle
    dims of one size: ``S == H``), the one whose values are closest to ``b`` is taken, so a port
    that agrees is reconciled the way it agrees and a fault still shows as a value difference.
    """
    if a.ndim != b.ndim or not 4 <= a.ndim <= MAX_PERMUTED_RANK or a.size == 0:
        return None
    sa, sb = a.shape, b.shape
    if sa[0] != sb[0] or sa[-1] != sb[-1] or sorted(sa[1:-1]) != sorted(sb[1:-1]) or sa == sb:
        return None
    last = a.ndim - 1
    fits = [(0, *mid, last) for mid in itertools.permutations(range(1, last))
            if tuple(sa[i] for i in mid) == tuple(sb[1:-1])]
    if len(fits) == 1:
        return fits[0]
    if a.dtype.kind not in "fiub" or b.dtype.kind not in "fiub":
        return None  # complex or object arrays: no closest order to pick
    bf = b.astype(np.float64)
    return min(fits, key=lambda p: float(np.nanmean(np.abs(np.transpose(a, p).astype(np.float64) - bf))))


def permuted_layouts(a: np.ndarray, b: np.ndarray,
                     limit: int = MAX_LAYOUTS_TRIED) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Candidate ``(a', b', how)`` layouts that give two equal-sized arrays of other shapes one shape.

    For shapes :func:`reconcile_shapes` does not accept: every axis permutation of one side whose
    result is the other's shape, or reaches it by merging or splitting adjacent dims (an embedding
    looked up with transposed index arrays gives ``[4, N, C]`` against ``[N, 4, C]``; a
    ``[B, H, S, D]`` attention output against ``[B, S, H*D]``). Only a layout whose values then
    agree may be taken (the caller compares them), so a real shape difference still fails. Cheap
    by construction: none unless both sides hold the same number of elements, ranks up to
    :data:`MAX_PERMUTED_RANK`, and at most ``limit`` candidates.
    """
    out: list[tuple[np.ndarray, np.ndarray, str]] = []
    if a.size != b.size or a.size == 0 or not 2 <= max(a.ndim, b.ndim) <= MAX_PERMUTED_RANK:
        return out
    sa, sb = list(a.shape), list(b.shape)
    for moved, other, side in ((a, b, "paddle"), (b, a, "torch")):
        for perm in itertools.permutations(range(moved.ndim)):
            if perm == tuple(range(moved.ndim)):
                continue
            shape = [moved.shape[i] for i in perm]
            if shape != list(other.shape) and not _merges_adjacent(shape, list(other.shape)):
                continue
            fitted = np.transpose(moved, perm).reshape(other.shape)
            how = (f"paddle {sa} compared with torch {sb} with the {side} axes permuted as {list(perm)}"
                   + ("" if shape == list(other.shape) else " then reshaped (same element order)"))
            out.append((fitted, b, how) if side == "paddle" else (a, fitted, how))
            if len(out) >= limit:
                return out
        if a.ndim == b.ndim:
            break  # same rank: permuting the torch side gives the inverse permutations again
    return out
