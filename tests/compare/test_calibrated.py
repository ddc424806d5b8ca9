"""The calibrated rule on numpy arrays: paddle's error against a float64 reference, in units of torch's own."""

from __future__ import annotations

import math

import numpy as np
import pytest

from padiff.compare.calibrated import K, calibrate, calibrated_stats, judge, resolution


def _case(seed: int = 0, n: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A float64 reference and two independent float32 roundings of a computation on it."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(n)
    noise = np.finfo(np.float32).eps
    t = (r * (1 + noise * rng.standard_normal(n))).astype(np.float32)
    p = (r * (1 + noise * rng.standard_normal(n))).astype(np.float32)
    return p, t, r


def test_two_roundings_of_the_same_result_pass_with_a_ratio_near_one():
    p, t, r = _case()
    cal = calibrate(p, t, r, "float32")
    assert cal is not None and cal.passed and 0.5 < cal.ratio < 2
    assert cal.paddle_error == pytest.approx(np.mean(np.abs(p - r)))
    assert cal.torch_error == pytest.approx(np.mean(np.abs(t.astype(np.float64) - r)))


def test_an_error_far_above_torchs_own_fails_and_says_how_far():
    p, t, r = _case()
    stats = calibrated_stats(p * np.float32(1.001), t, r, "float32")
    assert stats is not None and not stats.passed and stats.mode == "calibrated"
    assert stats.noise_ratio > 100 * K
    assert "torch's own rounding" in stats.note and f"above the allowed {K:g}x" in stats.note


def test_the_floor_keeps_an_exact_torch_result_from_demanding_exactness():
    r = np.linspace(1, 2, 1000)
    t = r.astype(np.float32)  # torch exact up to one rounding
    p = np.nextafter(t, np.float32(3))  # paddle one ulp off
    cal = calibrate(p, t.copy(), r.astype(np.float32).astype(np.float64), "float32")
    assert cal is not None and cal.torch_error == 0 and cal.floor == pytest.approx(resolution("float32") * 1.5)
    assert cal.passed and cal.ratio < 2


def test_values_that_are_their_own_rounding_on_both_sides_are_named_noise():
    rng = np.random.default_rng(1)
    r = rng.standard_normal(500) * 1e-18  # the true value: zero up to float64 rounding
    p, t = (rng.standard_normal(500) * 1e-9).astype(np.float32), (rng.standard_normal(500) * 1e-9).astype(np.float32)
    stats = calibrated_stats(p, t, r, "float32")
    assert stats is not None and stats.passed and stats.note_kind == "noise" and "compares noise" in stats.note


def test_resolution_per_dtype_and_half_precision_judged_by_its_own_noise():
    assert resolution("bfloat16") == 2 ** -7 and resolution("torch.float16") == np.finfo(np.float16).eps
    rng = np.random.default_rng(2)
    r = rng.standard_normal(2000)
    bf16 = 2.0 ** -8  # half a bfloat16 spacing: one rounding
    t = r * (1 + bf16 * rng.uniform(-1, 1, r.size))
    p = r * (1 + bf16 * rng.uniform(-1, 1, r.size))
    assert calibrate(p, t, r, "bfloat16").passed
    assert not calibrate(p * 1.2, t, r, "bfloat16").passed


def test_an_allowance_raises_the_noise_level():
    p, t, r = _case()
    shifted = p + np.float32(1e-5)
    assert not calibrate(shifted, t, r, "float32").passed
    assert calibrate(shifted, t, r, "float32", allowance=1e-5).passed


def test_without_a_reference_the_mean_verdict_judges_and_the_record_says_why():
    p, t, _ = _case()
    stats = judge(p, t, None, "the optimizer is a callable", "float32")
    assert stats.passed and stats.mode == "mean" and stats.note_kind == "fallback"
    assert "no float64 reference (the optimizer is a callable)" in stats.note and "rtol=0.0001" in stats.note
    assert not judge(p * np.float32(1.01), t, None, "x", "float32").passed
    assert math.isnan(stats.noise_ratio)


def test_nan_and_reference_shape_mismatch():
    p, t, r = _case()
    p[3] = np.nan
    assert calibrated_stats(p, t, r, "float32").note_kind == "nan"
    assert calibrated_stats(t, t, r[:10], "float32") is None  # no reference that fits: the caller falls back
    assert calibrate(t, t, np.full(r.shape, np.inf), "float32") is None


def test_a_cancelling_sum_is_judged_at_the_scale_of_its_terms():
    r = np.array(1e-3)  # a loss sum(w * out) whose terms are ~10 in size: it rounds at ~10 * eps
    t, p = np.float32(1e-3 + 1e-9), np.float32(1e-3 + 6e-7)
    assert not calibrate(np.array(p), np.array(t), r, "float32").passed
    assert calibrate(np.array(p), np.array(t), r, "float32", magnitude=10.0).passed


def test_two_roundings_of_a_zero_gradient_pass_whatever_their_ratio_below_the_pass_scale():
    rng = np.random.default_rng(3)
    r = rng.standard_normal(64) * 1e-18  # the true gradient is zero
    t = (rng.standard_normal(64) * 1e-10).astype(np.float32)
    p = (rng.standard_normal(64) * 3e-9).astype(np.float32)  # paddle's residue 30x torch's
    alone = calibrated_stats(p, t, r, "float32")
    assert alone is not None and not alone.passed and alone.note_kind == "noise"
    within = calibrated_stats(p, t, r, "float32", noise_scale=1e-2)  # the pass's gradients are ~1e-2
    assert within is not None and within.passed and "two roundings of a zero" in within.note
    real = (rng.standard_normal(64) * 1e-5).astype(np.float32)  # a real gradient where the truth is zero
    assert not calibrated_stats(real, t, r, "float32", noise_scale=1e-2).passed


def test_the_allowed_ratio_widens_after_the_first_step_only():
    from padiff.compare.calibrated import K_AFTER_STEP, allowed_ratio

    assert allowed_ratio(0) == K and allowed_ratio(1) == allowed_ratio(5) == K_AFTER_STEP > K
