"""Fused pairs in the engine: one layer's output against the concatenation of several.

A fused pair (``LayerPair.paddle_parts`` / ``torch_parts``) joins e.g. paddle ``qkv_proj``
to torch ``q_proj``/``k_proj``/``v_proj``. The fused output equals the parts' outputs
concatenated along the pair's axis, so the engine compares it part by part: each part's
output against its slice of the fused output, which is the same comparison as against the
concatenation but names the part that differs. Gradients go the same way: each part's
output gradient against its slice of the fused output's gradient. This module holds the
slicing arithmetic and the per-call bookkeeping; the hooks live in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def axis_of(axis: int, ndim: int) -> int | None:
    """``axis`` as a non-negative index for an array of ``ndim`` dims; None when out of range."""
    ax = axis + ndim if axis < 0 else axis
    return ax if 0 <= ax < ndim else None


def cut(arr: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """``arr[..., start:stop, ...]`` along ``axis``."""
    index = [slice(None)] * arr.ndim
    index[axis] = slice(start, stop)
    return arr[tuple(index)]


def bounds(sizes: list[int]) -> list[tuple[int, int]]:
    """Start/stop of each part along the concatenation axis, in part order."""
    out, start = [], 0
    for n in sizes:
        out.append((start, start + n))
        start += n
    return out


@dataclass
class FusedCall:
    """One call of a fused paddle layer whose torch parts run one after another.

    Filled as the torch parts run: their output shapes (to know each slice) and, when the
    forward is compared, their outputs; ``grads`` keeps the fused paddle output gradient
    once taken, since every part reads its own slice of it.
    """

    n_parts: int
    shapes: dict[int, list[tuple[int, ...]]] = field(default_factory=dict)
    outputs: dict[int, list[np.ndarray]] = field(default_factory=dict)
    events: dict[int, Any] = field(default_factory=dict)
    grads: dict[int, np.ndarray | None] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.shapes) == self.n_parts

    def part_bounds(self, i: int, axis: int) -> list[tuple[int, int]] | None:
        """Slices of output ``i`` per part along ``axis``; None when a part lacks that output or axis."""
        sizes = []
        for k in range(self.n_parts):
            shapes = self.shapes.get(k, [])
            if i >= len(shapes):
                return None
            ax = axis_of(axis, len(shapes[i]))
            if ax is None:
                return None
            sizes.append(int(shapes[i][ax]))
        return bounds(sizes)
