"""Plan data: how the tensors of one paired (paddle layer, torch module) convert into each other.

A :class:`PairPlan` lists :class:`Link` s (each paddle tensor computed from named torch
arrays: copy, Linear transpose, inferred transpose/reshape/split/concat, or a built-in
special init), or holds a user special init working on the layer objects. The weight
planner (:mod:`padiff.weights.pair_plan`) and the special inits
(:mod:`padiff.weights.special_init`) both build plans, so the data lives here, below both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from padiff.adapters import StateEntry

ArrayDict = dict[str, np.ndarray]
# how a square weight of unknown layout is oriented: a forward of both layers, their equal values, or not at all
Settle = Literal["forward", "values", "shape"]


@dataclass(frozen=True)
class Link:
    """One paddle tensor and how to compute it from the torch side's tensors."""

    paddle_name: str
    torch_names: tuple[str, ...]
    conversion: str  # "copy", "transpose (Linear layout)", "inferred split: ...", "special: ..."
    fn: Callable[[list[np.ndarray]], np.ndarray] = field(compare=False)


@dataclass
class PairPlan:
    """How one paired (paddle layer, torch module) exchange their own tensors."""

    paddle_path: str
    torch_path: str
    paddle_class: str
    torch_class: str
    links: list[Link]
    special: str = ""  # name of the special init used, if any
    layer_init: Callable[[Any, Any], None] | None = None  # a user special init (objects)
    paddle_parts: tuple[str, ...] = ()  # a fused pair's split side (tensors named by layer path)
    torch_parts: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)  # tensors left out as a convention (an identity bias ...)

    @property
    def paddle_paths(self) -> tuple[str, ...]:
        """The paddle layers whose tensors this plan writes."""
        return self.paddle_parts or (self.paddle_path,)

    @property
    def torch_paths(self) -> tuple[str, ...]:
        """The torch modules whose tensors this plan reads."""
        return self.torch_parts or (self.torch_path,)

    def convert(self, torch_arrays: ArrayDict) -> ArrayDict:
        """Torch-named arrays → paddle-named arrays, for every link whose inputs are present."""
        out: ArrayDict = {}
        for link in self.links:
            if all(n in torch_arrays for n in link.torch_names):
                out[link.paddle_name] = link.fn([torch_arrays[n] for n in link.torch_names])
        return out

    @property
    def conversions(self) -> list[str]:
        """Human-readable conversions that are not plain copies (for reports)."""
        return [f"{lk.paddle_name} <- {'+'.join(lk.torch_names)}: {lk.conversion}"
                for lk in self.links if lk.conversion != "copy"]

    @property
    def inferred(self) -> list[str]:
        """Only the conversions padiff guessed from shapes (a person should know about these)."""
        return [c for c, lk in zip(self.conversions, [lk for lk in self.links if lk.conversion != "copy"])
                if lk.conversion.startswith("inferred")]


def set_error_fields(err: Exception, p_path: str, p_class: str, p_state: list[StateEntry] | None,
                     t_path: str, t_class: str, t_state: list[StateEntry] | None, reason: str) -> None:
    """Attach the data renderers need (paths, classes, shapes, reason) to a weight error."""
    err.paddle_path, err.torch_path = p_path, t_path  # type: ignore[attr-defined]
    err.paddle_class, err.torch_class = p_class, t_class  # type: ignore[attr-defined]
    err.paddle_shapes = {e.name: tuple(e.tensor.shape) for e in p_state or []}  # type: ignore[attr-defined]
    err.torch_shapes = {e.name: tuple(e.tensor.shape) for e in t_state or []}  # type: ignore[attr-defined]
    err.reason = reason  # type: ignore[attr-defined]
