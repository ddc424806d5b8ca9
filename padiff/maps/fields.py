"""Checked reading of one map-file field: every problem a :class:`MapFileError` naming the entry.

``label`` is how the entry is named in messages (``map.yaml line 12: pairs[3] (paddle 'a' <->
torch 'b')``). These are the only readers of map entries, so a hand-edited file and a dict
built in code are held to the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from padiff.errors import MapFileError
from padiff.names import SIDE_NAMES, SideName


def entry_fields(entry: Any, label: str, valid: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    """``entry`` as a dict, refusing a non-mapping, unknown keys and missing required keys."""
    if not isinstance(entry, Mapping):
        raise MapFileError(f"{label}: must be a mapping with keys {list(valid)}, got {type(entry).__name__}.")
    unknown = [k for k in entry if k not in valid]
    if unknown:
        raise MapFileError(f"{label}: unknown field(s) {sorted(map(str, unknown))}; valid fields: {list(valid)}.")
    missing = [k for k in required if k not in entry]
    if missing:
        raise MapFileError(f"{label}: missing {missing}.")
    return dict(entry)


def text(value: Any, label: str) -> str:
    """A text line (numbers are accepted and written as text)."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise MapFileError(f"{label}: must be text, got {type(value).__name__}.")
    return str(value)


def string(value: Any, label: str, key: str) -> str:
    """A path or name; an empty YAML value (``None``) is ``""`` (for a path: the root)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        what = "a layer path string (the root is \"\")" if key.endswith("path") else "a string"
        raise MapFileError(f"{label}: {key} must be {what}, got {value!r}.")
    return value


def shapes(value: Any, label: str, key: str) -> tuple[tuple[int, ...], ...]:
    """A list of tensor shapes, ``[[16, 8], [16]]``."""
    if value is None:
        return ()
    ok = isinstance(value, list | tuple) and all(
        isinstance(s, list | tuple) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in s)
        for s in value)
    if not ok:
        raise MapFileError(f"{label}: {key} must be a list of shapes like [[16, 8], [16]], got {value!r}.")
    return tuple(tuple(s) for s in value)


def flag(value: Any, label: str, key: str, default: bool) -> bool:
    """``true`` / ``false``; absent is ``default``."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MapFileError(f"{label}: {key} must be true or false, got {value!r}.")
    return value


def confidence(value: Any, label: str) -> float:
    """A number from 0 to 1; absent is 1."""
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or \
            not 0 <= value <= 1:
        raise MapFileError(f"{label}: confidence must be a number from 0 to 1, got {value!r}.")
    return float(value)


def evidence(value: Any, label: str) -> tuple[str, ...]:
    """A list of text lines (one string is one line)."""
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise MapFileError(f"{label}: evidence must be a list of text lines, got {type(value).__name__}.")
    return tuple(text(e, label + " evidence") for e in value)


def parts(value: Any, label: str, key: str) -> tuple[str, ...]:
    """The layers of a split side written as a list of paths; ``()`` for a single path."""
    if not isinstance(value, list | tuple):
        return ()
    out = tuple(string(v, label, key) for v in value)
    if len(out) < 2 or len(set(out)) != len(out):
        raise MapFileError(f"{label}: {key} as a list needs two or more distinct paths (the split layers in the "
                           f"order their outputs concatenate), got {list(value)!r}.")
    return out


def axis(value: Any, label: str) -> int:
    """The output axis the parts of a fused pair concatenate along (default -1)."""
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int):
        raise MapFileError(f"{label}: axis must be an integer (the output axis the parts concatenate along), "
                           f"got {value!r}.")
    return value


def groups(value: Any, label: str) -> int:
    """How many interleaved runs the parts of a fused pair form along the axis (default 1: one after another)."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MapFileError(f"{label}: groups must be a whole number >= 1 (how many interleaved runs the parts form "
                           f"along axis; 1 = one after another), got {value!r}.")
    return value


def side(value: Any, label: str) -> SideName:
    """``"paddle"`` or ``"torch"``."""
    if value not in SIDE_NAMES:
        raise MapFileError(f"{label}: side must be 'paddle' or 'torch', got {value!r}.")
    return "paddle" if value == "paddle" else "torch"


def choice(value: Any, label: str, key: str, valid: tuple[str, ...]) -> str:
    """One of ``valid``."""
    if value not in valid:
        raise MapFileError(f"{label}: {key} must be one of {list(valid)}, got {value!r}.")
    return str(value)
