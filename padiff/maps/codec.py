"""A layer map <-> its versioned dict (the content of a map file), with every entry checked.

The dict is what a person reads and edits, so every section is written and nothing is
dropped (pairs, opaque ``map`` pairs, parameter pairs, ignores, unpaired layers with
reasons, the default-pairing baseline, route and notes), and whatever is read is checked
by the records' own ``from_dict`` (:mod:`padiff.maps.types`). Layer objects are not data:
the caller turns ``LayerMap.map`` and ``ignore(obj)`` entries into paths against the models
first (:mod:`padiff.layer_map` does). Pure Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from padiff.errors import MapFileError, MappingError
from padiff.maps.notes import MapNote, note_entry, note_kind
from padiff.maps.types import (
    MAP_FORMAT_VERSION,
    READABLE_VERSIONS,
    Duplicate,
    Ignore,
    LayerPair,
    MapData,
    ParamPair,
    Unpaired,
    first_duplicate,
)
from padiff.names import show

SECTIONS = ("version", "route", "notes", "pairs", "params", "map", "ignores", "unpaired", "baseline")

M = TypeVar("M", bound=MapData)


class Where:
    """Names an entry in messages: ``map.yaml line 12: pairs[3] (paddle 'a' <-> torch 'b')``."""

    def __init__(self, source: str = "", lines: Mapping[tuple[str, int], int] | None = None) -> None:
        self.source = source
        self.lines = lines or {}

    def __call__(self, section: str, index: int | None = None, entry: Any = None) -> str:
        """The label of ``section`` (or of its ``index``-th entry, described by ``entry``)."""
        loc = self.source
        line = self.lines.get((section, -1 if index is None else index))
        if line:
            loc = f"{loc} line {line}" if loc else f"line {line}"
        what = section if index is None else f"{section}[{index}]"
        if isinstance(entry, Mapping) and ("paddle_path" in entry or "torch_path" in entry):
            what += f" (paddle {entry.get('paddle_path')!r} <-> torch {entry.get('torch_path')!r})"
        elif isinstance(entry, Mapping) and "path" in entry:
            what += f" ({entry.get('side')} {entry.get('path')!r})"
        return f"{loc}: {what}" if loc else what

    def strip(self, label: str) -> str:
        """``label`` without the file name in front (for "already paired by pairs[0]")."""
        prefix = self.source + " " if self.source else ""
        return label[len(prefix):] if prefix and label.startswith(prefix) else label


# --- map -> dict ---------------------------------------------------------------------------
def pair_entry(p: LayerPair, *, in_map_section: bool = False) -> dict[str, Any]:
    """A pair as written in a map file: ``opaque`` only where it is not implied by the section."""
    d = p.to_dict()
    if in_map_section or not p.opaque:
        d.pop("opaque")
    return d


def map_to_dict(md: MapData, *, pairs: Sequence[LayerPair] | None = None, object_pairs: Iterable[LayerPair] = (),
                ignores: Iterable[Ignore] | None = None) -> dict[str, Any]:
    """The versioned, JSON/YAML-friendly dict of ``md``.

    ``pairs`` replaces ``md.pairs`` (e.g. with classes and shapes filled in from the models),
    ``object_pairs`` are the ``md.map`` entries and ``ignores`` all ignores, already turned
    into paths. Raises :class:`MappingError` when ``md`` holds layer objects that were not
    turned into paths, or when a layer is paired twice (a map that could not be loaded back
    is not written).
    """
    object_pairs = list(object_pairs)
    if (md.map and not object_pairs) or (md.object_ignores and ignores is None):
        raise MappingError(
            "this LayerMap holds layer objects (LayerMap.map or ignore(obj)); pass both models so they can be "
            "written as paths: lm.save(path, layer, module) / lm.to_dict(layer, module)."
        )
    pairs = list(md.pairs if pairs is None else pairs)
    map_entries = [pair_entry(p, in_map_section=True) for p in [*object_pairs, *(p for p in pairs if p.opaque)]]
    plain = [pair_entry(p) for p in pairs if not p.opaque]
    labelled = [(f"pairs[{i}] (paddle {e['paddle_path']!r} <-> torch {e['torch_path']!r})", LayerPair.from_dict(e))
                for i, e in enumerate(plain)]
    labelled += [(f"map[{i}] (paddle {e['paddle_path']!r} <-> torch {e['torch_path']!r})",
                  LayerPair.from_dict(e, opaque=True)) for i, e in enumerate(map_entries)]
    dup = first_duplicate(labelled)
    if dup is not None:
        raise MappingError(f"cannot save this LayerMap: {_already_paired(dup)}")
    return {
        "version": _version(md, pairs),
        "route": md.route,
        "notes": [note_entry(n) for n in md.notes],
        "pairs": plain,
        **({"params": [pp.to_dict() for pp in md.params]} if md.params else {}),
        "map": map_entries,
        "ignores": [i.to_dict() for i in (md.ignores if ignores is None else ignores)],
        "unpaired": [u.to_dict() for u in md.unpaired],
        "baseline": [pair_entry(p) for p in md.baseline],
    }


def _version(md: MapData, pairs: Sequence[LayerPair]) -> int:
    """The oldest format that holds ``md``, so plain maps stay readable by older padiff."""
    if any(note_kind(n) != "general" for n in md.notes):
        return 3
    return 2 if any(p.split_side for p in pairs) or md.params else 1


def _already_paired(dup: Duplicate) -> str:
    return (f"{dup.label}: the {dup.side} layer {show(dup.path)!r} is already paired by {dup.first}. "
            "A layer can be in one pair only: keep one of the two entries.")


# --- dict -> map ---------------------------------------------------------------------------
@dataclass
class Decoded:
    """A map file's content, checked entry by entry; ``pairs`` keep their labels for later messages."""

    where: Where
    route: str
    notes: list[str]
    pairs: list[tuple[str, LayerPair]]  # the pairs section, then the map section (opaque)
    params: list[ParamPair]
    ignores: list[Ignore]
    unpaired: list[Unpaired]
    baseline: list[LayerPair] = field(default_factory=list)

    def build(self, cls: type[M]) -> M:
        """The map of type ``cls`` holding this content."""
        md = cls([p for _, p in self.pairs], route=self.route, notes=self.notes, unpaired=self.unpaired)
        md.params = list(self.params)
        md.ignores = list(self.ignores)
        md.baseline = list(self.baseline)
        return md


