"""The statistics a run folder keeps per tensor, in one pass over cache-sized blocks.

:func:`padiff.offline.fmt.tensor_stats` is computed for every tensor a Recorder sees (every
layer output and gradient, every parameter's gradient and value, each step), so it is the
largest cost of ``level="stats"``. Done on the whole tensor it made a float64 copy and read
it a dozen times (``isfinite``, ``isnan``, ``isinf``, ``mean``, ``std``, ``abs``, ``x*x``...);
here each block of at most :data:`BLOCK` elements is widened to float64 once, in a scratch
buffer that stays in cache, and every figure is taken from it: sums pairwise and the sum of
squares as a BLAS dot product, all in float64; the block's spread from them (or, when that
would cancel, from its deviations one by one), merged across blocks with the pairwise update of
Chan, Golub and LeVeque (no cancellation between ``E[x²]`` and ``mean²`` across the tensor);
min and max in the tensor's own dtype. NaN and
Inf show up in a block's min or max, so only a block that holds one pays for masking it out.

The figures agree with the whole-tensor float64 computation to float64 rounding (a few units
in the last place for the sums; min, max and the NaN/Inf counts exactly).
"""

from __future__ import annotations

import math
import threading

import numpy as np

#: elements per block: two float64 scratch blocks (1 MiB each) stay in a core's L2/L3 cache
#: (bigger blocks cost more cache misses, smaller ones more Python per element)
BLOCK = 1 << 17

#: a block's spread is taken as ``Σx² - (Σx)²/k`` unless that loses more than 2 of float64's 16 digits
#: (its standard deviation is below a tenth of its mean): then from the deviations themselves
CANCELLATION = 1e-2

_SCRATCH = threading.local()


def _scratch() -> tuple[np.ndarray, np.ndarray]:
    """This thread's float64 blocks (made once: fresh pages cost more than a small tensor's stats)."""
    got = getattr(_SCRATCH, "blocks", None)
    if got is None:
        got = (np.empty(BLOCK), np.empty(BLOCK))
        _SCRATCH.blocks = got
    return got


def tensor_stats(a: np.ndarray) -> list[float]:
    """``[mean, std, min, max, abs_mean, rms, nan, inf]`` of ``a`` in float64, over its finite elements.

    Floating arrays go block by block (module docstring); other dtypes (integers, bools,
    complex) through the whole-array float64 route, which treats them as before.
    """
    a = np.asarray(a)
    if a.dtype.kind != "f" or a.size == 0:
        return whole_stats(a)
    x = a.reshape(-1)  # a view when ``a`` is contiguous (the adapters' host arrays are)
    s64, tmp = _scratch()
    total, mean, m2, ssum, sq, sab = 0, 0.0, 0.0, 0.0, 0.0, 0.0
    lo, hi = math.inf, -math.inf
    nan = inf = 0
    with np.errstate(all="ignore"):
        for i in range(0, x.size, BLOCK):
            blk = x[i:i + BLOCK]
            bmin, bmax = float(blk.min()), float(blk.max())
            if not (math.isfinite(bmin) and math.isfinite(bmax)):  # a NaN or an Inf in this block
                fin = np.isfinite(blk)
                n_nan = int(np.isnan(blk).sum())
                nan, inf = nan + n_nan, inf + int(blk.size - fin.sum()) - n_nan
                blk = blk[fin]
                if not blk.size:
                    continue
                bmin, bmax = float(blk.min()), float(blk.max())
            k = blk.size
            s, t = s64[:k], tmp[:k]
            np.copyto(s, blk)
            bsum = float(np.add.reduce(s))
            bsq = float(np.dot(s, s))
            ssum += bsum
            sq += bsq
            if bmin >= 0:
                sab += bsum
            elif bmax <= 0:
                sab -= bsum
            else:
                sab += float(np.add.reduce(np.abs(s, out=t)))
            bmean = bsum / k
            bm2 = bsq - bsum * bmean
            if bm2 < CANCELLATION * bsq:  # the deviations are tiny next to the mean: take them one by one
                np.subtract(s, bmean, out=t)
                bm2 = float(np.dot(t, t))
            n = total + k  # Chan et al.: merge this block's (count, mean, M2) into the running ones
            delta = bmean - mean
            mean += delta * k / n  # the running mean the merge needs; the figure is the plain sum / count
            m2 += bm2 + delta * delta * (total * k / n)
            total = n
            lo, hi = min(lo, bmin), max(hi, bmax)
    if total == 0:
        return [math.nan] * 6 + [float(nan), float(inf)]
    return [ssum / total, math.sqrt(max(m2, 0.0) / total), lo, hi, sab / total, math.sqrt(sq / total),
            float(nan), float(inf)]


def whole_stats(a: np.ndarray) -> list[float]:
    """The same figures from a float64 copy of the whole array (any dtype numpy widens to float64)."""
    x = np.asarray(a, dtype=np.float64).ravel()
    finite = np.isfinite(x)
    nan, inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
    f = x[finite] if (nan or inf) else x
    if f.size == 0:
        return [math.nan] * 6 + [float(nan), float(inf)]
    return [float(f.mean()), float(f.std()), float(f.min()), float(f.max()), float(np.abs(f).mean()),
            float(np.sqrt(np.mean(f * f))), float(nan), float(inf)]
