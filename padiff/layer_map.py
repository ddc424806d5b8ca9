"""``LayerMap``: the one map type every pairing producer fills, with its files, review and diff.

Call-order pairing, a user's dict, a hand-built ``LayerMap``, a saved file and the
structural aligner all produce a ``LayerMap``; the runtime engine only consumes the
path-based :class:`ResolvedMap` that :meth:`LayerMap.resolve` derives from it against the
two live models. Paths are the strings ``named_sublayers()`` / ``named_modules()`` give;
the root is ``""``.

This module joins the parts, each a module of its own: the records and their one parser
(:mod:`padiff.maps.types`), the versioned dict (:mod:`padiff.maps.codec`), file text
(:mod:`padiff.maps.text_io`), the review (:mod:`padiff.maps.review`) and the diff
(:mod:`padiff.maps.diff`), none of which needs a model; and the live side, which does
(:mod:`padiff.weights.live_map`: objects to paths, checking a file against the models;
:mod:`padiff.weights.special_init`: the pairs ``auto`` adds).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from padiff.errors import MapFileError, MappingError
from padiff.maps import codec, text_io
from padiff.maps.diff import MapDiff, diff_maps, render_diff
from padiff.maps.review import review_map
from padiff.maps.types import (
    MAP_FORMAT_VERSION,
    READABLE_VERSIONS,
    SIDES,
    Ignore,
    LayerPair,
    MapData,
    ParamPair,
    ResolvedMap,
    Unpaired,
)
from padiff.names import show
from padiff.weights import live_map
from padiff.weights.special_init import find_special_pairs

log = logging.getLogger("padiff")


class LayerMap(MapData):
    """Which paddle sublayer corresponds to which torch submodule.

    - ``map``: ``{paddle_layer: torch_module}`` opaque pairs: compare only their tops,
      never their insides, and initialise them with a special init.
    - ``pairs``: full correspondences (``LayerPair``), e.g. from the structural
      aligner; they replace call-order pairing for the layers they cover.
    - ``ignore`` / ``ignore_recursively`` / ``ignore_class``: layers to pass over.
    - ``unpaired``, ``route``, ``notes``: what a proposal could not pair and how it was made.
    """

    def auto(self, layer: Any, module: Any) -> LayerMap:
        """Add to ``map`` every pair of layers that has a registered special init.

        Pairs are found in call-agnostic tree order, per special-init kind; each pair found
        is logged. Returns ``self`` so calls can be chained.
        """
        for p_layer, t_module, p_path, t_path in find_special_pairs(layer, module):
            log.info("LayerMap.auto: %s (%s) <-> %s (%s)", show(p_path), type(p_layer).__name__,
                     show(t_path), type(t_module).__name__)
            self.map[p_layer] = t_module
        return self

    def resolve(self, layer: Any, module: Any) -> ResolvedMap:
        """Turn objects into paths against the live models and check every entry fits.

        Raises :class:`MappingError` naming the entry when a layer is not inside the
        model it should be in, or a path does not exist.
        """
        return live_map.resolve(self, layer, module)

    def path_ignores(self, layer: Any, module: Any) -> list[Ignore]:
        """All ignores as path-based entries (object ones resolved), for saving."""
        return live_map.path_ignores(self, layer, module)

    def to_dict(self, layer: Any = None, module: Any = None) -> dict[str, Any]:
        """A versioned, JSON/YAML-friendly dict; live models resolve object entries to paths."""
        return map_to_dict(self, layer, module)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], layer: Any = None, module: Any = None) -> LayerMap:
        """Inverse of :meth:`to_dict`; with live models, every entry is validated against them."""
        return map_from_dict(data, layer, module)

    def save(self, path: str, layer: Any = None, module: Any = None) -> None:
        """Write the map as YAML (``.yaml``/``.yml``) or JSON (``.json``) for a person to review and edit."""
        save_map(self, path, layer, module)

    @classmethod
    def load(cls, path: str, layer: Any = None, module: Any = None) -> LayerMap:
        """Read a saved map; with live models, entries are validated against them."""
        return load_map(path, layer, module)

    def review(self) -> str:
        """A printable side-by-side mapping diff: proposal vs default pairing, doubts, unpaired."""
        return review_map(self)

    def changes(self, other: LayerMap) -> MapDiff:
        """What changed from ``self`` to ``other``, as a record (truthy when anything did)."""
        return diff_maps(self, other)

    def diff(self, other: LayerMap) -> str:
        """What changed from ``self`` to ``other``: pairs added, removed and re-paired."""
        return render_diff(diff_maps(self, other))

    @classmethod
    def coerce(cls, value: Any) -> LayerMap:
        """Accept a ``LayerMap``, a plain ``{paddle_layer: torch_module}`` dict (objects or paths), or ``None``."""
        if value is None:
            return cls()
        if isinstance(value, LayerMap):
            return value
        if isinstance(value, Mapping):
            lm = cls()
            lm.map = dict(value)
            return lm
        raise MappingError(
            "layer_map must be a LayerMap, a dict {paddle_layer: torch_module} (or of their paths, "
            "{'encoder.fc1': 'encoder.linear1'}) or 'auto', "
            f"got {type(value).__name__}."
        )


def map_to_dict(lm: MapData, layer: Any = None, module: Any = None) -> dict[str, Any]:
    """A versioned, JSON/YAML-friendly dict of ``lm``; live models turn object entries into paths.

    Raises :class:`MappingError` when ``lm`` holds layer objects (``lm.map``, ``lm.ignore(obj)``)
    and the models are not given, or when such an object is in neither model.
    """
    if layer is None or module is None:
        return codec.map_to_dict(lm)
    return codec.map_to_dict(lm, pairs=live_map.described(list(lm.pairs), layer, module),
                             object_pairs=live_map.object_pairs(lm, layer, module) if lm.map else (),
                             ignores=live_map.path_ignores(lm, layer, module) if lm.object_ignores else None)


def map_from_dict(data: Any, layer: Any = None, module: Any = None, *, source: str = "",
                  lines: Mapping[tuple[str, int], int] | None = None) -> LayerMap:
    """Build a ``LayerMap`` from :func:`map_to_dict`'s format, validating every entry.

    Opaque ``map`` entries become ``LayerPair(opaque=True)`` in ``pairs``; ignores become
    :class:`Ignore` entries in ``ignores``. With both models given, every path must exist,
    no layer may be paired twice, and the parameters of each (non-opaque) pair must be
    copyable one to the other. ``source`` and ``lines`` (``{(section, index): line}``) only
    make messages point at the file. Raises :class:`MapFileError` for anything wrong.
    """
    decoded = codec.decode(data, source=source, lines=lines)
    if layer is not None or module is not None:
        if layer is None or module is None:
            raise MappingError("pass both models (paddle layer and torch module) to validate a map, or neither.")
        labels = [decoded.where("ignores", i, ig.to_dict()) for i, ig in enumerate(decoded.ignores)]
        decoded.pairs, decoded.notes = live_map.validate(decoded.pairs, decoded.ignores, labels, layer, module,
                                                         decoded.notes)
    lm = decoded.build(LayerMap)
    if layer is not None and module is not None and lm.params:
        ignores, lm.ignores = lm.ignores, []
        try:
            lm.resolve(layer, module)
        except MappingError as exc:
            raise MapFileError(f"{decoded.where('params')}: {exc}") from None
        lm.ignores = ignores
    return lm


def save_map(lm: MapData, path: str, layer: Any = None, module: Any = None) -> None:
    """Write ``lm`` as YAML (``.yaml``/``.yml``) or JSON (``.json``), atomically."""
    path = os.fspath(path)
    text_io.format_of(path)
    text_io.write_text(path, map_to_dict(lm, layer, module))


def load_map(path: str, layer: Any = None, module: Any = None) -> LayerMap:
    """Read a map file written by :func:`save_map` (possibly edited); validate against models if given."""
    path = os.fspath(path)
    return parse_map_text(text_io.read_text(path), text_io.format_of(path), layer, module, source=path)


def parse_map_text(text: str, fmt: str, layer: Any = None, module: Any = None, *, source: str = "") -> LayerMap:
    """Parse the text of a map file (``fmt`` = ``"yaml"`` or ``"json"``) into a validated ``LayerMap``."""
    data, lines = text_io.parse_text(text, fmt, source or "map text")
    return map_from_dict(data, layer, module, source=source, lines=lines)


__all__ = ["MAP_FORMAT_VERSION", "READABLE_VERSIONS", "SIDES", "Ignore", "LayerMap", "LayerPair", "MapData",
           "ParamPair", "ResolvedMap", "Unpaired", "load_map", "map_from_dict", "map_to_dict", "parse_map_text",
           "save_map"]
