"""The map records: ``LayerPair``, ``ParamPair``, ``Unpaired``, ``Ignore``, ``ResolvedMap``, ``MapData``.

Each record reads itself from a map-file entry with ``from_dict`` (the one parser of map
entries: a hand-edited file and a dict built in code meet the same checks, and every
problem is a :class:`~padiff.errors.MapFileError` naming the entry) and writes itself with
``to_dict``. :class:`MapData` is everything a layer map holds; :class:`padiff.layer_map.LayerMap`
adds what needs the live models or files. Pure Python: no framework, no runtime import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from padiff.errors import MapFileError, MappingError
from padiff.maps import fields as F
from padiff.names import SIDE_NAMES, SideName, is_within, show

# 3: a note may carry a kind ({kind, text}, padiff.maps.notes); 2: a pair side may list several layers
# (fused against split) or parameters pair one by one; else 1 is written, so plain maps stay readable
MAP_FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
SIDES = SIDE_NAMES
LOW_CONFIDENCE = 0.8  # a pair below this confidence is flagged for a person (review, map file comments)

IgnoreKind = Literal["self", "recursive", "class"]
IGNORE_KINDS: tuple[IgnoreKind, ...] = ("self", "recursive", "class")
Conversion = Literal["auto", "copy", "transpose"]
PARAM_CONVERSIONS: tuple[Conversion, ...] = ("auto", "copy", "transpose")


@dataclass(frozen=True)
class LayerPair:
    """One proposed or declared correspondence between a paddle layer and a torch module.

    ``opaque`` pairs are compared at their tops only (their insides are not hooked) and
    their weights are copied by a special init or an inferred conversion.
    ``compare_output=False`` marks a weight-only pair whose outputs are not expected to
    agree (e.g. a paddle block holding raw parameters vs the torch ``Linear`` inside it).

    A *fused* pair joins one layer to several on the other side: ``torch_parts`` (or
    ``paddle_parts``) lists the split layers in the order their outputs concatenate along
    ``axis`` to the fused layer's output (paddle ``qkv_proj`` against torch
    ``q_proj``/``k_proj``/``v_proj``). The single path field of the split side then holds
    the first part, so code indexing pairs by path finds it; weights are copied by the
    split/concatenation the shapes imply, in the parts' order. ``groups > 1`` says the parts
    are interleaved along ``axis`` in that many runs instead of following one another (a
    grouped-query ``qkv_proj`` laid out ``[q_0, k_0, v_0, q_1, k_1, v_1, ...]`` per key-value
    head; see :func:`padiff.compare.fused.part_indices`).
    """

    paddle_path: str
    torch_path: str
    paddle_class: str = ""
    torch_class: str = ""
    paddle_shapes: tuple[tuple[int, ...], ...] = ()
    torch_shapes: tuple[tuple[int, ...], ...] = ()
    confidence: float = 1.0
    evidence: tuple[str, ...] = ()
    opaque: bool = False
    compare_output: bool = True
    paddle_parts: tuple[str, ...] = ()
    torch_parts: tuple[str, ...] = ()
    axis: int = -1
    groups: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.groups, bool) or not isinstance(self.groups, int) or self.groups < 1:
            raise MappingError(f"pair {self.paddle_path!r} <-> {self.torch_path!r}: groups must be a whole number "
                               f">= 1 (how many interleaved runs the fused parts form), got {self.groups!r}.")
        if self.paddle_parts and self.torch_parts:
            raise MappingError(f"pair {list(self.paddle_parts)} <-> {list(self.torch_parts)}: several layers on both "
                               "sides; a fused pair joins one layer to several. Split it into pairs.")
        for side in SIDES:
            parts = self.parts(side)
            if not parts:
                continue
            if len(parts) < 2 or len(set(parts)) != len(parts):
                raise MappingError(f"{side} parts {list(parts)}: a fused pair needs two or more distinct layers; "
                                   "for one layer give its path as a string.")
            object.__setattr__(self, f"{side}_path", parts[0])

    def parts(self, side: SideName) -> tuple[str, ...]:
        """The split layers on ``side`` (``()`` unless that side of a fused pair is split)."""
        return self.paddle_parts if side == "paddle" else self.torch_parts

    @property
    def paddle_paths(self) -> tuple[str, ...]:
        """Every paddle layer of the pair (the parts of a split paddle side, else the one path)."""
        return self.paddle_parts or (self.paddle_path,)

    @property
    def torch_paths(self) -> tuple[str, ...]:
        """Every torch module of the pair (the parts of a split torch side, else the one path)."""
        return self.torch_parts or (self.torch_path,)

    @property
    def split_side(self) -> SideName | Literal[""]:
        """``"paddle"`` or ``"torch"`` for a fused pair (the side with several layers), else ``""``."""
        return "paddle" if self.paddle_parts else "torch" if self.torch_parts else ""

    def paths(self, side: SideName) -> tuple[str, ...]:
        """``paddle_paths`` or ``torch_paths``."""
        return self.paddle_paths if side == "paddle" else self.torch_paths

    def label(self, side: SideName) -> str:
        """The side's path(s) for messages: ``q_proj+k_proj+v_proj`` for a split side."""
        return "+".join(show(p) for p in self.paths(side))

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict (tuples become lists); a split side's path is a list of paths."""
        d = asdict(self)
        d["paddle_shapes"] = [list(s) for s in self.paddle_shapes]
        d["torch_shapes"] = [list(s) for s in self.torch_shapes]
        d["evidence"] = list(self.evidence)
        for side in SIDES:
            parts = d.pop(f"{side}_parts")
            if parts:
                d[f"{side}_path"] = list(parts)
        if not self.split_side:
            d.pop("axis")
        if self.groups == 1:
            d.pop("groups")
        return d

    @classmethod
    def from_dict(cls, d: Any, label: str = "pair", *, opaque: bool | None = None) -> LayerPair:
        """Inverse of :meth:`to_dict`, checking every field (``label`` names the entry in errors).

        ``opaque=True`` reads an entry of the ``map`` section, where every pair is opaque and
        the key is not written.
        """
        valid = tuple(f for f in PAIR_FIELDS if not (opaque and f == "opaque"))
        e = F.entry_fields(d, label, valid, ("paddle_path", "torch_path"))
        p_parts = F.parts(e["paddle_path"], label, "paddle_path")
        t_parts = F.parts(e["torch_path"], label, "torch_path")
        if p_parts and t_parts:
            raise MapFileError(f"{label}: paddle_path and torch_path are both lists; a fused pair joins one layer to "
                               "several, so one of them must be a single path.")
        return cls(
            paddle_path=p_parts[0] if p_parts else F.string(e["paddle_path"], label, "paddle_path"),
            torch_path=t_parts[0] if t_parts else F.string(e["torch_path"], label, "torch_path"),
            paddle_parts=p_parts,
            torch_parts=t_parts,
            axis=F.axis(e.get("axis"), label),
            groups=F.groups(e.get("groups"), label),
            paddle_class=F.string(e.get("paddle_class"), label, "paddle_class"),
            torch_class=F.string(e.get("torch_class"), label, "torch_class"),
            paddle_shapes=F.shapes(e.get("paddle_shapes"), label, "paddle_shapes"),
            torch_shapes=F.shapes(e.get("torch_shapes"), label, "torch_shapes"),
            confidence=F.confidence(e.get("confidence"), label),
            evidence=F.evidence(e.get("evidence"), label),
            opaque=True if opaque else F.flag(e.get("opaque"), label, "opaque", False),
            compare_output=F.flag(e.get("compare_output"), label, "compare_output", True),
        )


