"""Tensor comparison: one pair of host arrays in, one :class:`Stats` record out.

Two verdicts, both with the torch side as the reference:

- ``mean``: the **mean of the element-wise error** must be small,
  ``mean(|p - t|) <= atol + rtol * mean(|t|)``. Errors cannot cancel (it is not the
  difference of the two means), so a wrong epsilon or a tanh GELU fails, while a few
  elements off by rounding do not.
- ``strict``: every element, ``|p - t| <= atol + rtol * |t|``.

NaN or Inf anywhere in either tensor is never agreement, not even the same Inf on both
sides: the record says ``note="nan"`` / ``"inf"``. Shapes that differ only by size-1 dims,
by broadcasting (``[1, S, D]`` against ``[B, S, D]``) or by a layout-free reshape
(``[B, H*W, C]`` against ``[B, H, W, C]``) are compared after reconciling, and
``Stats.reconciled`` says how; any other shape difference fails. A failure made only of a
few elements that are zero on one side (an activation within rounding of its threshold:
a *boundary flip*) is named in the note, and passes only when the user allows that
fraction with ``mismatch_ratio``. Beside the verdict the record carries what a person
needs to pick tolerances: max abs/rel diff, the mean figures the ``mean`` verdict used,
the count of elements outside the element-wise tolerance, cosine similarity, and the
smallest atol (at the given rtol) and rtol (at the given atol) that would have passed
under the verdict's own figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from padiff.report.records import CompareMode, Stats

#: a failure whose mismatched elements are all boundary flips is named as such only while
#: they are at most this fraction of the tensor (beyond it, it is not "a few elements")
FLIP_NOTE_FRACTION = 0.01


def compare_arrays(a: np.ndarray, b: np.ndarray, atol: float, rtol: float, mode: CompareMode,  # noqa: C901, PLR0915  # the verdict: NaN/Inf, empty, shape reconciliation, mean/strict, flips
                   mismatch_ratio: float = 0.0, *, gradient: bool = False) -> Stats:
    """Compare paddle array ``a`` to torch array ``b`` under the tolerances and mode.

    ``mismatch_ratio`` (default 0): the largest fraction of boundary-flip elements a
    comparison may hold and still pass; other mismatches are never accepted.
    ``gradient``: ``a`` and ``b`` are gradients of two outputs; where the outputs differed by
    broadcasting, the gradient of the broadcast one is the sum of the other's over those dims.
    """
    reconciled = ""
    if a.shape != b.shape:
        fitted = reconcile_shapes(a, b, gradient=gradient)
        if fitted is None:
            n = max(a.size, b.size)
            return Stats.failure(f"shape mismatch: paddle {list(a.shape)} vs torch {list(b.shape)}", kind="shape",
                                 count=n, paddle_mean=_mean(a), torch_mean=_mean(b), mode=mode)
        a, b, reconciled = fitted
    if a.dtype.kind == "c" or b.dtype.kind == "c":
        # complex tensors are compared as (real, imag) pairs: every statistic is over real numbers,
        # so an imaginary part can neither be dropped nor ordered
        a, b = _real_pairs(a), _real_pairs(b)
    if a.dtype.kind not in "fc":
        a = a.astype(np.float64)
    if b.dtype.kind not in "fc":
        b = b.astype(np.float64)
    if a.dtype != b.dtype:
        wide = np.promote_types(a.dtype, b.dtype)
        a, b = a.astype(wide), b.astype(wide)
    total = int(a.size)
    if total == 0:
        return Stats.empty(mode=mode, reconciled=reconciled)
    fused = _fused_pass(a, b, atol, rtol) if mode == "mean" else None
    if fused is not None:
        f = fused
        max_abs, max_rel, mean_a, mean_b = f.max_abs, f.max_rel, f.sum_a / total, f.sum_b / total
        err, ref, mismatched, cos = f.sum_diff / total, f.sum_abs_b / total, f.mismatched, _cos_from(*f.dots)
        special, nonfinite, diff, abs_b = "", 0, None, None
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.asarray(np.subtract(a, b))  # 0-d inputs give a scalar
            np.abs(diff, out=diff)
            peak = diff.max()
        # a NaN or Inf in either tensor makes the peak difference non-finite, so the exact
        # count (four passes over both tensors) is only needed when the peak is not finite
        nonfinite = 0 if np.isfinite(peak) else int((~(np.isfinite(a) & np.isfinite(b))).sum())
        special = ""  # "nan" / "inf": never agreement, not even the same Inf on both sides
        if nonfinite:
            diff = np.where(np.isinf(a) & (a == b), 0.0, diff)
            special = "nan" if (np.isnan(a) | np.isnan(b)).any() else "inf"
        abs_b = np.abs(b)
        if special:
            max_abs = max_rel = math.nan if special == "nan" else math.inf
        else:
            max_abs = float(peak)  # no NaN in diff here, so max is nanmax
            max_rel = _max_rel(diff, abs_b)
        mean_a, mean_b = _mean(a), _mean(b)
        with np.errstate(all="ignore"):  # Inf * 0, x / tiny: numpy's warnings are not the user's business
            mismatched = int((~(diff <= atol + rtol * abs_b)).sum())
            err = math.inf if special else float(np.mean(diff, dtype=np.float64))
            ref = float(np.mean(abs_b, dtype=np.float64))
        cos = _cosine(a, b)
    if special:
        return Stats(passed=False, max_abs_diff=max_abs, max_rel_diff=max_rel, mismatched=max(mismatched, nonfinite),
                     total=total, paddle_mean=mean_a, torch_mean=mean_b, cosine=cos, min_atol=math.inf,
                     min_rtol=math.inf, note=special, note_kind="nan" if special == "nan" else "inf", mode=mode,
                     mean_abs_diff=err, mean_abs_ref=ref, reconciled=reconciled)
    if mode == "mean":
        passed = err <= atol + rtol * ref
        min_atol, min_rtol = _mean_min_tolerances(err, ref, atol, rtol)
    else:
        passed = mismatched == 0
    if (diff is None or abs_b is None) and not passed:  # the fused pass keeps no element arrays
        diff, abs_b = np.abs(np.subtract(a, b)), np.abs(b)
    if mode == "strict":
        assert diff is not None and abs_b is not None  # the fused pass runs in mean mode only
        min_atol, min_rtol = _strict_min_tolerances(diff, abs_b, atol, rtol)
    worst: tuple[int, ...] = ()
    note, flips = "", 0
    if not passed:
        assert diff is not None and abs_b is not None  # computed above for every failure
        if total > 1:
            worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
        flips, rest_ok = _boundary_flips(a, diff, abs_b, atol, rtol, mode)
        if flips and rest_ok and flips <= FLIP_NOTE_FRACTION * total:
            accepted = flips <= mismatch_ratio * total
            note = (f"boundary flip: {flips} of {total} element(s) differ by their whole value (zero on one "
                    f"side, as at an activation within rounding of its threshold); everything else agrees"
                    + ("; accepted by mismatch_ratio" if accepted
                       else f"; mismatch_ratio >= {flips / total:.3g} would accept it"))
            passed = accepted
        else:
            flips = 0
    return Stats(passed=bool(passed), max_abs_diff=max_abs, max_rel_diff=max_rel, mismatched=mismatched, total=total,
                 paddle_mean=mean_a, torch_mean=mean_b, cosine=cos, min_atol=float(min_atol), min_rtol=float(min_rtol),
                 worst_index=worst, note=note, note_kind="flip" if note else "", mode=mode, mean_abs_diff=err,
                 mean_abs_ref=ref, flips=flips, reconciled=reconciled)


def reconcile_shapes(a: np.ndarray, b: np.ndarray, *,
                     gradient: bool = False) -> tuple[np.ndarray, np.ndarray, str] | None:
    """``(a, b, how)`` with equal shapes when the two differ only in a layout-free way, else None.

    Accepted, in this order: size-1 dims only (``[S, D]`` vs ``[1, S, D]``); broadcasting
    of one side's size-1 dims (``[1, S, D]`` vs ``[B, S, D]``: transformers builds position
    ids as ``[1, S]``, paddle ports as ``[B, S]``); a reshape that only merges or splits
    adjacent dims (``[B, H*W, C]`` vs ``[B, H, W, C]``), which keeps the element order. Any
    other difference is a real shape difference. ``how`` says what was done, for the record.
    With ``gradient``, a broadcast is undone the way autograd does it: the bigger side is summed
    over the broadcast dims.
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


