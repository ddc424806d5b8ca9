"""``transposed``: the banded copy that converts Linear weights gives exactly ``a.T``."""

from __future__ import annotations

import numpy as np
import pytest

from padiff.weights.layout_infer import TRANSPOSE_ROWS, transposed


@pytest.mark.parametrize("shape", [(3, 5), (300, 700), (700, 300), (TRANSPOSE_ROWS * 5 + 7, 1000), (1, 70000),
                                   (70000, 1), (0, 4)])
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "int64"])
def test_transposed_is_the_contiguous_transpose(shape: tuple[int, int], dtype: str) -> None:
    a = (np.random.default_rng(0).standard_normal(shape) * 100).astype(dtype)
    got = transposed(a)
    assert got.flags.c_contiguous and got.dtype == a.dtype
    np.testing.assert_array_equal(got, a.T)
    if a.size:
        strided = np.repeat(a, 2, axis=1)[:, ::2]  # a non-contiguous source
        np.testing.assert_array_equal(transposed(strided), a.T)


def test_a_large_transpose_goes_by_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The banded route runs for a large weight (a whole-array transpose copy is not asked for)."""
    import padiff.weights.layout_infer as li

    calls = []
    real = np.ascontiguousarray
    monkeypatch.setattr(li.np, "ascontiguousarray", lambda *a, **k: calls.append(1) or real(*a, **k))
    a = np.arange(512 * 300, dtype=np.float32).reshape(512, 300)
    np.testing.assert_array_equal(transposed(a), a.T)
    assert not calls
