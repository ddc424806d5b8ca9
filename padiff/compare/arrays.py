"""Tensor comparison: one pair of host arrays in, one :class:`Stats` record out.

Two verdicts, both with the torch side as the reference:

- ``mean``: the **mean of the element-wise error** must be small,
  ``mean(|p - t|) <= atol + rtol * mean(|t|)``. Errors cannot cancel (it is not the
  difference of the two means), so a wrong epsilon or a tanh GELU fails, while a few
  elements off by rounding do not.
- ``strict``: every element, ``|p - t| <= atol + rtol * |t|``.

NaN or Inf anywhere in either tensor is never agreement, not even the same Inf on both
sides: the record says ``note="nan"`` / ``"inf"``. Shapes that differ only by size-1 dims,
by broadcasting (``[1, S, D]`` against ``[B, S, D]``), by a layout-free reshape
(``[B, H*W, C]`` against ``[B, H, W, C]``) or by the order of the middle axes of an attention
layout (``[B, S, H, D]`` against ``[B, H, S, D]``) are compared after reconciling, any other axis
permutation (with adjacent dims merged) where the values then agree (:mod:`padiff.compare.reconcile`);
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
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from padiff.compare.reconcile import permuted_layouts, reconcile_shapes
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
            for pa, pb, how in permuted_layouts(a, b):  # a layout is taken only where its values agree
                stats = compare_arrays(pa, pb, atol, rtol, mode, mismatch_ratio, gradient=gradient)
                if stats.passed:
                    return replace(stats, reconciled=how)
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
        err, ref, mismatched, cos = f.sum_diff / total, f.sum_abs_b / total, f.mismatched, f.cosine
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
        cos = _cosine(a, b, diff)
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
    if mode == "strict":
        assert diff is not None and abs_b is not None  # the fused pass runs in mean mode only
        min_atol, min_rtol = _strict_min_tolerances(diff, abs_b, atol, rtol)
    worst: tuple[int, ...] = ()
    note, flips = "", 0
    if not passed:
        if fused is not None:  # the failure's figures in a second pass over blocks, as the first
            at, flips, rest_ok = _fused_failure(a, b, atol, rtol, fused, total)
        else:
            assert diff is not None and abs_b is not None  # computed above for every failure
            at = int(np.argmax(diff))
            flips, rest_ok = _boundary_flips(a, diff, abs_b, atol, rtol, mode)
        if total > 1:
            worst = tuple(int(i) for i in np.unravel_index(at, a.shape))
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


#: elements per block of :func:`_fused_pass`: a block of each tensor and three scratch
#: blocks (256 KiB each in float32) stay in a core's L2 cache (2 MiB on the benchmark
#: machine; 1M-element blocks spilled it and ran 1.5x slower per element)
_BLOCK = 1 << 16


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
    cosine: float


def _fused_pass(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> _Fused | None:
    """Every figure of a mean-mode comparison in one pass over cache-sized blocks, or None.

    Each block of both tensors is read from memory once and everything is computed while it
    is in cache: the whole-array route reads both tensors a dozen times, and profiled on the
    benchmark models the comparisons were the largest cost padiff adds to a run. Sums are
    BLAS dot products with a block of ones (float32 accumulators, relative error ~1e-7 per
    block like numpy's pairwise sum, at a third of its time) added in float64 across blocks;
    the cosine comes from ``|a|``, ``|b|`` and ``|a - b|`` (see :func:`_cos_from_norms`),
    which keeps ``1 - cos`` accurate when the two agree closely. A tensor of at least
    :data:`PARALLEL_MIN` elements is split in two halves, the second done by one helper
    thread (numpy releases the GIL in these loops; the frameworks wait for the comparison
    in their hooks, so their cores are free). None — use the whole-array route — for other
    dtypes or layouts, or as soon as a NaN or Inf shows up.
    """
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        return None
    if a.ndim == 0 or not (a.flags.c_contiguous and b.flags.c_contiguous):
        return None
    af, bf = a.reshape(-1), b.reshape(-1)
    n = af.size
    pool = _workers() if n >= PARALLEL_MIN else None
    if pool is not None:
        half = (n // 2 + _BLOCK - 1) // _BLOCK * _BLOCK
        future = pool.submit(_blocks, af, bf, half, n, atol, rtol)
        first, second = _blocks(af, bf, 0, half, atol, rtol), future.result()
        parts = [first, second] if first is not None and second is not None else None
    else:
        one = _blocks(af, bf, 0, n, atol, rtol)
        parts = [one] if one is not None else None
    if parts is None:
        return None
    peak, rel = max(pt[0] for pt in parts), [pt[1] for pt in parts if not math.isnan(pt[1])]
    sa, sb, sd, sr, aa, bb, dd, bad = (sum(pt[i] for pt in parts) for i in range(2, 10))
    return _Fused(peak, max(rel, default=0.0), sa, sb, sd, sr, int(bad), _cos_from_norms(aa, bb, dd))


#: tensors of at least this many elements are compared in two threads (see :func:`_fused_pass`)
PARALLEL_MIN = 4 * _BLOCK

_POOL: list[ThreadPoolExecutor | None] = []


def _workers() -> ThreadPoolExecutor | None:
    """The one helper thread of :func:`_fused_pass`, made on first use; None on a 1-core machine."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(1, thread_name_prefix="padiff-compare") if (os.cpu_count() or 1) > 1 else None)
    return _POOL[0]


_SCRATCH = threading.local()


def _scratch(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """This thread's blocks for :func:`_blocks`: three of ``dtype``, one bool, one of ones.

    Made once per thread and dtype: allocating them for every comparison cost more than
    comparing a 128k-element pair (fresh pages, zeroed by the kernel on first touch).
    """
    cache: dict[np.dtype, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = \
        getattr(_SCRATCH, "blocks", None) or {}
    _SCRATCH.blocks = cache
    if dtype not in cache:
        cache[dtype] = (np.empty(_BLOCK, dtype), np.empty(_BLOCK, dtype), np.empty(_BLOCK, dtype),
                        np.empty(_BLOCK, bool), np.ones(_BLOCK, dtype))
    return cache[dtype]


def _blocks(af: np.ndarray, bf: np.ndarray, lo: int, hi: int, atol: float, rtol: float) -> list[float] | None:
    """Partial figures of ``af[lo:hi]`` vs ``bf[lo:hi]``, or None at a NaN or Inf.

    ``[max |d|, max |d|/|b| (NaN: none), sum a, sum b, sum |d|, sum |b|, a·a, b·b, d·d, mismatched]``.
    Two passes are skipped where their answer is known from the block's peak difference:
    no element is outside ``atol + rtol*|b|`` when the peak is at most ``atol``, and every
    relative difference is 0 when the peak is 0.
    """
    d, r, t, over, ones = _scratch(af.dtype)
    peak, rel, bad = 0.0, math.nan, 0
    sa = sb = sd = sr = aa = bb = dd = 0.0
    within_atol = rtol >= 0  # then |d| <= atol passes whatever |b| is
    with np.errstate(all="ignore"):
        for i in range(lo, hi, _BLOCK):
            k = min(_BLOCK, hi - i)
            a_k, b_k, dk, rk, tk, one = af[i:i + k], bf[i:i + k], d[:k], r[:k], t[:k], ones[:k]
            np.subtract(a_k, b_k, out=dk)
            np.abs(dk, out=dk)
            p = float(dk.max())
            if not math.isfinite(p):
                return None
            peak = max(peak, p)
            np.abs(b_k, out=rk)
            sa += float(np.dot(a_k, one))
            sb += float(np.dot(b_k, one))
            sd += float(np.dot(dk, one))
            sr += float(np.dot(rk, one))
            aa += float(np.dot(a_k, a_k))
            bb += float(np.dot(b_k, b_k))
            dd += float(np.dot(dk, dk))
            if not (within_atol and p <= atol):
                np.multiply(rk, rtol, out=tk)
                np.add(tk, atol, out=tk)
                np.greater(dk, tk, out=over[:k])
                bad += int(np.count_nonzero(over[:k]))
            if p == 0:
                q = 0.0  # 0/|b| is 0, 0/0 is skipped: the block adds 0 or nothing, which max() treats alike
            else:
                np.divide(dk, rk, out=tk)  # 0/0 is the only NaN (skipped), x/0 is inf
                q = float(np.fmax.reduce(tk))
            if not math.isnan(q):
                rel = q if math.isnan(rel) else max(rel, q)
    return [peak, rel, sa, sb, sd, sr, aa, bb, dd, float(bad)]


def _fused_failure(a: np.ndarray, b: np.ndarray, atol: float, rtol: float, f: _Fused,
                   total: int) -> tuple[int, int, bool]:
    """``(flat index of the largest difference, boundary flips, rest_ok)`` of a failed mean-mode pair,
    block by block (see :func:`_boundary_flips` for what they mean).

    The pair is one :func:`_fused_pass` accepted (same float dtype, contiguous, finite), so no
    whole-size ``|a - b|`` or ``|b|`` is made: each block's difference is taken again in cache,
    and only its elements outside the tolerance are looked at one by one. The means of the
    elements that are not flips are the first pass's sums less the flips' own.
    """
    af, bf = a.reshape(-1), b.reshape(-1)
    d, r, t, over, _ = _scratch(af.dtype)
    best, at, flips = -1.0, 0, 0
    flip_d = flip_b = 0.0
    with np.errstate(all="ignore"):
        for i in range(0, af.size, _BLOCK):
            k = min(_BLOCK, af.size - i)
            a_k, b_k, dk, rk, tk, ok = af[i:i + k], bf[i:i + k], d[:k], r[:k], t[:k], over[:k]
            np.subtract(a_k, b_k, out=dk)
            np.abs(dk, out=dk)
            j = int(np.argmax(dk))
            if float(dk[j]) > best:  # the first largest, as argmax over the whole array finds it
                best, at = float(dk[j]), i + j
            np.abs(b_k, out=rk)
            np.multiply(rk, rtol, out=tk)
            np.add(tk, atol, out=tk)  # the element-wise allowance, in the arrays' dtype as the whole route
            np.greater(dk, tk, out=ok)
            bad = np.flatnonzero(ok)
            if not bad.size:
                continue
            allowed, rb = tk[bad], rk[bad]
            flip = np.minimum(np.abs(a_k[bad]), rb) <= allowed
            n = int(np.count_nonzero(flip))
            if n:
                flips += n
                flip_d += float(np.add.reduce(dk[bad][flip], dtype=np.float64))
                flip_b += float(np.add.reduce(rb[flip], dtype=np.float64))
    if flips == 0 or flips == total:
        return at, flips, False
    keep = total - flips
    rest_err, rest_ref = (f.sum_diff - flip_d) / keep, (f.sum_abs_b - flip_b) / keep
    return at, flips, rest_err <= atol + rtol * rest_ref


def _cos_from_norms(aa: float, bb: float, dd: float) -> float:
    """Cosine similarity from ``a·a``, ``b·b`` and ``d·d`` with ``d = a - b``.

    ``cos = 1 - (|d|² - (|a| - |b|)²) / (2|a||b|)``, the law of cosines. Rounding in ``a·a``
    and ``b·b`` enters only squared through ``(|a| - |b|)²``, so ``1 - cos`` keeps its
    digits when the tensors agree to 1e-7, where ``a·b / (|a||b|)`` would round to 1.
    """
    na, nb = math.sqrt(aa), math.sqrt(bb)
    if na == 0 or nb == 0 or not (math.isfinite(na) and math.isfinite(nb)):
        return _cos_from(aa, bb, 0.0)  # a zero or non-finite norm: ab does not matter
    cos = 1.0 - (dd - (na - nb) ** 2) / (2.0 * na * nb)
    return min(1.0, max(-1.0, cos))


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




def _block_dots(x: np.ndarray) -> float:
    """``x·x`` of a flat float array, block by block, added in float64 (float16 blocks widened first)."""
    total = 0.0
    for i in range(0, x.size, _BLOCK):
        blk = x[i:i + _BLOCK]
        if blk.dtype.itemsize < 4:  # a float16 dot overflows at 65504
            blk = blk.astype(np.float32)
        total += float(np.dot(blk, blk))
    return total


def _cos_from(aa: float, bb: float, ab: float) -> float:
    """Cosine similarity from ``a·a``, ``b·b`` and ``a·b``."""
    na, nb = math.sqrt(aa), math.sqrt(bb)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0 or not (math.isfinite(na) and math.isfinite(nb)):
        return 0.0 if math.isfinite(na) and math.isfinite(nb) else math.nan
    return ab / (na * nb)


def _cosine(a: np.ndarray, b: np.ndarray, diff: np.ndarray) -> float:
    """Cosine similarity of ``a`` and ``b`` given ``diff = |a - b|`` (see :func:`_cos_from_norms`)."""
    with np.errstate(all="ignore"):
        af, bf, df = (np.ravel(x) for x in (a, b, diff))
        if af.dtype.kind != "f":
            af, bf, df = (x.astype(np.float64) for x in (af, bf, df))
        return _cos_from_norms(_block_dots(af), _block_dots(bf), _block_dots(df))


def structure_mismatch(n_paddle: int, n_torch: int) -> Stats:
    """A record for outputs whose tensor counts differ between the two sides."""
    return Stats.failure(f"structure mismatch: paddle gives {n_paddle} tensor(s), torch gives {n_torch}",
                         kind="structure", count=max(n_paddle, n_torch))
