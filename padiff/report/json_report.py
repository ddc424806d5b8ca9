"""The JSON dump of a :class:`DiffReport`, for scripts and CI, and its loader.

Strict JSON (no ``NaN``/``Infinity`` literals, which many parsers reject): non-finite
numbers become the strings ``"nan"``, ``"inf"``, ``"-inf"``; anything else that is not
JSON-native (numpy scalars, tuples) is converted. Written atomically. The dump carries a
``version`` (:data:`~padiff.report.records.REPORT_FORMAT_VERSION`); :func:`load_json` reads
it back into the same records, so a CI job can re-render or inspect a saved run.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from padiff.errors import PadiffError
from padiff.names import json_number, number_from_json
from padiff.report.files import atomic_write
from padiff.report.records import (
    REPORT_FORMAT_VERSION,
    Comparison,
    DiffReport,
    MappedPair,
    OpDiff,
    ReportWarning,
    SkippedLayer,
    Stats,
    WarningCode,
)


class ReportFileError(PadiffError):
    """A JSON report that cannot be read back (not padiff's format, or another version)."""


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
        return json_number(obj)
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _clean(item())
        except (TypeError, ValueError):
            pass
    return str(obj)


def load_json(path: str) -> DiffReport:
    """Read a JSON report written by :func:`write_json` back into a :class:`DiffReport`."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportFileError(f"cannot read the JSON report {path}: {exc}") from None
    return report_from_dict(data, source=path)


def report_from_dict(data: Any, source: str = "report") -> DiffReport:
    """Inverse of :meth:`DiffReport.to_dict` (derived entries such as ``ok`` and ``first_diff`` are recomputed)."""
    if not isinstance(data, dict) or data.get("version") != REPORT_FORMAT_VERSION:
        got = data.get("version") if isinstance(data, dict) else type(data).__name__
        raise ReportFileError(f"{source}: not a padiff JSON report of format version {REPORT_FORMAT_VERSION} "
                              f"(version {got!r}); write it again with this padiff (json_path= / --json).")
    return DiffReport(
        records=[_comparison(r) for r in data.get("records", [])],
        options=dict(data.get("options", {})),
        steps=int(data.get("steps", 1)),
        stages=list(data.get("stages", [])),
        skipped=[SkippedLayer(**s) for s in data.get("skipped", [])],
        warnings=_warnings(data.get("warnings", []), data.get("warning_codes", [])),
        mapping=[MappedPair(paddle_path=m["paddle_path"], torch_path=m["torch_path"],
                            paddle_class=m["paddle_class"], torch_class=m["torch_class"])
                 for m in data.get("mapping", [])],
        mapping_route=str(data.get("mapping_route", "")),
        conversions=list(data.get("conversions", [])),
        settled_numerically=list(data.get("settled_numerically", [])),
        paddle_tree=[(str(p), str(c), int(d)) for p, c, d in data.get("paddle_tree", [])],
        torch_tree=[(str(p), str(c), int(d)) for p, c, d in data.get("torch_tree", [])],
        paddle_root_class=str(data.get("paddle_root_class", "")),
        torch_root_class=str(data.get("torch_root_class", "")),
        log_dir=str(data.get("log_dir", "")),
        assign_error=str(data.get("assign_error", "")),
    )


def _warnings(texts: list[str], codes: list[WarningCode]) -> list[str]:
    return [ReportWarning(str(w), codes[i] if i < len(codes) else "other") for i, w in enumerate(texts)]


_STAT_FIELDS = {f.name: f.type for f in dataclasses.fields(Stats)}


def _stats(d: dict[str, Any]) -> Stats:
    kw: dict[str, Any] = {}
    for name, kind in _STAT_FIELDS.items():
        if name not in d:
            continue
        v = d[name]
        if kind == "float":
            v = number_from_json(v)
        elif name == "worst_index":
            v = tuple(int(x) for x in v)
        kw[name] = v
    return Stats(**kw)


def _frames(rows: Any) -> tuple[tuple[str, int, str], ...]:
    return tuple((str(f), int(n), str(fn)) for f, n, fn in rows or ())


def _op(d: dict[str, Any] | None) -> OpDiff | None:
    if d is None:
        return None
    kw = dict(d)
    kw["stats"] = None if d.get("stats") is None else _stats(d["stats"])
    kw["args"] = tuple((str(k), p, t) for k, p, t in d.get("args", []))
    for key in ("paddle_shape", "torch_shape"):
        kw[key] = tuple(int(x) for x in d.get(key, []))
    for key in ("only_paddle", "only_torch"):
        kw[key] = tuple(str(x) for x in d.get(key, []))
    for key in ("paddle_frame", "torch_frame"):
        frame = d.get(key) or ()
        kw[key] = (str(frame[0]), int(frame[1]), str(frame[2])) if frame else ()
    return OpDiff(**kw)


_COMPARISON_FIELDS = {f.name for f in dataclasses.fields(Comparison)} - {"stats", "op"}


def _comparison(d: dict[str, Any]) -> Comparison:
    kw = {k: v for k, v in d.items() if k in _COMPARISON_FIELDS}
    kw["paddle_stack"], kw["torch_stack"] = _frames(d.get("paddle_stack")), _frames(d.get("torch_stack"))
    return Comparison(**kw, stats=_stats(d), op=_op(d.get("op")))
