"""Walking nested model inputs and outputs (dicts, lists, tuples, named tuples, dataclasses).

Framework-free: the caller says what a tensor is (``is_tensor``), so both adapters walk
structures by the same rules and pair the two sides' tensors in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: nesting deeper than this is not walked (a self-referencing structure must not recurse forever)
MAX_DEPTH = 50


def flatten(obj: Any, is_tensor: Callable[[Any], bool], *, by_key: bool = False) -> list[Any]:
    """Every tensor in a nested structure, in a stable order; non-tensors are passed over.

    Dicts are walked in insertion order, so the two sides must build them alike (they
    do when the models are ports of each other; :mod:`padiff.compare.keyed` pairs by key).
    ``by_key``: dicts walked in the order of their keys instead, the same on both sides
    whatever order each built them in.
    """
    out: list[Any] = []
    _flatten(obj, is_tensor, out, 0, by_key)
    return out


def _flatten(obj: Any, is_tensor: Callable[[Any], bool], out: list[Any], depth: int, by_key: bool) -> None:
    if depth > MAX_DEPTH:
        return
    if is_tensor(obj):
        out.append(obj)
    elif isinstance(obj, Mapping):
        keys = sorted(obj, key=str) if by_key else list(obj)
        for k in keys:
            _flatten(obj[k], is_tensor, out, depth + 1, by_key)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _flatten(v, is_tensor, out, depth + 1, by_key)
    elif hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            _flatten(getattr(obj, name, None), is_tensor, out, depth + 1, by_key)


def map_tensors(obj: Any, is_tensor: Callable[[Any], bool], fn: Callable[[Any], Any]) -> Any:
    """Rebuild a nested structure (dicts, named tuples, lists, tuples) with ``fn`` applied to each tensor."""
    if is_tensor(obj):
        return fn(obj)
    if isinstance(obj, dict):
        return type(obj)((k, map_tensors(v, is_tensor, fn)) for k, v in obj.items())
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(map_tensors(v, is_tensor, fn) for v in obj))
    if isinstance(obj, list | tuple):
        return type(obj)(map_tensors(v, is_tensor, fn) for v in obj)
    return obj