def decode(data: Any, *, source: str = "", lines: Mapping[tuple[str, int], int] | None = None) -> Decoded:
    """Check :func:`map_to_dict`'s format and read every entry; no models needed.

    Opaque ``map`` entries become ``LayerPair(opaque=True)``; no layer may be paired twice.
    ``source`` and ``lines`` (``{(section, index): line}``) only make messages point into
    the file. Raises :class:`MapFileError` for anything wrong.
    """
    where = Where(source, lines)
    if not isinstance(data, Mapping):
        raise MapFileError(f"{where('file') if source else 'map data'}: expected a mapping with keys "
                           f"{list(SECTIONS)}, got {type(data).__name__}. Write the file with LayerMap.save().")
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise MapFileError(f"{where('top level')}: unknown key(s) {sorted(map(str, unknown))}; valid keys: "
                           f"{list(SECTIONS)}.")
    if "version" not in data:
        raise MapFileError(f"{where('version')}: missing 'version'; add 'version: {MAP_FORMAT_VERSION}' at the top "
                           "(files written by LayerMap.save() have it).")
    version = data["version"]
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise MapFileError(f"{where('version')}: format version {version!r} is not supported; this padiff reads "
                           f"versions {list(READABLE_VERSIONS)}. Re-create the map with this padiff (padiff suggest) "
                           "or upgrade padiff.")
    route = data.get("route", "manual")
    if route is None:
        route = "manual"
    if not isinstance(route, str):
        raise MapFileError(f"{where('route')}: must be a string, got {type(route).__name__}.")

    def each(key: str) -> list[tuple[str, Any]]:
        return [(where(key, i, e), e) for i, e in enumerate(_section(data, key, where))]

    pairs = [(label, LayerPair.from_dict(e, label)) for label, e in each("pairs")]
    pairs += [(label, LayerPair.from_dict(e, label, opaque=True)) for label, e in each("map")]
    dup = first_duplicate(pairs)
    if dup is not None:
        raise MapFileError(_already_paired(dataclasses.replace(dup, first=where.strip(dup.first))))
    return Decoded(
        where=where,
        route=route,
        notes=[MapNote.from_dict(n, label) for label, n in each("notes")],
        pairs=pairs,
        params=[ParamPair.from_dict(e, label) for label, e in each("params")],
        ignores=[Ignore.from_dict(e, label) for label, e in each("ignores")],
        unpaired=[Unpaired.from_dict(e, label) for label, e in each("unpaired")],
        baseline=[LayerPair.from_dict(e, label) for label, e in each("baseline")],
    )


def map_from_dict(data: Any, *, source: str = "", lines: Mapping[tuple[str, int], int] | None = None,
                  cls: type[M] = MapData) -> M:  # type: ignore[assignment]
    """:func:`decode` and build the map (without checking it against models)."""
    return decode(data, source=source, lines=lines).build(cls)


def _section(data: Mapping[str, Any], key: str, where: Where) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MapFileError(f"{where(key)}: must be a list (one '- ' entry per item), got {type(value).__name__}.")
    return value
