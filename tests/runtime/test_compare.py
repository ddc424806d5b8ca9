"""The tensor comparison on its own: the two verdicts, shape reconciliation, boundary flips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from padiff.compare.arrays import compare_arrays, reconcile_shapes

ATOL, RTOL = 1e-5, 1e-4  # the README's float32 tolerances


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_mean_mode_judges_the_mean_error_not_the_difference_of_means():
    t = _rng().standard_normal(4096).astype("float32")
    p = t[::-1].copy()  # a permutation: the means are identical, every element is wrong
    s = compare_arrays(p, t, ATOL, RTOL, "mean")
    assert not s.passed and s.mode == "mean"
    assert abs(s.paddle_mean - s.torch_mean) < 1e-6
    assert s.mean_abs_diff == pytest.approx(float(np.mean(np.abs(p - t))), rel=1e-6)
    assert s.mean_abs_ref == pytest.approx(float(np.mean(np.abs(t))), rel=1e-6)


def test_signed_errors_do_not_cancel():
    t = _rng().standard_normal(10000).astype("float32")
    p = t + np.where(np.arange(t.size) % 2 == 0, 1e-2, -1e-2).astype("float32")  # mean shift 0
    assert not compare_arrays(p, t, ATOL, RTOL, "mean").passed


def test_mean_mode_passes_rounding_noise_and_states_its_figure():
    t = _rng().standard_normal(10000).astype("float32")
    p = (t.astype("float64") * (1 + 1e-7)).astype("float32")
    s = compare_arrays(p, t, ATOL, RTOL, "mean")
    assert s.passed and s.mismatched == 0
    # the smallest passing tolerances speak the mean figure
    assert s.min_atol == pytest.approx(max(0.0, s.mean_abs_diff - RTOL * s.mean_abs_ref))
    assert s.min_rtol == pytest.approx(max(0.0, s.mean_abs_diff - ATOL) / s.mean_abs_ref)


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_fused_and_whole_array_routes_agree(dtype):
    t = _rng(1).standard_normal((3, 70000)).astype(dtype)
    p = (t + _rng(2).standard_normal(t.shape) * 1e-3).astype(dtype)
    fast = compare_arrays(p, t, ATOL, RTOL, "mean")
    slow = compare_arrays(np.asfortranarray(p), np.asfortranarray(t), ATOL, RTOL, "mean")  # not contiguous: no fusion
    for name in ("passed", "max_abs_diff", "max_rel_diff", "mismatched"):  # element-wise figures: exact
        assert getattr(fast, name) == pytest.approx(getattr(slow, name), rel=1e-9), name
    # sums: float32 pairwise within a block, float64 across blocks
    for name in ("mean_abs_diff", "mean_abs_ref"):
        assert getattr(fast, name) == pytest.approx(getattr(slow, name), rel=1e-6, abs=1e-9), name
    # a signed mean near zero keeps the rounding of its terms: bounded by their magnitude, not its own
    for name in ("paddle_mean", "torch_mean"):
        assert getattr(fast, name) == pytest.approx(getattr(slow, name), abs=1e-6 * slow.mean_abs_ref), name
    assert 1 - fast.cosine == pytest.approx(1 - slow.cosine, rel=1e-3)


def test_cosine_keeps_its_digits_when_the_tensors_agree_closely():
    t = _rng(3).standard_normal(300000).astype("float32")
    p = (t + _rng(4).standard_normal(t.shape) * 1e-5).astype("float32")
    t64, p64 = t.astype("float64"), p.astype("float64")
    exact = 1 - float(np.dot(p64, t64) / (np.linalg.norm(p64) * np.linalg.norm(t64)))  # ~5e-11
    s = compare_arrays(p, t, ATOL, RTOL, "mean")
    assert 1 - s.cosine == pytest.approx(exact, rel=1e-2)


def test_mismatched_counts_elements_in_both_modes():
    t = np.ones(100, dtype="float32")
    p = t.copy()
    p[:3] += 1.0
    for mode in ("mean", "strict"):
        assert compare_arrays(p, t, ATOL, RTOL, mode).mismatched == 3


@pytest.mark.parametrize(("pshape", "tshape", "word"), [
    ((1, 5, 4), (3, 5, 4), "broadcast"),
    ((3, 5, 4), (1, 5, 4), "broadcast"),
    ((5, 4), (3, 5, 4), "broadcast"),
    ((2, 12, 4), (2, 3, 4, 4), "reshape"),
    ((2, 3, 4, 4), (2, 12, 4), "reshape"),
    ((1, 6), (6,), "size-1"),
])
def test_layout_free_shape_differences_are_reconciled_and_said(pshape, tshape, word):
    big = pshape if np.prod(pshape) >= np.prod(tshape) else tshape
    base = _rng().standard_normal(big).astype("float32")
    if np.prod(pshape) == np.prod(tshape):
        p, t = base.reshape(pshape), base.reshape(tshape)
    elif big == tshape:
        p = base[:1] if len(pshape) == len(tshape) else base[0]
        t = np.broadcast_to(p, tshape).copy()
    else:
        t = base[:1]
        p = np.broadcast_to(t, pshape).copy()
    s = compare_arrays(p, t, ATOL, RTOL, "strict")
    assert s.passed and word in s.reconciled, s
    # a value difference is still found after reconciling
    p2 = p.copy()
    p2.flat[0] += 1.0
    assert not compare_arrays(p2, t, ATOL, RTOL, "strict").passed


@pytest.mark.parametrize(("pshape", "tshape"), [((4, 6), (6, 4)), ((2, 3), (2, 4)), ((2, 3, 5), (2, 5, 3)),
                                                ((3, 4), (2, 4))])
def test_real_shape_differences_still_fail(pshape, tshape):
    # distinct values: a permuted layout whose values agree is reconciled (test_permuted_layouts.py)
    p, t = _rng(1).standard_normal(pshape).astype("float32"), _rng(2).standard_normal(tshape).astype("float32")
    assert reconcile_shapes(p, t) is None
    s = compare_arrays(p, t, ATOL, RTOL, "mean")
    assert not s.passed and s.note.startswith("shape mismatch")


def _relu_grad_flip(n: int = 32768, flips: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A gradient after a ReLU whose input sits within rounding of 0 on ``flips`` elements."""
    t = np.abs(_rng().standard_normal(n)).astype("float32") + 0.1
    p = (t * (1 + 1e-6)).astype("float32")
    p[:flips] = 0.0  # blocked on the paddle side, passed on the torch side
    return p, t


