"""One tolerance object, passed whole: the verdict of two arrays under a run's options.

Every comparison site (the live engine's, the offline comparison's, the shard attribution's)
calls :func:`verdict` with the run's :class:`~padiff.options.DiffOptions` instead of passing
``atol``/``rtol``/``compare_mode``/``mismatch_ratio`` one by one, so a new tolerance field
reaches every site at once and none can pass them in the wrong order.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from padiff.compare.arrays import compare_arrays
from padiff.options import CompareMode
from padiff.report.records import Stats


class Tolerance(Protocol):
    """What a verdict reads from the options (``DiffOptions`` has all of it)."""

    @property
    def atol(self) -> float: ...
    @property
    def rtol(self) -> float: ...
    @property
    def compare_mode(self) -> CompareMode: ...
    @property
    def mismatch_ratio(self) -> float: ...


def verdict(a: np.ndarray, b: np.ndarray, tol: Tolerance, *, gradient: bool = False,
            mode: CompareMode | None = None) -> Stats:
    """Paddle array ``a`` against torch array ``b`` under ``tol`` (``mode`` overrides its compare mode)."""
    return compare_arrays(a, b, tol.atol, tol.rtol, mode or tol.compare_mode, tol.mismatch_ratio, gradient=gradient)
