"""Pairing dict outputs by key at every depth, whatever order each side built them in.

The adapters flatten an output in insertion order. Two ports may build the same dict in
another order (``{"hidden", "scaled"}`` against ``{"scaled", "hidden"}``), at the top or
nested inside a tuple; positional pairing would then compare the wrong tensors. The
paddle side's key layout is taken as a skeleton and the torch output is rebuilt in that
order before it is flattened. Pure Python: no framework import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MAX_DEPTH = 50


def key_skeleton(obj: Any, depth: int = 0) -> Any:
    """The dict key order of a nested output (None where there is no dict below)."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(obj, Mapping):
        return ("map", [(k, key_skeleton(v, depth + 1)) for k, v in obj.items()])
    if isinstance(obj, list | tuple):
        inner = [key_skeleton(v, depth + 1) for v in obj]
        return ("seq", inner) if any(s is not None for s in inner) else None
    return None


def reorder_like(obj: Any, skeleton: Any, depth: int = 0) -> Any:
    """``obj`` with every dict whose keys equal the skeleton's rebuilt in the skeleton's key order.

    Dicts with other key sets, and sequences of another length, are left as they are (the
    comparison then reports the structure as it is).
    """
    if skeleton is None or depth > _MAX_DEPTH:
        return obj
    kind, items = skeleton
    if kind == "map" and isinstance(obj, Mapping):
        keys = [k for k, _ in items]
        if set(keys) != set(obj) or len(keys) != len(obj):
            return obj
        return {k: reorder_like(obj[k], sub, depth + 1) for k, sub in items}
    if kind == "seq" and isinstance(obj, list | tuple) and len(obj) == len(items):
        return [reorder_like(v, sub, depth + 1) for v, sub in zip(obj, items)]
    return obj
