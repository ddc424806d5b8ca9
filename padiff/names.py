"""Layer paths and names: the few rules every module needs, written once.

A layer path is the string ``named_sublayers()`` / ``named_modules()`` give (``"encoder.0.fc"``);
the root model is ``""``. Displays show the root as ``<root>``. Pure Python, no framework.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

SideName = Literal["paddle", "torch"]
SIDE_NAMES: tuple[SideName, SideName] = ("paddle", "torch")
ROOT_LABEL = "<root>"


def other_side(side: SideName) -> SideName:
    """``"torch"`` for ``"paddle"`` and the reverse."""
    return "torch" if side == "paddle" else "paddle"


def show(path: str, root_class: str = "") -> str:
    """A path for messages: the root (``""``) is ``<root>``, or ``<root Net>`` when its class is given."""
    if path:
        return path
    return f"<root {root_class}>" if root_class else ROOT_LABEL


def is_within(path: str, top: str) -> bool:
    """True when ``path`` is ``top`` or inside it (every path is inside the root ``""``)."""
    return top == "" or path == top or path.startswith(top + ".")


def is_strictly_within(path: str, top: str) -> bool:
    """True when ``path`` is inside ``top`` and not ``top`` itself."""
    return path != top and is_within(path, top)


def within_any(path: str, tops: Iterable[str]) -> bool:
    """True when ``path`` is one of ``tops`` or inside one of them."""
    return any(is_within(path, top) for top in tops)


def common_container(paths: Iterable[str], *, own: bool = False) -> str:
    """The deepest layer path holding every path of ``paths`` (``""``: the root).

    Without ``own`` only a path's parents count (the block around ``a.b`` and ``a.c`` is ``a``,
    around ``a.b`` alone it is ``a`` too); with ``own`` a path holds itself (``a.b`` alone gives ``a.b``).
    """
    split = [(p.split(".") if p else []) if own else p.split(".")[:-1] for p in paths]
    out: list[str] = []
    for level in zip(*split):
        if len(set(level)) > 1:
            break
        out.append(level[0])
    return ".".join(out)


def depth(path: str) -> int:
    """Nesting depth: 0 for the root, 1 for ``fc``, 2 for ``block.fc``."""
    return 0 if path == "" else path.count(".") + 1


def id_index(named: Iterable[tuple[str, Any]]) -> dict[int, str]:
    """``{id(obj): path}`` over ``(path, obj)`` pairs, to find where a live object sits in a model."""
    return {id(obj): path for path, obj in named}


def class_key(name: str) -> str:
    """A class name compared across frameworks: ``Conv2D`` and ``Conv2d`` -> ``conv``, ``Linear`` -> ``linear``."""
    name = name.lower()
    return name[:-2] if name[-2:] in ("1d", "2d", "3d") else name


def class_name(obj: Any) -> str:
    """The class name of ``obj`` as reports and map files show it."""
    return type(obj).__name__


def json_number(x: float) -> float | str:
    """A float strict JSON can hold: NaN and +/-Inf become ``"nan"``, ``"inf"``, ``"-inf"``."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def number_from_json(x: float | int | str | None) -> float:
    """Inverse of :func:`json_number` (``None`` reads as NaN)."""
    return math.nan if x is None else float(x)
