"""An input that separates candidates the example input cannot: numbers decide only when they discriminate.

Numeric confirmation compares candidate pairings, part orders and groupings by the outputs they
give on the user's example input. An example can hide the difference: a sequence whose positions
all hold the same token makes attention uniform, so queries and keys in either order give the
same output; an all-zero input hides every weight. When candidates tie on the example, they are
scored again on :func:`separating_input`: random values of the example's shapes and dtypes, the
same on both sides. Only candidates that still tie are equivalent, and the proposal says so.

What is randomised, and why that keeps the input valid for the models:

- floating tensors: normal values with the example's mean and spread (spread 1 where the
  example is constant), so norms and activations see values of the usual size;
- integer tensors holding values above 1 (token ids, positions): uniform over the range the
  example spans, from 0 when the example is constant, so every value is one the model accepts;
- integer tensors within {0, 1} (masks) and booleans: kept, as masks carry structure
  (causal, padding) the model relies on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the seed of the separating input (fixed, so a proposal is reproducible)
SEED = 20251207


def random_like(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random values of ``arr``'s shape and dtype that a model taking ``arr`` accepts (see the module doc)."""
    if arr.size == 0 or arr.dtype.kind == "b":
        return arr.copy()
    if arr.dtype.kind == "f":
        wide = arr.astype(np.float64)
        mean, spread = float(wide.mean()), float(wide.std())
        if not np.isfinite(mean) or not np.isfinite(spread):
            return arr.copy()
        return (mean + (spread if spread > 0 else 1.0) * rng.standard_normal(arr.shape)).astype(arr.dtype)
    if arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if hi <= 1:
            return arr.copy()  # a mask: its structure is the model's, not a value to vary
        if lo == hi:
            lo = 0
        return rng.integers(lo, hi + 1, size=arr.shape).astype(arr.dtype)
    return arr.copy()


def separating_input(example_inp: tuple[Any, Any], seed: int = SEED) -> tuple[Any, Any] | None:
    """``(paddle_input, torch_input)`` like the example, with random values (the same on both sides).

    None when the two sides' inputs do not pair tensor by tensor (different counts or shapes),
    or when no value could be varied: then nothing separates what the example could not.
    """
    from padiff.adapters import PADDLE, TORCH

    p_ts, t_ts = PADDLE.flatten(example_inp[0]), TORCH.flatten(example_inp[1])
    if len(p_ts) != len(t_ts) or not p_ts:
        return None
    rng = np.random.default_rng(seed)
    values: list[np.ndarray] = []
    for p, t in zip(p_ts, t_ts):
        a, b = PADDLE.to_numpy(p), TORCH.to_numpy(t)
        if a.shape != b.shape:
            return None
        values.append(random_like(a, rng))
    if all(np.array_equal(v, PADDLE.to_numpy(p)) for v, p in zip(values, p_ts)):
        return None
    p_iter, t_iter = iter(values), iter(values)
    return (PADDLE.map_tensors(example_inp[0], lambda t: PADDLE.from_numpy(next(p_iter), like=t)),
            TORCH.map_tensors(example_inp[1], lambda t: TORCH.from_numpy(next(t_iter), like=t)))
