"""The plain records weight-layout inference works on (no framework import, no inference logic)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Fn = Callable[[list[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Tensor:
    """What inference needs to know about one tensor: name, shape, owner class."""

    name: str
    shape: tuple[int, ...]
    owner: str = ""  # class name of the layer holding it (``Linear`` ...)
    layout: str = ""  # its layout by a framework convention (:mod:`padiff.weights.layouts`), "" when unknown


@dataclass(frozen=True)
class Inferred:
    """One paddle tensor computed from torch tensors (mirrors ``weights.Link``)."""

    paddle_name: str
    torch_names: tuple[str, ...]
    conversion: str
    fn: Fn
    unsure: bool = False  # a square 2-D weight whose orientation no convention gives: confirm it numerically


def is_linear(owner: str) -> bool:
    """Class names of fully connected layers, whose weight layout differs between frameworks."""
    return "Linear" in owner
