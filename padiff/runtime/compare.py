"""Tensor comparison: one pair of host arrays in, one :class:`Stats` record out.

``mean`` mode judges the two means, ``strict`` every element, both with
``|a - b| <= atol + rtol * |b|`` (torch side as the reference). NaN or Inf anywhere in
either tensor is never agreement, not even the same Inf on both sides: the record says
``note="nan"`` / ``"inf"`` so a person sees it for what it is. Beside the verdict the record
carries what a person needs to pick tolerances: max abs/rel diff, mismatched count,
cosine similarity and the smallest atol (at the given rtol) and rtol (at the given atol)
that would have passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Stats:
    """The numbers of one comparison of two tensors (paddle ``a`` vs torch ``b``)."""

    passed: bool
    max_abs_diff: float
    max_rel_diff: float
    mismatched: int
    total: int
    paddle_mean: float
    torch_mean: float
    cosine: float
    min_atol: float  # smallest atol that passes at the given rtol
    min_rtol: float  # smallest rtol that passes at the given atol
    worst_index: tuple[int, ...] = ()
    note: str = ""  # "shape", "nan", "inf", "structure", ...


def compare_arrays(a: np.ndarray, b: np.ndarray, atol: float, rtol: float, mode: str) -> Stats:
    """Compare paddle array ``a`` to torch array ``b`` under the tolerances and mode."""
    note = ""
    if a.shape != b.shape:
        if a.size == b.size and np.squeeze(a).shape == np.squeeze(b).shape:
            note = f"shapes {list(a.shape)} vs {list(b.shape)} differ only by size-1 dims"
            a, b = a.reshape(b.shape), b
        else:
            return Stats(False, math.inf, math.inf, max(a.size, b.size), max(a.size, b.size),
                         _mean(a), _mean(b), math.nan, math.inf, math.inf, (),
                         f"shape mismatch: paddle {list(a.shape)} vs torch {list(b.shape)}")
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
        return Stats(True, 0.0, 0.0, 0, 0, 0.0, 0.0, 1.0, 0.0, 0.0, (), "empty")
    # mean mode, same float dtype: every statistic in one pass over cache-sized blocks
    fused = _fused_pass(a, b) if mode == "mean" else None
    dots = None
    if fused is not None:
        max_abs, max_rel, mean_a, mean_b, dots = fused
        special, nonfinite, diff = "", 0, None
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.asarray(np.subtract(a, b))  # 0-d inputs give a scalar
            np.abs(diff, out=diff)
            peak = diff.max()
        special = ""  # "nan" / "inf": never agreement, not even the same Inf on both sides
        # a NaN or Inf in either tensor makes the peak difference non-finite, so the exact
        # count (four passes over both tensors) is only needed when the peak is not finite
        nonfinite = 0 if np.isfinite(peak) else int((~(np.isfinite(a) & np.isfinite(b))).sum())
        if nonfinite:
            same_inf = np.isinf(a) & (a == b)
            diff = np.where(same_inf, 0.0, diff)
            special = "nan" if (np.isnan(a) | np.isnan(b)).any() else "inf"
            note = f"{note}; {special}" if note else special
        abs_b = np.abs(b)
        if special:
            max_abs = max_rel = math.nan if special == "nan" else math.inf
        else:
            max_abs = float(peak)  # no NaN in diff here, so max is nanmax
            max_rel = _max_rel(diff, abs_b)
        mean_a, mean_b = _mean(a), _mean(b)
    if mode == "mean":
        d = abs(mean_a - mean_b)
        passed = (not note) and d <= atol + rtol * abs(mean_b)
        mismatched = 0 if passed else total
        min_atol = max(0.0, d - rtol * abs(mean_b))
        min_rtol = (max(0.0, d - atol) / abs(mean_b)) if abs(mean_b) > 0 else (0.0 if d <= atol else math.inf)
    else:
        with np.errstate(all="ignore"):  # Inf * 0, x / tiny: numpy's warnings are not the user's business
            allowed = atol + rtol * abs_b
            bad_el = ~(diff <= allowed)
            mismatched = int(bad_el.sum())
            passed = mismatched == 0 and not note
            min_atol = float(np.max(diff - rtol * abs_b)) if not special else math.inf
            min_atol = max(0.0, min_atol)
            need = np.where(abs_b > 0, (diff - atol) / abs_b, np.where(diff > atol, np.inf, 0.0))
            min_rtol = max(0.0, float(np.max(need))) if not special else math.inf
    worst: tuple[int, ...] = ()
    if not passed and not special and total > 1:
        if diff is None:
            diff = np.abs(a - b)
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
    if special:
        passed = False
        mismatched = max(mismatched, nonfinite)
        min_atol = min_rtol = math.inf
    return Stats(bool(passed), max_abs, max_rel, mismatched, total, mean_a, mean_b,
                 _cosine(a, b) if dots is None else _cos_from(*dots), float(min_atol), float(min_rtol), worst,
                 note)


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


def _fused_pass(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float, tuple[float, float, float]] | None:
    """``(max |a-b|, max rel diff, mean a, mean b, (a·a, b·b, a·b))`` in one pass, or None.

    The whole-array route reads both tensors from memory some ten times (difference,
    its max, ``|b|``, the division, its max, two means, the float64 blocks of the dots);
    profiled on the benchmark models it was the largest cost of a compared run. Here each
    block of both tensors is read once and everything is computed while it is in cache.
    Every result equals the whole-array one bit for bit: elementwise values and maxima do
    not depend on blocking, and the means add the same 8192-element pairwise sums in the
    same order as numpy's buffered float64 reduction does (hence float16/float32 input,
    contiguous, default buffer size only). None — use the whole-array route — for other
    dtypes or layouts, or as soon as a NaN or Inf shows up.
    """
    if a.dtype != b.dtype or a.dtype.kind != "f" or a.dtype == np.float64 or np.getbufsize() != _CHUNK:
        return None
    if a.ndim == 0 or not (a.flags.c_contiguous and b.flags.c_contiguous):
        return None
    af, bf = a.reshape(-1), b.reshape(-1)
    n = af.size
    m = min(_BLOCK, n)
    d, r, x, y = np.empty(m, a.dtype), np.empty(m, a.dtype), np.empty(m), np.empty(m)
    peak, rel = 0.0, math.nan
    sa = sb = aa = bb = ab = 0.0
    with np.errstate(all="ignore"):
        for i in range(0, n, _BLOCK):
            k = min(_BLOCK, n - i)
            a_k, b_k, dk, rk = af[i:i + k], bf[i:i + k], d[:k], r[:k]
            np.subtract(a_k, b_k, out=dk)
            np.abs(dk, out=dk)
            p = float(dk.max())
            if not math.isfinite(p):
                return None
            peak = max(peak, p)
            np.abs(b_k, out=rk)
            np.divide(dk, rk, out=rk)  # 0/0 is the only NaN (skipped), x/0 is inf
            q = float(np.fmax.reduce(rk))
            if not math.isnan(q):
                rel = q if math.isnan(rel) else max(rel, q)
            xk, yk = x[:k], y[:k]
            np.copyto(xk, a_k)
            np.copyto(yk, b_k)
            for j in range(0, k, _CHUNK):
                xs, ys = xk[j:j + _CHUNK], yk[j:j + _CHUNK]
                sa += float(np.add.reduce(xs))
                sb += float(np.add.reduce(ys))
                aa += float(np.dot(xs, xs))
                bb += float(np.dot(ys, ys))
                ab += float(np.dot(xs, ys))
    return peak, (0.0 if math.isnan(rel) else rel), sa / n, sb / n, (aa, bb, ab)


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


#: elements per float64 scratch block in :func:`_dots`: 64 KiB per operand stays in cache, and
#: OpenBLAS runs dots of at most 10000 elements in the calling thread
_CHUNK = 1 << 13


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
    return Stats(False, math.inf, math.inf, max(n_paddle, n_torch), max(n_paddle, n_torch), math.nan, math.nan,
                 math.nan, math.inf, math.inf, (),
                 f"structure mismatch: paddle gives {n_paddle} tensor(s), torch gives {n_torch}")
