"""Properties of the tensor comparison on random arrays: NaN/Inf never agree, strict means every element."""

from __future__ import annotations

import math
import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from padiff.compare.arrays import compare_arrays

dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int64])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)


@st.composite
def array_pairs(draw):
    dtype = draw(dtypes)
    shape = draw(shapes)
    elements = (st.integers(-1000, 1000) if dtype is np.int64
                else st.floats(allow_nan=True, allow_infinity=True, width=16 if dtype is np.float16 else 32))
    a = draw(hnp.arrays(dtype, shape, elements=elements))
    # identical tensors are the interesting case for NaN/Inf
    b = a.copy() if draw(st.booleans()) else draw(hnp.arrays(dtype, shape, elements=elements))
    return a, b


tolerances = st.floats(0, 10, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(array_pairs(), tolerances, tolerances, st.sampled_from(["mean", "strict"]))
def test_comparison_properties(pair, atol, rtol, mode):
    a, b = pair
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning leaks to the user
        stats = compare_arrays(a, b, atol, rtol, mode)
    af, bf = a.astype(np.float64), b.astype(np.float64)
    nonfinite = not (np.isfinite(af).all() and np.isfinite(bf).all())
    assert stats.total == a.size and 0 <= stats.mismatched <= max(stats.total, 1)
    if nonfinite:
        assert not stats.passed
        assert stats.note == ("nan" if (np.isnan(af).any() or np.isnan(bf).any()) else "inf")
        assert stats.min_atol == math.inf and stats.min_rtol == math.inf  # no tolerance helps
        return
    assert stats.note in ("", "empty") or stats.note.startswith("boundary flip")
    ct = a.dtype if a.dtype.kind == "f" else np.float64  # the dtype padiff compares in
    ac, bc = a.astype(ct), b.astype(ct)
    with np.errstate(all="ignore"):
        diff = np.abs(ac - bc)
        if mode == "strict":
            assert stats.passed == bool(np.all(diff <= atol + rtol * np.abs(bc)))
            assert stats.passed == (stats.mismatched == 0)
    if a.size and np.array_equal(af, bf):
        assert stats.passed and stats.max_abs_diff == 0.0
    if a.size and np.isfinite(diff).all():
        assert stats.max_abs_diff == float(np.max(diff))
