"""The fixed random projection padiff's built-in loss takes of a model's outputs.

The built-in loss is ``sum_k <w_k, out_k>`` over the output's float tensors: every output
element gets a gradient (``w_k``), unlike the mean of the output, whose gradient through a
final LayerNorm is zero (the mean of a normalised vector does not depend on its input), so a
backward check would compare rounding noise. ``w_k`` depends only on the tensor's position
``k`` and shape: drawn from a fixed seed, scaled to unit length, held in float32 so each
framework (and a float64 reference run) multiplies by exactly the same numbers. Framework-free.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: the seed of every projection (with the tensor's position): fixed, so runs repeat
PROJECTION_SEED = 0x9AD1F


@lru_cache(maxsize=16)
def _projection(k: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng([PROJECTION_SEED, k])
    w = rng.standard_normal(shape)
    norm = float(np.sqrt(np.sum(w * w)))
    out = (w / norm if norm > 0 else w).astype(np.float32)
    out.setflags(write=False)
    return out


def projection(k: int, shape: tuple[int, ...]) -> np.ndarray:
    """The read-only float32 weights ``w_k`` for output tensor ``k`` of ``shape`` (unit L2 norm)."""
    return _projection(int(k), tuple(int(s) for s in shape))