def _mean_min_tolerances(err: float, ref: float, atol: float, rtol: float) -> tuple[float, float]:
    """Smallest atol (at ``rtol``) and rtol (at ``atol``) with ``err <= atol + rtol * ref``."""
    min_atol = max(0.0, err - rtol * ref)
    if ref > 0:
        return min_atol, max(0.0, err - atol) / ref
    return min_atol, (0.0 if err <= atol else math.inf)


def _strict_min_tolerances(diff: np.ndarray, abs_b: np.ndarray, atol: float, rtol: float) -> tuple[float, float]:
    """Smallest atol (at ``rtol``) and rtol (at ``atol``) with every ``diff <= atol + rtol * |b|``."""
    with np.errstate(all="ignore"):
        min_atol = max(0.0, float(np.max(diff - rtol * abs_b)))
        need = np.where(abs_b > 0, (diff - atol) / abs_b, np.where(diff > atol, np.inf, 0.0))
        min_rtol = max(0.0, float(np.max(need)))
    return min_atol, min_rtol


def _boundary_flips(a: np.ndarray, diff: np.ndarray, abs_b: np.ndarray, atol: float, rtol: float,
                    mode: str) -> tuple[int, bool]:
    """``(flips, rest_ok)``: mismatched elements that are zero on one side, and whether the rest agrees.

    A ReLU whose input is within rounding of 0 passes the gradient on one side and blocks it
    on the other: that element then differs by the whole gradient value while one side holds
    0. ``rest_ok`` says whether the elements that are not flips pass the mode's own test.
    """
    with np.errstate(all="ignore"):
        allowed = atol + rtol * abs_b
        bad = ~(diff <= allowed)
        flip = bad & (np.minimum(np.abs(a), abs_b) <= allowed)
        n = int(flip.sum())
        if n == 0:
            return 0, False
        if mode == "strict":
            return n, n == int(bad.sum())
        keep = ~flip
        if not keep.any():
            return n, False
        rest_err = float(np.mean(diff[keep], dtype=np.float64))
        rest_ref = float(np.mean(abs_b[keep], dtype=np.float64))
        return n, rest_err <= atol + rtol * rest_ref


