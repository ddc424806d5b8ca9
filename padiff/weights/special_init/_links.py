"""Shared helpers for built-in special inits: name lookup, links, shape checks, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from padiff.adapters import StateEntry
from padiff.errors import WeightAssignError
from padiff.names import show
from padiff.weights.plan import set_error_fields

Fn = Callable[[list[np.ndarray]], np.ndarray]


def copy(arrs: list[np.ndarray]) -> np.ndarray:
    """The torch array as is."""
    return arrs[0]


def transpose(arrs: list[np.ndarray]) -> np.ndarray:
    """``[out, in]`` → ``[in, out]`` (Linear-style weights)."""
    return np.ascontiguousarray(arrs[0].T)


def rows(start: int, stop: int, then_transpose: bool) -> Fn:
    """Rows ``start:stop`` of a packed torch array, optionally transposed."""

    def fn(arrs: list[np.ndarray]) -> np.ndarray:
        piece = arrs[0][start:stop]
        return np.ascontiguousarray(piece.T if then_transpose else piece)

    def out_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
        s = (max(0, min(stop, shapes[0][0]) - start), *shapes[0][1:])
        return s[::-1] if then_transpose else s

    fn.out_shape = out_shape  # type: ignore[attr-defined]
    return fn


copy.out_shape = lambda shapes: tuple(shapes[0])  # type: ignore[attr-defined]
transpose.out_shape = lambda shapes: tuple(shapes[0])[::-1]  # type: ignore[attr-defined]


def out_shape(fn: Fn, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The shape ``fn`` gives for inputs of ``shapes``, without allocating full-size arrays when it can."""
    known = getattr(fn, "out_shape", None)
    if known is not None:
        return tuple(known(shapes))
    return tuple(fn([np.zeros(s, dtype=np.float32) for s in shapes]).shape)


def state_name(state: list[StateEntry], tensor: Any, fallback: str) -> str:
    """The name under which ``tensor`` appears in ``state`` (ownership may rename it), else ``fallback``."""
    for e in state:
        if e.tensor is tensor:
            return e.name
    return fallback


def fail(p_path: str, p_layer: Any, t_path: str, t_layer: Any, reason: str) -> WeightAssignError:
    """A WeightAssignError for a special init that cannot handle this pair, with structured fields."""
    p_class, t_class = type(p_layer).__name__, type(t_layer).__name__
    err = WeightAssignError(f"special init {p_class}<->{t_class} cannot copy torch {show(t_path)} into "
                            f"paddle {show(p_path)}: {reason}")
    set_error_fields(err, p_path, p_class, None, t_path, t_class, None, reason)
    return err


def check_shapes(links: list[Any], p_shapes: dict[str, tuple[int, ...]], t_shapes: dict[str, tuple[int, ...]],
                 on_error: Callable[[str], WeightAssignError]) -> None:
    """Run every link on zero arrays of the torch shapes and check it yields the paddle shape."""
    for lk in links:
        missing = [n for n in lk.torch_names if n not in t_shapes]
        if missing:
            raise on_error(f"torch has no {missing[0]!r} for paddle {lk.paddle_name!r}")
        got = out_shape(lk.fn, [t_shapes[n] for n in lk.torch_names])
        want = p_shapes[lk.paddle_name]
        if tuple(got) != tuple(want):
            shapes = ", ".join(f"{n}{list(t_shapes[n])}" for n in lk.torch_names)
            raise on_error(f"paddle {lk.paddle_name}{list(want)} cannot be made from torch {shapes} "
                           f"({lk.conversion} gives {list(got)}); the layers are configured differently")
