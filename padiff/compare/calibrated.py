"""Calibrated verdicts: is paddle's error no larger than the original's own rounding?

``compare_mode="calibrated"`` judges each tensor against a high-precision reference ``r``
(the torch model run again in float64) instead of tolerances. Two errors are measured the
same way as the ``mean`` verdict measures one, as means of element-wise differences:

- ``paddle_error = mean(|paddle - r|)``: how far the port is from the exact result;
- ``torch_error = mean(|torch - r|)``: how far the original itself is, its own rounding.

The port is as accurate as the original when ``paddle_error <= k * noise``, with
``noise = max(torch_error, resolution(dtype) * mean(|r|))``: the floor keeps a tensor torch
happens to compute exactly (a copy, a ReLU of exact inputs) from demanding exactness of
paddle. ``ratio = paddle_error / noise`` is what reports show ("paddle error 1.4x torch's own
rounding"). ``k`` (:data:`K`) comes from measurements of correct ports and planted faults,
recorded in the README. A tensor whose float values are mostly their own rounding on both sides
(a gradient whose true value is zero: torch's error is at least half its size) is judged the
same way and says so: it compares noise. A gradient whose values are rounding noise on both sides
passes whatever the ratio of the two noises when both stay below ``NOISE_TAU`` resolutions of the
pass's gradient scale (two frameworks' rounding residues of a zero differ in size: 5x measured on
mobilenet_v2's conv biases before a BatchNorm); a real gradient where the truth is zero is far above
that. Pure numpy: no framework, used by the live engine and
by recorded runs alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from padiff.compare.arrays import compare_arrays
from padiff.compare.reconcile import reconcile_shapes
from padiff.report.records import NoteKind, Stats

#: paddle's error may be up to this many times torch's own (see the README for the measurements)
K = 12.0

#: the allowed ratio for records of the steps after an optimizer step (see :func:`allowed_ratio`)
K_AFTER_STEP = 36.0


def allowed_ratio(step: int) -> float:
    """The ``k`` a record of training step ``step`` (0-based) is judged with: :data:`K` for the first step and
    the weights it produces, :data:`K_AFTER_STEP` for the records of every later step.

    After an optimizer step each run carries its own trajectory: Adam's normalised update turns a
    gradient element whose sign rounding decides into a full ``+-lr`` step, different in paddle's
    float32 run, torch's and the float64 reference. From then on both errors against the reference
    are mostly the consequences of which few elements flipped, and their ratio spreads far wider than
    one step's rounding (the README's measurements: up to 16.8x on correct real ports after one or two
    AdamW steps, 6.5x on their first steps). A fault in the forward or backward shows on the first
    step; one in the optimizer shows on the weights after it (``weight`` stage, still step 0).
    """
    return K if step <= 0 else K_AFTER_STEP

#: a gradient below this many resolutions of the pass's gradient scale, on both sides, is rounding noise
NOISE_TAU = 100.0

#: a value is "mostly rounding" when its error against the reference is at least this fraction of its size
NOISE_FRACTION = 0.5

_RESOLUTION = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps),
               "float16": float(np.finfo(np.float16).eps), "bfloat16": 2.0 ** -7}


def resolution(dtype: str) -> float:
    """The spacing of the dtype's numbers near 1 (``eps``); float32's for names it does not know."""
    return _RESOLUTION.get(dtype.rsplit(".", 1)[-1], _RESOLUTION["float32"])


@dataclass(frozen=True)
class Calibration:
    """The two errors against the reference and what they say."""

    paddle_error: float
    torch_error: float
    floor: float  # resolution(dtype) * mean |reference|
    ratio: float  # paddle_error / max(torch_error, floor)
    passed: bool
    noise: bool  # both sides' values are mostly their own rounding (a true value near zero)
    k: float = K  # the allowed ratio

    def describe(self) -> str:
        """``"paddle error 1.4x torch's own rounding"``, or how far above the allowed noise it is."""
        if self.passed:
            return f"paddle error {_x(self.ratio)} torch's own rounding"
        return (f"paddle error {_x(self.ratio)} torch's own rounding, {_x(self.ratio / self.k)} above the "
                f"allowed {self.k:g}x (paddle {self.paddle_error:.3g} vs torch {self.torch_error:.3g} from the "
                "float64 reference)")


def calibrate(p: np.ndarray, t: np.ndarray, r: np.ndarray, dtype: str, k: float = K,
              allowance: float = 0.0, magnitude: float = 0.0) -> Calibration | None:
    """Paddle ``p`` and torch ``t`` against reference ``r`` (all of one shape); None when ``r`` is not finite.

    ``allowance``: a mean error the frameworks' documented conventions explain (it raises the
    noise level like the floor does; 0 for most records). ``magnitude``: the size of the terms
    the value was summed from, when they cancel (a loss ``sum(w * out)`` is far smaller than
    ``sum(|w * out|)``, and rounds at the latter's scale); the floor uses the larger of it and ``mean |r|``.
    """
    r64 = np.asarray(r, dtype=np.float64)
    if not np.all(np.isfinite(r64)):
        return None
    if r64.size == 0:
        return Calibration(0.0, 0.0, 0.0, 0.0, True, False, k)
    p_err, t_err = _mean_abs_diff(p, r64), _mean_abs_diff(t, r64)
    floor = resolution(dtype) * max(_mean_abs(r64), magnitude)
    noise_level = max(t_err, floor, allowance)
    ratio = p_err / noise_level if noise_level > 0 else (0.0 if p_err == 0 else math.inf)
    mean_t = _mean_abs(t)
    noise = mean_t > 0 and t_err >= NOISE_FRACTION * mean_t and p_err >= NOISE_FRACTION * _mean_abs(p)
    return Calibration(p_err, t_err, floor, ratio, ratio <= k, bool(noise), k)


def calibrated_stats(p: np.ndarray, t: np.ndarray, r: np.ndarray, dtype: str, *, gradient: bool = False,
                     k: float = K, allowance: float = 0.0, magnitude: float = 0.0,
                     noise_scale: float = 0.0) -> Stats | None:
    """The record of paddle ``p`` vs torch ``t`` judged against reference ``r`` (torch's shape).

    The usual figures (max abs diff, means, cosine) are those of ``p`` against ``t``; the verdict
    is :func:`calibrate`'s. NaN, Inf, an empty tensor or irreconcilable shapes are judged as in
    the other modes. None when the reference cannot judge (its shape does not fit, or it holds
    NaN/Inf): the caller falls back to the other modes and says so.
    """
    # an infinite atol: the figures of p against t without the zero-tolerance failure path (flips, worst index)
    base = compare_arrays(p, t, math.inf, 0.0, "mean", gradient=gradient)
    if base.note_kind in ("nan", "inf", "shape", "empty"):
        return replace(base, mode="calibrated")
    if r.shape != t.shape:
        return None
    if p.shape != r.shape:
        fitted = reconcile_shapes(p, t, gradient=gradient)
        fitted_r = reconcile_shapes(p, r, gradient=gradient)
        if fitted is None or fitted_r is None:
            return None
        p, t, r = fitted[0], fitted[1], fitted_r[1]
    cal = calibrate(p, t, r, dtype, k, allowance, magnitude)
    if cal is None:
        return None
    note: str = ""  # the figures of p against t at zero tolerance say nothing of the verdict
    kind: NoteKind = ""
    passed = cal.passed
    if cal.noise:
        note = ("values at rounding level on both sides (the float64 reference is near zero): this compares "
                "noise; " + cal.describe())
        kind = "noise"
        size = max(_mean_abs(p), _mean_abs(t))
        if not passed and noise_scale > 0 and size <= NOISE_TAU * resolution(dtype) * noise_scale:
            passed = True
            note += (f"; both below {NOISE_TAU:g} resolutions of the pass's gradients ({noise_scale:.2g}): two "
                     "roundings of a zero, nothing to compare")
    elif not cal.passed:
        note = cal.describe()
    return replace(base, passed=passed, mode="calibrated", min_atol=cal.paddle_error, min_rtol=math.nan, note=note,
                   note_kind=kind, paddle_error=cal.paddle_error, torch_error=cal.torch_error, noise_ratio=cal.ratio)


#: elements per block in :func:`_mean_abs_diff` / :func:`_mean_abs`: float64 scratch that stays in cache
_BLOCK = 1 << 15


def _mean_abs_diff(x: np.ndarray, r64: np.ndarray) -> float:
    """``mean |x - r|`` in float64, block by block: no temporary the size of the tensor (page faults
    on large float64 temporaries made this the largest cost of a calibrated comparison)."""
    xf, rf = np.ravel(x), np.ravel(r64)
    buf = np.empty(min(_BLOCK, xf.size), np.float64)
    total = 0.0
    for i in range(0, xf.size, _BLOCK):
        k = min(_BLOCK, xf.size - i)
        np.subtract(xf[i:i + k], rf[i:i + k], out=buf[:k], dtype=np.float64)
        np.abs(buf[:k], out=buf[:k])
        total += float(buf[:k].sum())
    return total / xf.size if xf.size else 0.0


def _mean_abs(x: np.ndarray) -> float:
    """``mean |x|`` in float64, block by block."""
    xf = np.ravel(x)
    buf = np.empty(min(_BLOCK, xf.size), np.float64)
    total = 0.0
    for i in range(0, xf.size, _BLOCK):
        k = min(_BLOCK, xf.size - i)
        np.abs(xf[i:i + k], out=buf[:k], dtype=np.float64)
        total += float(buf[:k].sum())
    return total / xf.size if xf.size else 0.0


def _x(ratio: float) -> str:
    return f"{ratio:.2g}x" if ratio < 10 else f"{ratio:.3g}x" if ratio < 1e4 else f"{ratio:.2e}x"


#: the ``mean`` verdict's rtol for a record without a reference, per dtype (the README's port-check values)
FALLBACK_RTOL = {"float16": 1e-3, "bfloat16": 1e-2}
FALLBACK_RTOL_DEFAULT = 1e-4


def judge(p: np.ndarray, t: np.ndarray, r: np.ndarray | None, why: str, dtype: str, *, atol: float = 0.0,
          rtol: float = 0.0, mismatch_ratio: float = 0.0, gradient: bool = False, k: float = K,
          allowance: float = 0.0, magnitude: float = 0.0, noise_scale: float = 0.0) -> Stats:
    """A calibrated record when reference ``r`` can judge, else the ``mean`` verdict with a note saying why.

    The fallback uses the run's ``atol`` and at least the README's port-check rtol for the dtype
    (1e-4 for float32, 1e-3 float16, 1e-2 bfloat16), so a record without a reference is neither
    failed for rounding nor passed unchecked; ``why`` names the reason ("the optimizer is a callable").
    """
    if r is not None:
        stats = calibrated_stats(p, t, r, dtype, gradient=gradient, k=k, allowance=allowance, magnitude=magnitude,
                                 noise_scale=noise_scale)
        if stats is not None:
            return stats
        why = why or "the float64 reference does not fit this tensor"
    fb_rtol = max(rtol, FALLBACK_RTOL.get(dtype.rsplit(".", 1)[-1], FALLBACK_RTOL_DEFAULT))
    stats = compare_arrays(p, t, atol, fb_rtol, "mean", mismatch_ratio, gradient=gradient)
    note = f"no float64 reference ({why or 'none recorded'}): judged by compare_mode='mean' with rtol={fb_rtol:g}"
    if stats.note_kind in ("", "empty"):
        return replace(stats, note=note, note_kind="fallback")
    return replace(stats, note=f"{stats.note}; {note}")


def noisy_update(stats: Stats) -> Stats:
    """A value after the step whose gradient was rounding noise on both sides: the record says so.

    An optimizer that normalises its step (Adam, AdamW) turns such gradients into full-size
    updates, different on each side; torch's own float32 run shows the same noise against the
    float64 reference, which is why the record can pass.
    """
    text = (f"update driven by rounding-level gradients on both sides (paddle error {stats.noise_ratio:.2g}x "
            "torch's own)")
    return replace(stats, note=text + (f"; {stats.note}" if stats.note else ""), note_kind="noise")