def test_an_isolated_boundary_flip_is_named_and_not_accepted_by_default():
    p, t = _relu_grad_flip()
    s = compare_arrays(p, t, ATOL, RTOL, "strict")
    assert not s.passed and s.flips == 1 and s.mismatched == 1
    assert s.note.startswith("boundary flip: 1 of 32768") and "mismatch_ratio" in s.note


def test_mismatch_ratio_accepts_a_bounded_fraction_of_flips_only():
    p, t = _relu_grad_flip(flips=3)
    assert compare_arrays(p, t, ATOL, RTOL, "strict", mismatch_ratio=1e-4).passed
    assert not compare_arrays(p, t, ATOL, RTOL, "strict", mismatch_ratio=3e-5).passed  # 3 > 0.98
    q = p.copy()
    q[100] *= 1.5  # a mismatch that is not a flip: never accepted
    s = compare_arrays(q, t, ATOL, RTOL, "strict", mismatch_ratio=0.5)
    assert not s.passed and s.flips == 0 and not s.note


def test_many_zeros_on_one_side_is_not_a_boundary_flip():
    t = np.abs(_rng().standard_normal(1000)).astype("float32") + 0.1
    p = t.copy()
    p[:500] = 0.0
    s = compare_arrays(p, t, ATOL, RTOL, "strict", mismatch_ratio=0.9)
    assert not s.passed and not s.note


def test_nan_is_never_agreement():
    a = np.array([1.0, math.nan], "float32")
    s = compare_arrays(a, a.copy(), 1.0, 1.0, "mean")
    assert not s.passed and s.note == "nan"


def test_two_thread_pass_gives_the_one_thread_figures(monkeypatch):
    from padiff.compare import arrays as c

    t = _rng(5).standard_normal(5 * c._BLOCK + 123).astype("float32")
    p = (t + _rng(6).standard_normal(t.shape) * 1e-3).astype("float32")
    monkeypatch.setattr(c, "PARALLEL_MIN", 10**12)
    one = compare_arrays(p, t, ATOL, RTOL, "mean")
    monkeypatch.setattr(c, "PARALLEL_MIN", 1)
    two = compare_arrays(p, t, ATOL, RTOL, "mean")
    for name in ("passed", "max_abs_diff", "max_rel_diff", "mismatched", "total"):
        assert getattr(two, name) == getattr(one, name), name
    for name in ("mean_abs_diff", "mean_abs_ref", "paddle_mean", "torch_mean", "cosine"):
        assert getattr(two, name) == pytest.approx(getattr(one, name), rel=1e-9), name
    p[-1] = np.nan  # in the helper thread's half: still never agreement
    assert compare_arrays(p, t, ATOL, RTOL, "mean").note == "nan"


def test_an_attention_layout_is_compared_with_its_middle_axes_reordered():
    """paddle keeps per-head tensors as ``[B, S, H, D]``, torch as ``[B, H, S, D]`` (a Gemma 3 q/k norm)."""
    t = _rng().standard_normal((2, 4, 5, 8)).astype("float32")
    p = t.transpose(0, 2, 1, 3).copy()
    s = compare_arrays(p, t, ATOL, RTOL, "strict")
    assert s.passed and "middle axes" in s.reconciled, s
    p2 = p.copy()
    p2.flat[3] += 1.0
    assert not compare_arrays(p2, t, ATOL, RTOL, "strict").passed


def test_equal_middle_dims_are_reordered_the_way_the_values_agree():
    t = _rng().standard_normal((2, 3, 4, 4, 6)).astype("float32")  # S == H: two orders give the shape
    p = t.transpose(0, 3, 1, 2, 4).copy()
    s = compare_arrays(p, t, ATOL, RTOL, "strict")
    assert s.passed and "[0, 2, 3, 1, 4]" in s.reconciled, s
    assert not compare_arrays(p * 1.05, t, ATOL, RTOL, "mean").passed


@pytest.mark.parametrize(("pshape", "tshape"), [((2, 8, 4), (2, 4, 8)), ((2, 4, 5, 8), (2, 4, 8, 5)),
                                                ((4, 2, 5, 8), (2, 4, 5, 8))])
def test_a_moved_batch_or_feature_axis_is_still_a_real_shape_difference(pshape, tshape):
    assert reconcile_shapes(np.zeros(pshape, "float32"), np.zeros(tshape, "float32")) is None
