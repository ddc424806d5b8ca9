"""The JSON dump of a :class:`DiffReport`, for scripts and CI.

Strict JSON (no ``NaN``/``Infinity`` literals, which many parsers reject): non-finite
numbers become the strings ``"nan"``, ``"inf"``, ``"-inf"``; anything else that is not
JSON-native (numpy scalars, tuples) is converted. Written atomically.
"""

from __future__ import annotations

import json
import math
from typing import Any

from padiff.report.files import atomic_write
from padiff.report.records import DiffReport


def report_json(report: DiffReport) -> str:
    """``report.to_dict()`` as indented, strict JSON text."""
    return json.dumps(_clean(report.to_dict()), indent=2, allow_nan=False) + "\n"


def write_json(report: DiffReport, path: str) -> str:
    """Write the JSON dump of ``report`` to ``path`` and return the path."""
    return atomic_write(path, report_json(report), what="the JSON report")


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_clean(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _clean(item())
        except (TypeError, ValueError):
            pass
    return str(obj)
