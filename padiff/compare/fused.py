"""Fused pairs in the engine: one layer's output against the concatenation of several.

A fused pair (``LayerPair.paddle_parts`` / ``torch_parts``) joins e.g. paddle ``qkv_proj``
to torch ``q_proj``/``k_proj``/``v_proj``. The fused output equals the parts' outputs
concatenated along the pair's axis, so the engine compares it part by part: each part's
output against its slice of the fused output, which is the same comparison as against the
concatenation but names the part that differs. Gradients go the same way: each part's
output gradient against its slice of the fused output's gradient. This module holds the
slicing arithmetic and the per-call bookkeeping; the hooks live in the engine.

The parts either follow one another along the axis (``groups == 1``: ``[q | k | v]``) or
are interleaved per group (``groups == G``: each part cut into G equal blocks, laid out
``[q_0, k_0, v_0, q_1, k_1, v_1, ...]``, as a grouped-query attention fuses q/k/v per
key-value head). :func:`part_indices` gives each part's positions along the axis in both
cases; weights (:mod:`padiff.weights.layout_infer`) and outputs are cut with the same rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
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


def part_indices(sizes: Sequence[int], groups: int = 1) -> list[np.ndarray] | None:
    """Positions of each part along the fused axis; None when a part does not cut into ``groups`` blocks.

    ``groups == 1``: part k covers one contiguous range after the parts before it. ``groups == G``:
    the axis holds G runs, each made of one block of every part in part order, a block of
    part k being ``sizes[k] // G`` wide.
    """
    if groups < 1 or any(n % groups for n in sizes):
        return None
    pieces: list[list[np.ndarray]] = [[] for _ in sizes]
    pos = 0
    for _ in range(groups):
        for k, n in enumerate(sizes):
            width = n // groups
            pieces[k].append(np.arange(pos, pos + width))
            pos += width
    return [np.concatenate(p) if p else np.arange(0) for p in pieces]


def take(arr: np.ndarray, axis: int, index: np.ndarray) -> np.ndarray:
    """The elements of ``arr`` at positions ``index`` along ``axis`` (a plain slice when contiguous)."""
    if index.size and int(index[-1]) - int(index[0]) + 1 == index.size:
        return cut(arr, axis, int(index[0]), int(index[-1]) + 1)
    return np.take(arr, index, axis=axis)


def assemble(parts: Sequence[np.ndarray], axis: int, groups: int = 1) -> np.ndarray:
    """The fused array from its parts (the inverse of cutting it with :func:`part_indices`)."""
    if groups == 1:
        return np.concatenate(list(parts), axis=axis)
    blocks = [np.split(p, groups, axis=axis) for p in parts]
    return np.concatenate([b[g] for g in range(groups) for b in blocks], axis=axis)


def describe(index: np.ndarray, groups: int = 1) -> str:
    """``[4:8]`` for a contiguous part, ``[4:8, 20:24] (4 groups)`` for an interleaved one (first runs shown)."""
    if not index.size:
        return "[]"
    runs, start = [], int(index[0])
    for a, b in itertools.pairwise(index.tolist()):
        if int(b) != int(a) + 1:
            runs.append(f"{start}:{int(a) + 1}")
            start = int(b)
    runs.append(f"{start}:{int(index[-1]) + 1}")
    shown = ", ".join(runs[:2]) + (", ..." if len(runs) > 2 else "")
    return f"[{shown}]" + (f" ({groups} groups)" if groups > 1 else "")


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
        sizes = self._sizes(i, axis)
        return None if sizes is None else bounds(sizes)

    def part_index(self, i: int, axis: int, groups: int = 1) -> list[np.ndarray] | None:
        """Positions of output ``i`` of each part along ``axis`` in the fused output (see :func:`part_indices`)."""
        sizes = self._sizes(i, axis)
        return None if sizes is None else part_indices(sizes, groups)

    def _sizes(self, i: int, axis: int) -> list[int] | None:
        sizes = []
        for k in range(self.n_parts):
            shapes = self.shapes.get(k, [])
            if i >= len(shapes):
                return None
            ax = axis_of(axis, len(shapes[i]))
            if ax is None:
                return None
            sizes.append(int(shapes[i][ax]))
        return sizes
