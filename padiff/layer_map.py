"""``LayerMap`` and ``LayerPair``: the one map type every pairing producer fills.

Call-order pairing, a user's dict, a hand-built ``LayerMap``, a saved file and the
structural aligner all produce a ``LayerMap``; the runtime engine only consumes the
path-based :class:`ResolvedMap` that :meth:`LayerMap.resolve` derives from it against
the two live models. Paths are the strings ``named_sublayers()`` / ``named_modules()``
give; the root is ``""``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from padiff.errors import MappingError

log = logging.getLogger("padiff")

MAP_FORMAT_VERSION = 2  # 2: a pair side may list several layers (fused against split); else 1 is written
READABLE_VERSIONS = (1, 2)
SIDES = ("paddle", "torch")


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
    split/concatenation the shapes imply, in the parts' order.
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

    def __post_init__(self) -> None:
        if self.paddle_parts and self.torch_parts:
            raise MappingError(f"pair {list(self.paddle_parts)} <-> {list(self.torch_parts)}: several layers on both "
                               "sides; a fused pair joins one layer to several. Split it into pairs.")
        for side in SIDES:
            parts = getattr(self, f"{side}_parts")
            if not parts:
                continue
            if len(parts) < 2 or len(set(parts)) != len(parts):
                raise MappingError(f"{side} parts {list(parts)}: a fused pair needs two or more distinct layers; "
                                   "for one layer give its path as a string.")
            object.__setattr__(self, f"{side}_path", parts[0])

    @property
    def paddle_paths(self) -> tuple[str, ...]:
        """Every paddle layer of the pair (the parts of a split paddle side, else the one path)."""
        return self.paddle_parts or (self.paddle_path,)

    @property
    def torch_paths(self) -> tuple[str, ...]:
        """Every torch module of the pair (the parts of a split torch side, else the one path)."""
        return self.torch_parts or (self.torch_path,)

    @property
    def split_side(self) -> str:
        """``"paddle"`` or ``"torch"`` for a fused pair (the side with several layers), else ``""``."""
        return "paddle" if self.paddle_parts else "torch" if self.torch_parts else ""

    def paths(self, side: str) -> tuple[str, ...]:
        """``paddle_paths`` or ``torch_paths``."""
        return self.paddle_paths if side == "paddle" else self.torch_paths

    def label(self, side: str) -> str:
        """The side's path(s) for messages: ``q_proj+k_proj+v_proj`` for a split side."""
        return "+".join(p or "<root>" for p in self.paths(side))

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
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerPair:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming the valid ones."""
        valid = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - valid)
        if unknown:
            raise MappingError(f"unknown pair field(s) {unknown}; valid fields: {sorted(valid)}")
        if "paddle_path" not in d or "torch_path" not in d:
            raise MappingError("a pair needs both 'paddle_path' and 'torch_path'")
        kw = dict(d)
        for side in SIDES:
            if isinstance(kw.get(f"{side}_path"), list | tuple):
                kw[f"{side}_parts"] = tuple(str(x) for x in kw.pop(f"{side}_path"))
                kw[f"{side}_path"] = kw[f"{side}_parts"][0] if kw[f"{side}_parts"] else ""
            elif f"{side}_parts" in kw:
                kw[f"{side}_parts"] = tuple(str(x) for x in kw[f"{side}_parts"])
        for key in ("paddle_shapes", "torch_shapes"):
            if key in kw:
                kw[key] = tuple(tuple(int(x) for x in s) for s in kw[key])
        if "evidence" in kw:
            ev = kw["evidence"]
            kw["evidence"] = (ev,) if isinstance(ev, str) else tuple(str(e) for e in ev)
        if "confidence" in kw:
            kw["confidence"] = float(kw["confidence"])
        for key in ("paddle_path", "torch_path", "paddle_class", "torch_class"):
            if key in kw:
                kw[key] = "" if kw[key] is None else str(kw[key])
        return cls(**kw)


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
    conversion: str = "auto"
    confidence: float = 1.0
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict."""
        d = asdict(self)
        d["evidence"] = list(self.evidence)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParamPair:
        """Inverse of :meth:`to_dict`; unknown keys and conversions are errors naming the valid ones."""
        valid = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - valid)
        if unknown:
            raise MappingError(f"unknown parameter-pair field(s) {unknown}; valid fields: {sorted(valid)}")
        for key in ("paddle_param", "torch_param"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise MappingError(f"a parameter pair needs {key} as a parameter path such as 'fc1.weight', "
                                   f"got {d.get(key)!r}")
        conv = d.get("conversion", "auto")
        if conv not in PARAM_CONVERSIONS:
            raise MappingError(f"parameter pair {d['paddle_param']!r}: conversion must be one of "
                               f"{list(PARAM_CONVERSIONS)}, got {conv!r}")
        ev = d.get("evidence") or ()
        return cls(str(d["paddle_param"]), str(d["torch_param"]), str(conv), float(d.get("confidence", 1.0)),
                   (ev,) if isinstance(ev, str) else tuple(str(e) for e in ev))

    def owner(self, side: str) -> tuple[str, str]:
        """``(layer path, tensor name)`` of the parameter on ``side``."""
        path, _, name = (self.paddle_param if side == "paddle" else self.torch_param).rpartition(".")
        return path, name


PARAM_CONVERSIONS = ("auto", "copy", "transpose")


@dataclass(frozen=True)
class Unpaired:
    """A layer the proposal could not pair, with the reason a person can check."""

    side: str  # "paddle" or "torch"
    path: str
    cls: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict."""
        return asdict(self)


@dataclass(frozen=True)
class Ignore:
    """A path-based ignore entry: ``kind`` is ``"self"``, ``"recursive"`` or ``"class"``.

    For ``"class"`` entries ``path`` is the root under which instances are skipped and
    ``cls`` the class name.
    """

    side: str
    kind: str
    path: str
    cls: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict."""
        return asdict(self)


@dataclass(frozen=True)
class ResolvedMap:
    """A ``LayerMap`` applied to two live models: only paths, ready for the engine."""

    pairs: tuple[LayerPair, ...] = ()
    ignored: Mapping[str, frozenset[str]] = field(default_factory=dict)
    ignored_recursive: Mapping[str, frozenset[str]] = field(default_factory=dict)
    params: tuple[ParamPair, ...] = ()

    def param_layers(self, side: str) -> frozenset[str]:
        """Layers whose own tensors are paired parameter by parameter (not compared as layers)."""
        return frozenset(pp.owner(side)[0] for pp in self.params)

    def skipped(self, side: str, path: str) -> bool:
        """True when ``path`` itself is not to be compared on ``side``."""
        return path in self.ignored.get(side, frozenset()) or self.hidden(side, path)

    def hidden(self, side: str, path: str) -> bool:
        """True when ``path`` is inside (or is) a recursively ignored layer on ``side``."""
        return any(_is_within(path, top) for top in self.ignored_recursive.get(side, frozenset()))

    def opaque_paths(self, side: str) -> frozenset[str]:
        """Tops of the opaque pairs on one side (their insides are not compared)."""
        return frozenset(path for p in self.pairs if p.opaque for path in p.paths(side))

    def pair_of(self, side: str) -> dict[str, LayerPair]:
        """Index the pairs by the path(s) on ``side`` (every part of a fused pair's split side)."""
        return {path: p for p in self.pairs for path in p.paths(side)}


def _is_within(path: str, top: str) -> bool:
    return top == "" or path == top or path.startswith(top + ".")


class LayerMap:
    """Which paddle sublayer corresponds to which torch submodule.

    - ``map``: ``{paddle_layer: torch_module}`` opaque pairs: compare only their tops,
      never their insides, and initialise them with a special init.
    - ``pairs``: full correspondences (``LayerPair``), e.g. from the structural
      aligner; they replace call-order pairing for the layers they cover.
    - ``ignore`` / ``ignore_recursively`` / ``ignore_class``: layers to pass over.
    - ``unpaired``, ``route``, ``notes``: what a proposal could not pair and how it was made.
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
        self.params: list[ParamPair] = []  # parameter-level pairs (raw parameters, X2Paddle style)
        self.unpaired: list[Unpaired] = list(unpaired)
        self.route: str = route
        self.notes: list[str] = list(notes)
        self.ignores: list[Ignore] = []
        self._object_ignores: list[tuple[str, Any, Any]] = []  # (kind, layer, cls)
        # what plain default (call/definition-order) pairing would do, for review()
        self.baseline: list[LayerPair] = []

    # --- building by hand -------------------------------------------------------------
    def ignore(self, layer: Any) -> None:
        """Skip this layer itself in comparisons (layers inside it are still compared); a list is accepted."""
        for one in _layers(layer, "ignore"):
            self._object_ignores.append(("self", one, None))

    def ignore_recursively(self, layer: Any) -> None:
        """Skip this layer and everything inside it; a list is accepted."""
        for one in _layers(layer, "ignore_recursively"):
            self._object_ignores.append(("recursive", one, None))

    ignore_recursivly = ignore_recursively  # spelling of the original API, kept for ports

    def ignore_class(self, layer: Any, cls: type | tuple[type, ...]) -> None:
        """Skip every instance of ``cls`` (a class or a tuple of classes) under ``layer``, itself included."""
        classes = cls if isinstance(cls, tuple) else (cls,)
        if not classes or not all(isinstance(c, type) for c in classes):
            raise MappingError(f"ignore_class needs a class (or a tuple of classes) as second argument, got {cls!r}.")
        for c in classes:
            self._object_ignores.append(("class", _one_layer(layer, "ignore_class"), c))

    def auto(self, layer: Any, module: Any) -> LayerMap:
        """Add to ``map`` every pair of layers that has a registered special init.

        Pairs are found in call-agnostic tree order, per special-init kind; each pair found
        is logged. Returns ``self`` so calls can be chained.
        """
        from padiff.runtime.special_init import find_special_pairs

        for p_layer, t_module, p_path, t_path in find_special_pairs(layer, module):
            log.info("LayerMap.auto: %s (%s) <-> %s (%s)", p_path or "<root>", type(p_layer).__name__,
                     t_path or "<root>", type(t_module).__name__)
            self.map[p_layer] = t_module
        return self

    # --- applying to live models ------------------------------------------------------
    def resolve(self, layer: Any, module: Any) -> ResolvedMap:
        """Turn objects into paths against the live models and check every entry fits.

        Raises :class:`MappingError` naming the entry when a layer is not inside the
        model it should be in, or a path does not exist.
        """
        from padiff.adapters import PADDLE, TORCH

        p_paths = {id(obj): path for path, obj in PADDLE.named_layers(layer)}
        t_paths = {id(obj): path for path, obj in TORCH.named_layers(module)}
        p_classes = {path: type(obj).__name__ for path, obj in PADDLE.named_layers(layer)}
        t_classes = {path: type(obj).__name__ for path, obj in TORCH.named_layers(module)}
        pairs: list[LayerPair] = []
        for key, value in self.map.items():
            # either orientation is accepted: the frameworks tell the two sides apart
            p_obj, t_obj = (value, key) if id(key) in t_paths and id(value) in p_paths else (key, value)
            if id(p_obj) not in p_paths:
                raise MappingError(
                    f"layer_map key {type(p_obj).__name__} is not a sublayer of the paddle model; "
                    "use layers reached from the model you pass (e.g. layer.encoder)."
                )
            if id(t_obj) not in t_paths:
                raise MappingError(
                    f"layer_map value {type(t_obj).__name__} (for paddle {p_paths[id(p_obj)] or '<root>'}) "
                    "is not a submodule of the torch model."
                )
            pp, tp = p_paths[id(p_obj)], t_paths[id(t_obj)]
            pairs.append(LayerPair(pp, tp, p_classes[pp], t_classes[tp], opaque=True,
                                   evidence=("given in LayerMap.map",)))
        for pair in self.pairs:
            for path in pair.paddle_paths:
                if path not in p_classes:
                    raise MappingError(f"pair {pair.label('paddle')!r} <-> {pair.label('torch')!r}: paddle model "
                                       f"has no sublayer {path!r}.")
            for path in pair.torch_paths:
                if path not in t_classes:
                    raise MappingError(f"pair {pair.label('paddle')!r} <-> {pair.label('torch')!r}: torch model "
                                       f"has no submodule {path!r}.")
            pairs.append(pair)
        _check_unique(pairs)
        params = self._resolve_params(layer, module)

        ignored: dict[str, set[str]] = {"paddle": set(), "torch": set()}
        recursive: dict[str, set[str]] = {"paddle": set(), "torch": set()}
        trees = {"paddle": PADDLE.named_layers(layer), "torch": TORCH.named_layers(module)}
        for kind, obj, cls in self._object_ignores:
            if id(obj) in p_paths:
                side, path = "paddle", p_paths[id(obj)]
            elif id(obj) in t_paths:
                side, path = "torch", t_paths[id(obj)]
            else:
                raise MappingError(f"LayerMap.{_method(kind)}: {type(obj).__name__} is in neither model.")
            self._add_ignore(Ignore(side, kind, path, cls.__name__ if cls else ""), trees, ignored, recursive)
        for entry in self.ignores:
            self._add_ignore(entry, trees, ignored, recursive)
        return ResolvedMap(
            pairs=tuple(pairs),
            ignored={s: frozenset(v) for s, v in ignored.items()},
            ignored_recursive={s: frozenset(v) for s, v in recursive.items()},
            params=params,
        )

    def _resolve_params(self, layer: Any, module: Any) -> tuple[ParamPair, ...]:
        """Check every parameter pair names a tensor of each model, once, and none of a paired layer."""
        from padiff.adapters import PADDLE, TORCH

        if not self.params:
            return ()
        owned = {"paddle": PADDLE.owned_state(layer), "torch": TORCH.owned_state(module)}
        in_pairs = {(side, path) for pr in self.pairs for side in SIDES for path in pr.paths(side)}
        seen: dict[tuple[str, str], ParamPair] = {}
        for pp in self.params:
            for side in SIDES:
                path, name = pp.owner(side)
                full = pp.paddle_param if side == "paddle" else pp.torch_param
                if not any(e.name == name for e in owned[side].get(path, [])):
                    raise MappingError(f"parameter pair {pp.paddle_param!r} <-> {pp.torch_param!r}: the {side} model "
                                       f"has no parameter {full!r} (use the names named_parameters() prints).")
                if (side, path) in in_pairs:
                    raise MappingError(f"parameter pair {pp.paddle_param!r} <-> {pp.torch_param!r}: {side} layer "
                                       f"{path or '<root>'!r} is also in a layer pair; pair it one way only.")
                if (side, full) in seen:
                    raise MappingError(f"{side} parameter {full!r} is paired twice; keep one parameter pair.")
                seen[(side, full)] = pp
        return tuple(self.params)

    @staticmethod
    def _add_ignore(entry: Ignore, trees: dict[str, list[tuple[str, Any]]],
                    ignored: dict[str, set[str]], recursive: dict[str, set[str]]) -> None:
        if entry.side not in SIDES:
            raise MappingError(f"ignore entry {entry}: side must be 'paddle' or 'torch'.")
        paths = {p for p, _ in trees[entry.side]}
        if entry.path not in paths:
            raise MappingError(f"ignore entry {entry.kind} {entry.path!r}: the {entry.side} model has no such layer.")
        if entry.kind == "self":
            ignored[entry.side].add(entry.path)
        elif entry.kind == "recursive":
            recursive[entry.side].add(entry.path)
        elif entry.kind == "class":
            for path, obj in trees[entry.side]:
                if _is_within(path, entry.path) and any(c.__name__ == entry.cls for c in type(obj).__mro__):
                    ignored[entry.side].add(path)
        else:
            raise MappingError(f"ignore entry kind must be self, recursive or class, got {entry.kind!r}.")

    def path_ignores(self, layer: Any, module: Any) -> list[Ignore]:
        """All ignores as path-based entries (object ones resolved), for saving."""
        from padiff.adapters import PADDLE, TORCH

        p_paths = {id(obj): path for path, obj in PADDLE.named_layers(layer)}
        t_paths = {id(obj): path for path, obj in TORCH.named_layers(module)}
        out = list(self.ignores)
        for kind, obj, cls in self._object_ignores:
            side, paths = ("paddle", p_paths) if id(obj) in p_paths else ("torch", t_paths)
            if id(obj) not in paths:
                raise MappingError(f"LayerMap.{_method(kind)}: {type(obj).__name__} is in neither model.")
            out.append(Ignore(side, kind, paths[id(obj)], cls.__name__ if cls else ""))
        return out

    # --- files and review (implemented in padiff.mapping_io) ----------------------------
    def to_dict(self, layer: Any = None, module: Any = None) -> dict[str, Any]:
        """A versioned, JSON/YAML-friendly dict; live models resolve object entries to paths."""
        from padiff.mapping_io import map_to_dict

        return map_to_dict(self, layer, module)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], layer: Any = None, module: Any = None) -> LayerMap:
        """Inverse of :meth:`to_dict`; with live models, every entry is validated against them."""
        from padiff.mapping_io import map_from_dict

        return map_from_dict(data, layer, module)

    def save(self, path: str, layer: Any = None, module: Any = None) -> None:
        """Write the map as YAML (``.yaml``/``.yml``) or JSON (``.json``) for a person to review and edit."""
        from padiff.mapping_io import save_map

        save_map(self, path, layer, module)

    @classmethod
    def load(cls, path: str, layer: Any = None, module: Any = None) -> LayerMap:
        """Read a saved map; with live models, entries are validated against them."""
        from padiff.mapping_io import load_map

        return load_map(path, layer, module)

    def review(self) -> str:
        """A printable side-by-side mapping diff: proposal vs default pairing, doubts, unpaired."""
        from padiff.mapping_io import review_map

        return review_map(self)

    def diff(self, other: LayerMap) -> str:
        """What changed from ``self`` to ``other``: pairs added, removed and re-paired."""
        from padiff.mapping_io import diff_maps

        return diff_maps(self, other)

    # --- convenience ------------------------------------------------------------------
    @classmethod
    def coerce(cls, value: Any) -> LayerMap:
        """Accept a ``LayerMap``, a plain ``{paddle_layer: torch_module}`` dict, or ``None``."""
        if value is None:
            return cls()
        if isinstance(value, LayerMap):
            return value
        if isinstance(value, Mapping):
            lm = cls()
            lm.map = dict(value)
            return lm
        raise MappingError(
            "layer_map must be a LayerMap, a dict {paddle_layer: torch_module} or 'auto', "
            f"got {type(value).__name__}."
        )

    def __len__(self) -> int:
        return len(self.pairs) + len(self.map) + len(self.params)

    def __repr__(self) -> str:
        return (f"LayerMap(route={self.route!r}, pairs={len(self.pairs)}, map={len(self.map)}, "
                f"ignores={len(self.ignores) + len(self._object_ignores)}, unpaired={len(self.unpaired)})")


def _one_layer(layer: Any, method: str) -> Any:
    if isinstance(layer, str | bytes | int | float) or layer is None:
        raise MappingError(f"LayerMap.{method} needs a layer object (e.g. model.encoder), got {layer!r}.")
    return layer


def _layers(layer: Any, method: str) -> list[Any]:
    if isinstance(layer, list | tuple):
        return [_one_layer(one, method) for one in layer]
    return [_one_layer(layer, method)]


def _method(kind: str) -> str:
    return {"self": "ignore", "recursive": "ignore_recursively", "class": "ignore_class"}.get(kind, kind)


def _check_unique(pairs: list[LayerPair]) -> None:
    seen: dict[tuple[str, str], LayerPair] = {}
    for pair in pairs:
        for side in SIDES:
            other_side = "torch" if side == "paddle" else "paddle"
            for path in pair.paths(side):
                other = seen.get((side, path))
                if other is not None:
                    raise MappingError(
                        f"{side} layer {path or '<root>'!r} is paired twice: with "
                        f"{other.label(other_side)!r} and with {pair.label(other_side)!r}. Keep one pair."
                    )
                seen[(side, path)] = pair