PAIR_FIELDS = tuple(f for f in LayerPair.__dataclass_fields__ if not f.endswith("_parts"))


@dataclass(frozen=True)
class ParamPair:
    """One paddle parameter against one torch parameter, by their full paths.

    For raw parameters that stand for several layers (X2Paddle writes every Linear of a
    model as ``create_parameter`` on the root and calls ``paddle.matmul``): paddle ``w0``
    against torch ``fc1.weight``. The value is copied, and the gradient and the value after
    the optimizer step are compared, per parameter. ``conversion`` is ``"copy"``,
    ``"transpose"`` or ``"auto"`` (inferred from the shapes and the torch layer's class).
    """

    paddle_param: str
    torch_param: str
    conversion: Conversion = "auto"
    confidence: float = 1.0
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict."""
        d = asdict(self)
        d["evidence"] = list(self.evidence)
        return d

    @classmethod
    def from_dict(cls, d: Any, label: str = "parameter pair") -> ParamPair:
        """Inverse of :meth:`to_dict`; unknown keys and conversions are errors naming the valid ones."""
        e = F.entry_fields(d, label, tuple(cls.__dataclass_fields__), ("paddle_param", "torch_param"))
        for key in ("paddle_param", "torch_param"):
            if not isinstance(e.get(key), str) or not e[key]:
                raise MapFileError(f"{label}: a parameter pair needs {key} as a parameter path such as 'fc1.weight', "
                                   f"got {e.get(key)!r}")
        conv = e.get("conversion", "auto")
        if conv not in PARAM_CONVERSIONS:
            raise MapFileError(f"{label}: parameter pair {e['paddle_param']!r}: conversion must be one of "
                               f"{list(PARAM_CONVERSIONS)}, got {conv!r}")
        return cls(e["paddle_param"], e["torch_param"], conv, F.confidence(e.get("confidence"), label),
                   F.evidence(e.get("evidence"), label))

    def param(self, side: SideName) -> str:
        """The full parameter path on ``side``."""
        return self.paddle_param if side == "paddle" else self.torch_param

    def owner(self, side: SideName) -> tuple[str, str]:
        """``(layer path, tensor name)`` of the parameter on ``side``."""
        path, _, name = self.param(side).rpartition(".")
        return path, name


@dataclass(frozen=True)
class Unpaired:
    """A layer the proposal could not pair, with the reason a person can check."""

    side: SideName
    path: str
    cls: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, label: str = "unpaired") -> Unpaired:
        """Inverse of :meth:`to_dict`."""
        e = F.entry_fields(d, label, ("side", "path", "cls", "reason"), ("side", "path"))
        return cls(F.side(e["side"], label), F.string(e["path"], label, "path"), F.string(e.get("cls"), label, "cls"),
                   F.string(e.get("reason"), label, "reason"))


@dataclass(frozen=True)
class Ignore:
    """A path-based ignore entry: ``kind`` is ``"self"``, ``"recursive"`` or ``"class"``.

    For ``"class"`` entries ``path`` is the root under which instances are skipped and
    ``cls`` the class name.
    """

    side: SideName
    kind: IgnoreKind
    path: str
    cls: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, label: str = "ignore") -> Ignore:
        """Inverse of :meth:`to_dict`; a ``class`` ignore needs ``cls``."""
        e = F.entry_fields(d, label, ("side", "kind", "path", "cls"), ("side", "kind", "path"))
        kind = e["kind"]
        if kind not in IGNORE_KINDS:
            raise MapFileError(f"{label}: kind must be one of {list(IGNORE_KINDS)}, got {kind!r}.")
        name = F.string(e.get("cls"), label, "cls")
        if kind == "class" and not name:
            raise MapFileError(f"{label}: a 'class' ignore needs cls (the class name to skip under path).")
        return cls(F.side(e["side"], label), kind, F.string(e["path"], label, "path"), name)


@dataclass(frozen=True)
class ResolvedMap:
    """A ``LayerMap`` applied to two live models: only paths, ready for the engine."""

    pairs: tuple[LayerPair, ...] = ()
    ignored: Mapping[str, frozenset[str]] = field(default_factory=dict)
    ignored_recursive: Mapping[str, frozenset[str]] = field(default_factory=dict)
    params: tuple[ParamPair, ...] = ()

    def param_layers(self, side: SideName) -> frozenset[str]:
        """Layers whose own tensors are paired parameter by parameter (not compared as layers)."""
        return frozenset(pp.owner(side)[0] for pp in self.params)

    def skipped(self, side: SideName, path: str) -> bool:
        """True when ``path`` itself is not to be compared on ``side``."""
        return path in self.ignored.get(side, frozenset()) or self.hidden(side, path)

    def hidden(self, side: SideName, path: str) -> bool:
        """True when ``path`` is inside (or is) a recursively ignored layer on ``side``."""
        return any(is_within(path, top) for top in self.ignored_recursive.get(side, frozenset()))

    def opaque_paths(self, side: SideName) -> frozenset[str]:
        """Tops of the opaque pairs on one side (their insides are not compared)."""
        return frozenset(path for p in self.pairs if p.opaque for path in p.paths(side))

    def pair_of(self, side: SideName) -> dict[str, LayerPair]:
        """Index the pairs by the path(s) on ``side`` (every part of a fused pair's split side)."""
        return {path: p for p in self.pairs for path in p.paths(side)}


@dataclass(frozen=True)
class Duplicate:
    """A layer named by two pairs: ``label``/``pair`` the later entry, ``first``/``first_pair`` the earlier."""

    side: SideName
    path: str
    label: str
    first: str
    pair: LayerPair
    first_pair: LayerPair


def first_duplicate(labelled: Iterable[tuple[str, LayerPair]]) -> Duplicate | None:
    """The first layer that two of the ``(label, pair)`` entries both pair, or ``None``.

    The one duplicate-pair check: a map file, a ``LayerMap`` being saved and a map resolved
    against the models all ask it, and each words the error for its caller.
    """
    seen: dict[tuple[SideName, str], tuple[str, LayerPair]] = {}
    for label, pair in labelled:
        for side in SIDES:
            for path in pair.paths(side):
                first = seen.get((side, path))
                if first is not None:
                    return Duplicate(side, path, label, first[0], pair, first[1])
                seen[(side, path)] = (label, pair)
    return None


ObjectIgnore = tuple[IgnoreKind, Any, "type | None"]


class MapData:
    """What a layer map holds, without what needs the live models or files.

    - ``map``: ``{paddle_layer: torch_module}`` opaque pairs given as objects.
    - ``pairs``: full correspondences (``LayerPair``), ``params``: parameter-level pairs.
    - ``ignores``: path-based :class:`Ignore` entries; ``object_ignores``: ignores given
      as layer objects (``ignore(obj)``), turned into paths against the models.
    - ``unpaired``, ``route``, ``notes``, ``baseline``: what a proposal could not pair, how
      it was made, and what plain default pairing would do (for the review).
    """

    def __init__(
        self,
        pairs: Iterable[LayerPair] = (),
        *,
        route: str = "manual",
        notes: Iterable[str] = (),
        unpaired: Iterable[Unpaired] = (),
    ) -> None:
        self.map: dict[Any, Any] = {}
        self.pairs: list[LayerPair] = list(pairs)
        self.params: list[ParamPair] = []
        self.unpaired: list[Unpaired] = list(unpaired)
        self.route: str = route
        self.notes: list[str] = list(notes)
        self.ignores: list[Ignore] = []
        self.object_ignores: list[ObjectIgnore] = []
        self.baseline: list[LayerPair] = []

    def ignore(self, layer: Any) -> None:
        """Skip this layer itself in comparisons (layers inside it are still compared); a list is accepted."""
        for one in _layers(layer, "ignore"):
            self.object_ignores.append(("self", one, None))

    def ignore_recursively(self, layer: Any) -> None:
        """Skip this layer and everything inside it; a list is accepted."""
        for one in _layers(layer, "ignore_recursively"):
            self.object_ignores.append(("recursive", one, None))

    ignore_recursivly = ignore_recursively  # spelling of the original API, kept for ports

    def ignore_class(self, layer: Any, cls: type | tuple[type, ...]) -> None:
        """Skip every instance of ``cls`` (a class or a tuple of classes) under ``layer``, itself included."""
        classes = cls if isinstance(cls, tuple) else (cls,)
        if not classes or not all(isinstance(c, type) for c in classes):
            raise MappingError(f"ignore_class needs a class (or a tuple of classes) as second argument, got {cls!r}.")
        for c in classes:
            self.object_ignores.append(("class", _one_layer(layer, "ignore_class"), c))

    @property
    def _object_ignores(self) -> list[ObjectIgnore]:
        """The name older code used for :attr:`object_ignores`."""
        return self.object_ignores

    def __len__(self) -> int:
        return len(self.pairs) + len(self.map) + len(self.params)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(route={self.route!r}, pairs={len(self.pairs)}, map={len(self.map)}, "
                f"ignores={len(self.ignores) + len(self.object_ignores)}, unpaired={len(self.unpaired)})")


def ignore_method(kind: str) -> str:
    """The ``LayerMap`` method that makes an ignore of ``kind`` (for messages)."""
    return {"self": "ignore", "recursive": "ignore_recursively", "class": "ignore_class"}.get(kind, kind)


def _one_layer(layer: Any, method: str) -> Any:
    if isinstance(layer, str | bytes | int | float) or layer is None:
        raise MappingError(f"LayerMap.{method} needs a layer object (e.g. model.encoder), got {layer!r}.")
    return layer


def _layers(layer: Any, method: str) -> list[Any]:
    if isinstance(layer, list | tuple):
        return [_one_layer(one, method) for one in layer]
    return [_one_layer(layer, method)]