def _max_rel(diff: np.ndarray, abs_b: np.ndarray) -> float:
    """max of ``diff / |b|`` where ``|b| > 0``, ``inf`` where ``b == 0 != diff``, ``0`` where both are 0.

    One division and one NaN-skipping max instead of three masked temporaries: ``0/0`` is
    the only NaN the division makes (``diff`` is finite here), and ``x/0`` is ``inf``.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # x / tiny overflows to inf: fine
        rel = np.divide(diff, abs_b)
    peak = np.fmax.reduce(rel.ravel())
    return 0.0 if np.isnan(peak) else float(peak)


#: elements per block of :func:`_fused_pass`: its float32 and float64 scratch stays in cache
_BLOCK = 1 << 16

#: elements per float64 scratch block of a sum: numpy's buffered float64 reduction of a
#: float32 array adds pairwise sums of this many elements in order, so summing the same
#: blocks gives the same bits as ``np.mean(x, dtype=np.float64)``
_CHUNK = 1 << 13


@dataclass
class _Fused:
    """What :func:`_fused_pass` computes in its one pass over both tensors."""

    max_abs: float
    max_rel: float
    sum_a: float
    sum_b: float
    sum_diff: float
    sum_abs_b: float
    mismatched: int
    dots: tuple[float, float, float]


def _fused_pass(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> _Fused | None:
    """Every figure of a mean-mode comparison in one pass over cache-sized blocks, or None.

    The whole-array route reads both tensors from memory a dozen times (difference, its
    max, ``|b|``, the division, its max, the means, the mismatch count, the float64 blocks
    of the dots); profiled on the benchmark models it was the largest cost of a compared
    run. Here each block of both tensors is read once and everything is computed while it
    is in cache. Every figure equals the whole-array one bit for bit: elementwise values and
    maxima do not depend on blocking, and the sums add the same 8192-element pairwise sums
    in the same order as numpy's buffered float64 reduction does (hence float16/float32
    input, contiguous, default buffer size only). None — use the whole-array route — for
    other dtypes or layouts, or as soon as a NaN or Inf shows up.
    """
    if a.dtype != b.dtype or a.dtype.kind != "f" or a.dtype == np.float64 or np.getbufsize() != _CHUNK:
        return None
    if a.ndim == 0 or not (a.flags.c_contiguous and b.flags.c_contiguous):
        return None
    af, bf = a.reshape(-1), b.reshape(-1)
    n = af.size
    m = min(_BLOCK, n)
    d, r, t = np.empty(m, a.dtype), np.empty(m, a.dtype), np.empty(m, a.dtype)
    x, y, u, v = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    peak, rel, bad = 0.0, math.nan, 0
    sa = sb = sd = sr = aa = bb = ab = 0.0
    with np.errstate(all="ignore"):
        for i in range(0, n, _BLOCK):
            k = min(_BLOCK, n - i)
            a_k, b_k, dk, rk, tk = af[i:i + k], bf[i:i + k], d[:k], r[:k], t[:k]
            np.subtract(a_k, b_k, out=dk)
            np.abs(dk, out=dk)
            p = float(dk.max())
            if not math.isfinite(p):
                return None
            peak = max(peak, p)
            np.abs(b_k, out=rk)
            np.multiply(rk, rtol, out=tk)
            np.add(tk, atol, out=tk)
            bad += int(np.count_nonzero(dk > tk))
            xk, yk, uk, vk = x[:k], y[:k], u[:k], v[:k]
            np.copyto(uk, dk)
            np.copyto(vk, rk)
            np.divide(dk, rk, out=rk)  # 0/0 is the only NaN (skipped), x/0 is inf
            q = float(np.fmax.reduce(rk))
            if not math.isnan(q):
                rel = q if math.isnan(rel) else max(rel, q)
            np.copyto(xk, a_k)
            np.copyto(yk, b_k)
            for j in range(0, k, _CHUNK):
                xs, ys = xk[j:j + _CHUNK], yk[j:j + _CHUNK]
                sa += float(np.add.reduce(xs))
                sb += float(np.add.reduce(ys))
                sd += float(np.add.reduce(uk[j:j + _CHUNK]))
                sr += float(np.add.reduce(vk[j:j + _CHUNK]))
                aa += float(np.dot(xs, xs))
                bb += float(np.dot(ys, ys))
                ab += float(np.dot(xs, ys))
    return _Fused(peak, 0.0 if math.isnan(rel) else rel, sa, sb, sd, sr, bad, (aa, bb, ab))


def _real_pairs(x: np.ndarray) -> np.ndarray:
    """``x`` as a real array with a trailing ``(real, imag)`` axis (imag 0 for a real ``x``)."""
    if x.dtype.kind == "c":
        return np.stack([x.real, x.imag], axis=-1)
    x = x if x.dtype.kind == "f" else x.astype(np.float64)
    return np.stack([x, np.zeros_like(x)], axis=-1)


def _mean(a: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    if a.dtype.kind == "c":
        a = a.real
    with np.errstate(all="ignore"):
        return float(np.mean(a, dtype=np.float64))




def _dots(af: np.ndarray, bf: np.ndarray) -> tuple[float, float, float]:
    """``(a·a, b·b, a·b)`` accumulated in float64, one cache-sized block at a time.

    Profiling the benchmark models showed the whole-array route (two float64 copies, then
    three BLAS dots) was the largest cost of a compared run: the copies double the memory
    traffic and grow the peak memory by 4x the tensor, and on a small machine BLAS threads
    left spinning after each large dot fight the frameworks' own threads. Blocks this small
    are dotted in this thread; the result differs from one whole-array dot only in float64
    rounding.
    """
    xb, yb = np.empty(min(_CHUNK, af.size)), np.empty(min(_CHUNK, af.size))
    aa = bb = ab = 0.0
    for i in range(0, af.size, _CHUNK):
        n = min(_CHUNK, af.size - i)
        x, y = xb[:n], yb[:n]
        np.copyto(x, af[i:i + n])
        np.copyto(y, bf[i:i + n])
        aa += float(np.dot(x, x))
        bb += float(np.dot(y, y))
        ab += float(np.dot(x, y))
    return aa, bb, ab


def _cos_from(aa: float, bb: float, ab: float) -> float:
    """Cosine similarity from ``a·a``, ``b·b`` and ``a·b``."""
    na, nb = math.sqrt(aa), math.sqrt(bb)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0 or not (math.isfinite(na) and math.isfinite(nb)):
        return 0.0 if math.isfinite(na) and math.isfinite(nb) else math.nan
    return ab / (na * nb)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        if a.dtype.kind == "f" and b.dtype.kind == "f":
            return _cos_from(*_dots(a.ravel(), b.ravel()))
        af, bf = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
        na, nb = float(np.linalg.norm(af)), float(np.linalg.norm(bf))
        if na == 0 and nb == 0:
            return 1.0
        if na == 0 or nb == 0 or not (np.isfinite(na) and np.isfinite(nb)):
            return 0.0 if np.isfinite(na) and np.isfinite(nb) else math.nan
        return float(np.dot(af, bf) / (na * nb))


def structure_mismatch(n_paddle: int, n_torch: int) -> Stats:
    """A record for outputs whose tensor counts differ between the two sides."""
    return Stats.failure(f"structure mismatch: paddle gives {n_paddle} tensor(s), torch gives {n_torch}",
                         kind="structure", count=max(n_paddle, n_torch))
