"""A failed mean-mode comparison takes its figures block by block, and they are the whole-array ones.

:func:`padiff.compare.arrays.compare_arrays` compares contiguous pairs of one float dtype in
cache-sized blocks; when such a pair fails, the index of the largest difference, the boundary
flips and whether everything else agrees are found in a second pass over blocks, instead of
whole-size ``|a - b|`` and ``|b|`` arrays. The whole-array route (taken for a non-contiguous
pair) is the reference: the same verdict, worst index, mismatch and flip counts and note.
"""

from __future__ import annotations

import numpy as np
import pytest

from padiff.compare import arrays
from padiff.compare.arrays import compare_arrays


def _pair(kind: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    t = rng.standard_normal((5, 70001)).astype(dtype)
    if kind == "off":  # every element a little off: a plain failure
        return (t * 1.01 + 1e-3).astype(dtype), t
    p = t.copy()
    if kind == "flips":  # a few elements zero on one side only (a ReLU at its threshold); the rest agrees
        idx = rng.choice(t.size, 100, replace=False)
        p.reshape(-1)[idx] = 0
        p.reshape(-1)[idx[:3]] = 0.5  # and a few flips the other way
        t.reshape(-1)[idx[:3]] = 0
    elif kind == "flips_and_off":  # flips, and the rest does not agree either
        p = (t * 1.02).astype(dtype)
        idx = rng.choice(t.size, 40, replace=False)
        p.reshape(-1)[idx] = 0
    elif kind == "peak_twice":  # the largest difference twice, in two blocks: the first one is named
        p = (t + 1e-3).astype(dtype)
        p.reshape(-1)[[300000, 100]] += 5
    return p, t


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["off", "flips", "flips_and_off", "peak_twice"])
@pytest.mark.parametrize("mismatch_ratio", [0.0, 1e-3])
def test_block_failure_figures_equal_the_whole_array_ones(kind: str, dtype: str, mismatch_ratio: float) -> None:
    p, t = _pair(kind, dtype)
    atol, rtol = 1e-6, 1e-4
    fast = compare_arrays(p, t, atol, rtol, "mean", mismatch_ratio)
    slow = compare_arrays(np.asfortranarray(p), np.asfortranarray(t), atol, rtol, "mean", mismatch_ratio)
    assert not slow.passed or (kind == "flips" and mismatch_ratio)  # every case fails, flips are accepted
    for name in ("passed", "worst_index", "mismatched", "flips", "note", "note_kind", "max_abs_diff"):
        assert getattr(fast, name) == getattr(slow, name), name


def test_the_failure_pass_runs_for_a_contiguous_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block route is the one taken (the whole-array flip count is never asked for)."""
    def whole(*_a: object, **_k: object) -> None:
        raise AssertionError("the whole-array route ran")

    monkeypatch.setattr(arrays, "_boundary_flips", whole)
    p, t = _pair("flips", "float32")
    s = compare_arrays(p, t, 1e-6, 1e-4, "mean", 1e-3)
    assert s.passed and s.flips == 100 and "boundary flip" in s.note
