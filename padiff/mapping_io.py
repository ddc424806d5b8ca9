"""Layer-map files: ``LayerMap`` <-> versioned dict <-> YAML / JSON, validated against live models.

The file is meant to be read and edited by a person, committed next to the model code
and loaded back, so:

- every section is written, nothing is dropped (pairs, opaque ``map`` pairs, ignores,
  unpaired layers with reasons, the default-pairing baseline, route and notes);
- whatever a person edits is honoured exactly: paths are taken as written; classes and
  shapes are descriptive and, when the live models are given, refreshed from them with a
  note saying so;
- any problem is a :class:`~padiff.errors.MapFileError` naming the entry (section, index,
  both paths and, for YAML, the line) and saying what to do.

Object-based entries of a ``LayerMap`` (``lm.map = {layer.x: module.y}``, ``lm.ignore(obj)``)
can only be written with the two models at hand, which turn the objects into paths.
Review and diff rendering live in :mod:`padiff.mapping_review` (re-exported here).
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from padiff.errors import MapFileError, MappingError, PadiffError, WeightAssignError
from padiff.layer_map import (
    MAP_FORMAT_VERSION,
    READABLE_VERSIONS,
    SIDES,
    Ignore,
    LayerMap,
    LayerPair,
    ParamPair,
    Unpaired,
)
from padiff.mapping_review import diff_maps, review_map
from padiff.report.files import atomic_write

SECTIONS = ("version", "route", "notes", "pairs", "params", "map", "ignores", "unpaired", "baseline")
PAIR_FIELDS = tuple(f for f in LayerPair.__dataclass_fields__ if not f.endswith("_parts"))
IGNORE_KINDS = ("self", "recursive", "class")
YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)

YAML_HEADER = """\
# padiff layer map (format version {version}).
#
# Which paddle sublayer corresponds to which torch submodule. Paths are what
# named_sublayers() / named_modules() print; the root model is "".
#
# How to edit:
#   - pairs:    layers compared one by one. Fix a wrong pair by editing paddle_path or
#               torch_path; delete an entry to stop pairing it; add one with just the
#               two paths (classes and shapes are filled in from the models on load).
#               confidence < 0.8 means the proposal is unsure: check those first.
#               compare_output: false copies weights but does not compare outputs.
#               One layer against several (fused qkv_proj vs q/k/v_proj): give the split
#               side's path as a list, in the order their outputs concatenate (along
#               axis, default -1), e.g. torch_path: [q_proj, k_proj, v_proj].
#   - params:   parameter against parameter (raw parameters standing for several layers,
#               X2Paddle style): paddle_param w0, torch_param fc1.weight, conversion
#               auto|copy|transpose. Values are copied, grads and values compared.
#   - map:      opaque pairs: only their outputs are compared, not their insides, and
#               their weights are copied by a special init (padiff.add_special_init).
#   - ignores:  side paddle|torch, kind self (skip the layer, still look inside),
#               recursive (skip it and its insides) or class (skip every instance of
#               cls under path).
#   - unpaired and baseline are for reading only: what could not be paired and why,
#     and what plain definition-order pairing would have done.
# Load it with padiff.LayerMap.load(path, layer, module), which checks every entry
# against the models, or review it with `padiff review {name}`.
"""


# --- LayerMap -> dict ----------------------------------------------------------------------
def map_to_dict(lm: LayerMap, layer: Any = None, module: Any = None) -> dict[str, Any]:
    """A versioned, JSON/YAML-friendly dict of ``lm``; live models turn object entries into paths.

    Raises :class:`MappingError` when ``lm`` holds layer objects (``lm.map``, ``lm.ignore(obj)``)
    and the models are not given, or when such an object is in neither model.
    """
    object_ignores = list(getattr(lm, "_object_ignores", []))
    has_objects = bool(lm.map) or bool(object_ignores)
    if has_objects and (layer is None or module is None):
        raise MappingError(
            "this LayerMap holds layer objects (LayerMap.map or ignore(obj)); pass both models so they can be "
            "written as paths: lm.save(path, layer, module) / lm.to_dict(layer, module)."
        )
    pairs = list(lm.pairs)
    if layer is not None and module is not None:
        pairs = _described(pairs, layer, module)
    map_entries: list[dict[str, Any]] = []
    if lm.map:
        map_entries.extend(_object_map_entries(lm.map, layer, module))
    map_entries.extend(_opaque_entry(p) for p in pairs if p.opaque)
    plain = [_pair_entry(p) for p in pairs if not p.opaque]
    labelled = [(f"pairs[{i}] (paddle {e['paddle_path']!r} <-> torch {e['torch_path']!r})", LayerPair.from_dict(e))
                for i, e in enumerate(plain)]
    labelled += [(f"map[{i}] (paddle {e['paddle_path']!r} <-> torch {e['torch_path']!r})",
                  LayerPair.from_dict({**e, "opaque": True})) for i, e in enumerate(map_entries)]
    try:
        _check_no_duplicates(labelled)
    except MapFileError as exc:  # a map that could not be loaded back is not written
        raise MappingError(f"cannot save this LayerMap: {exc}") from None
    if object_ignores:
        _check_object_ignores(object_ignores, layer, module)
        ignores = lm.path_ignores(layer, module)
    else:
        ignores = list(lm.ignores)
    return {
        # version 2 only when a fused pair or a parameter pair needs it, so plain maps stay readable by older padiff
        "version": MAP_FORMAT_VERSION if any(p.split_side for p in pairs) or lm.params else 1,
        "route": lm.route,
        "notes": list(lm.notes),
        "pairs": plain,
        **({"params": [pp.to_dict() for pp in lm.params]} if lm.params else {}),
        "map": map_entries,
        "ignores": [i.to_dict() for i in ignores],
        "unpaired": [u.to_dict() for u in lm.unpaired],
        "baseline": [_pair_entry(p) for p in lm.baseline],
    }


def _described(pairs: list[LayerPair], layer: Any, module: Any) -> list[LayerPair]:
    """Fill empty classes and shapes from the live models (best effort: unknown paths are left as they are)."""
    import dataclasses

    from padiff.adapters import PADDLE, TORCH, pair_state

    objs = {"paddle": dict(PADDLE.named_layers(layer)), "torch": dict(TORCH.named_layers(module))}
    owned = {"paddle": PADDLE.owned_state(layer), "torch": TORCH.owned_state(module)}
    out = []
    for p in pairs:
        fill: dict[str, Any] = {}
        for side, path in (("paddle", p.paddle_path), ("torch", p.torch_path)):
            if path not in objs[side]:
                continue
            if not getattr(p, f"{side}_class"):
                fill[f"{side}_class"] = type(objs[side][path]).__name__
            if not getattr(p, f"{side}_shapes") and all(x in objs[side] for x in p.paths(side)):
                state = pair_state(owned[side], p.paths(side), p.opaque)
                fill[f"{side}_shapes"] = tuple(tuple(int(x) for x in e.tensor.shape) for e in state)
        out.append(dataclasses.replace(p, **fill) if fill else p)
    return out


def _pair_entry(p: LayerPair) -> dict[str, Any]:
    d = p.to_dict()
    if not p.opaque:
        d.pop("opaque")
    return d


def _opaque_entry(p: LayerPair) -> dict[str, Any]:
    d = p.to_dict()
    d.pop("opaque")
    return d


def _object_map_entries(objs: Mapping[Any, Any], layer: Any, module: Any) -> list[dict[str, Any]]:
    from padiff.adapters import PADDLE, TORCH

    p_paths = {id(o): p for p, o in PADDLE.named_layers(layer)}
    t_paths = {id(o): p for p, o in TORCH.named_layers(module)}
    p_state, t_state = PADDLE.owned_state(layer), TORCH.owned_state(module)
    out = []
    for k, (p_obj, t_obj) in enumerate(objs.items()):
        if id(p_obj) not in p_paths:
            reversed_ = id(p_obj) in t_paths and id(t_obj) in p_paths
            raise MappingError(
                f"LayerMap.map entry #{k} ({type(p_obj).__name__} -> {type(t_obj).__name__}): "
                + ("keys must be paddle sublayers and values torch submodules (paddle first)."
                   if reversed_ else "the key is not a sublayer of the paddle model.")
            )
        if id(t_obj) not in t_paths:
            raise MappingError(f"LayerMap.map entry #{k} ({type(p_obj).__name__} -> {type(t_obj).__name__}): "
                               "the value is not a submodule of the torch model.")
        pp, tp = p_paths[id(p_obj)], t_paths[id(t_obj)]
        pair = LayerPair(pp, tp, type(p_obj).__name__, type(t_obj).__name__,
                         _subtree_shapes(p_state, pp), _subtree_shapes(t_state, tp),
                         evidence=("given in LayerMap.map",), opaque=True)
        out.append(_opaque_entry(pair))
    return out


def _subtree_shapes(owned: Mapping[str, list[Any]], top: str) -> tuple[tuple[int, ...], ...]:
    from padiff.adapters import subtree_state

    return tuple(tuple(int(s) for s in e.tensor.shape) for e in subtree_state(owned, top))


def _check_object_ignores(entries: list[tuple[str, Any, Any]], layer: Any, module: Any) -> None:
    from padiff.adapters import PADDLE, TORCH

    known = {id(o) for _, o in PADDLE.named_layers(layer)} | {id(o) for _, o in TORCH.named_layers(module)}
    for kind, obj, _cls in entries:
        if id(obj) not in known:
            raise MappingError(f"an ignore entry ({kind}) names a {type(obj).__name__} that is in neither model; "
                               "ignore layers reached from the models you pass.")


# --- dict -> LayerMap ----------------------------------------------------------------------
class _Where:
    """Names an entry in messages: ``map.yaml line 12: pairs[3] (paddle 'a' <-> torch 'b')``."""

    def __init__(self, source: str = "", lines: Mapping[tuple[str, int], int] | None = None) -> None:
        self.source = source
        self.lines = lines or {}

    def __call__(self, section: str, index: int | None = None, entry: Any = None) -> str:
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


def map_from_dict(data: Any, layer: Any = None, module: Any = None, *, source: str = "",
                  lines: Mapping[tuple[str, int], int] | None = None) -> LayerMap:
    """Build a ``LayerMap`` from :func:`map_to_dict`'s format, validating every entry.

    Opaque ``map`` entries become ``LayerPair(opaque=True)`` in ``pairs``; ignores become
    :class:`Ignore` entries in ``ignores``. With both models given, every path must exist,
    no layer may be paired twice, and the parameters of each (non-opaque) pair must be
    copyable one to the other. ``source`` and ``lines`` (``{(section, index): line}``) only
    make messages point at the file. Raises :class:`MapFileError` for anything wrong.
    """
    where = _Where(source, lines)
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
    notes = [_text(n, where("notes", i)) for i, n in enumerate(_section(data, "notes", where))]
    pairs = [_pair(e, where("pairs", i, e), opaque=None) for i, e in enumerate(_section(data, "pairs", where))]
    params = [_param_pair(e, where("params", i, e)) for i, e in enumerate(_section(data, "params", where))]
    opaque = [_pair(e, where("map", i, e), opaque=True) for i, e in enumerate(_section(data, "map", where))]
    ignores = [_ignore(e, where("ignores", i, e)) for i, e in enumerate(_section(data, "ignores", where))]
    unpaired = [_unpaired(e, where("unpaired", i, e)) for i, e in enumerate(_section(data, "unpaired", where))]
    baseline = [_pair(e, where("baseline", i, e), opaque=None) for i, e in enumerate(_section(data, "baseline", where))]

    labelled = [(where("pairs", i, p.to_dict()), p) for i, p in enumerate(pairs)]
    labelled += [(where("map", i, p.to_dict()), p) for i, p in enumerate(opaque)]
    _check_no_duplicates(labelled, source)
    if layer is not None or module is not None:
        if layer is None or module is None:
            raise MappingError("pass both models (paddle layer and torch module) to validate a map, or neither.")
        labelled, notes = _validate_live(labelled, ignores, layer, module, where, notes)
    lm = LayerMap([p for _, p in labelled], route=route, notes=notes, unpaired=unpaired)
    lm.params = params
    if layer is not None and module is not None and params:
        try:
            lm.resolve(layer, module)
        except MappingError as exc:
            raise MapFileError(f"{where('params')}: {exc}") from None
    lm.ignores = ignores
    lm.baseline = baseline
    return lm


def _section(data: Mapping[str, Any], key: str, where: _Where) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MapFileError(f"{where(key)}: must be a list (one '- ' entry per item), got {type(value).__name__}.")
    return value


def _text(value: Any, label: str) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise MapFileError(f"{label}: must be text, got {type(value).__name__}.")
    return str(value)


def _fields(entry: Any, label: str, valid: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise MapFileError(f"{label}: must be a mapping with keys {list(valid)}, got {type(entry).__name__}.")
    unknown = [k for k in entry if k not in valid]
    if unknown:
        raise MapFileError(f"{label}: unknown field(s) {sorted(map(str, unknown))}; valid fields: {list(valid)}.")
    missing = [k for k in required if k not in entry]
    if missing:
        raise MapFileError(f"{label}: missing {missing}.")
    return dict(entry)


def _path(value: Any, label: str, key: str) -> str:
    if value is None:
        return ""  # an empty YAML value is the root, as "" is
    if not isinstance(value, str):
        what = "a layer path string (the root is \"\")" if key.endswith("path") else "a string"
        raise MapFileError(f"{label}: {key} must be {what}, got {value!r}.")
    return value


def _shapes(value: Any, label: str, key: str) -> tuple[tuple[int, ...], ...]:
    if value is None:
        return ()
    ok = isinstance(value, list | tuple) and all(
        isinstance(s, list | tuple) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in s)
        for s in value)
    if not ok:
        raise MapFileError(f"{label}: {key} must be a list of shapes like [[16, 8], [16]], got {value!r}.")
    return tuple(tuple(s) for s in value)


def _flag(value: Any, label: str, key: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MapFileError(f"{label}: {key} must be true or false, got {value!r}.")
    return value


def _pair(entry: Any, label: str, opaque: bool | None) -> LayerPair:
    valid = tuple(f for f in PAIR_FIELDS if not (opaque and f == "opaque"))
    d = _fields(entry, label, valid, ("paddle_path", "torch_path"))
    conf = d.get("confidence", 1.0)
    if conf is None:
        conf = 1.0
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not math.isfinite(conf) or not 0 <= conf <= 1:
        raise MapFileError(f"{label}: confidence must be a number from 0 to 1, got {conf!r}.")
    evidence = d.get("evidence") or ()
    if isinstance(evidence, str):
        evidence = (evidence,)
    if not isinstance(evidence, list | tuple):
        raise MapFileError(f"{label}: evidence must be a list of text lines, got {type(evidence).__name__}.")
    evidence = tuple(_text(e, label + " evidence") for e in evidence)
    p_parts, t_parts = _parts(d["paddle_path"], label, "paddle_path"), _parts(d["torch_path"], label, "torch_path")
    if p_parts and t_parts:
        raise MapFileError(f"{label}: paddle_path and torch_path are both lists; a fused pair joins one layer to "
                           "several, so one of them must be a single path.")
    axis = d.get("axis", -1)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise MapFileError(f"{label}: axis must be an integer (the output axis the parts concatenate along), "
                           f"got {axis!r}.")
    return LayerPair(
        paddle_path=p_parts[0] if p_parts else _path(d["paddle_path"], label, "paddle_path"),
        torch_path=t_parts[0] if t_parts else _path(d["torch_path"], label, "torch_path"),
        paddle_parts=p_parts,
        torch_parts=t_parts,
        axis=axis,
        paddle_class=_path(d.get("paddle_class"), label, "paddle_class"),
        torch_class=_path(d.get("torch_class"), label, "torch_class"),
        paddle_shapes=_shapes(d.get("paddle_shapes"), label, "paddle_shapes"),
        torch_shapes=_shapes(d.get("torch_shapes"), label, "torch_shapes"),
        confidence=float(conf),
        evidence=evidence,
        opaque=True if opaque else _flag(d.get("opaque"), label, "opaque", False),
        compare_output=_flag(d.get("compare_output"), label, "compare_output", True),
    )


def _parts(value: Any, label: str, key: str) -> tuple[str, ...]:
    """The layers of a split side written as a list of paths; ``()`` for a single path."""
    if not isinstance(value, list | tuple):
        return ()
    parts = tuple(_path(v, label, key) for v in value)
    if len(parts) < 2 or len(set(parts)) != len(parts):
        raise MapFileError(f"{label}: {key} as a list needs two or more distinct paths (the split layers in the "
                           f"order their outputs concatenate), got {list(value)!r}.")
    return parts


def _param_pair(entry: Any, label: str) -> ParamPair:
    d = _fields(entry, label, tuple(ParamPair.__dataclass_fields__), ("paddle_param", "torch_param"))
    try:
        return ParamPair.from_dict(d)
    except MappingError as exc:
        raise MapFileError(f"{label}: {exc}") from None


def _side(value: Any, label: str) -> str:
    if value not in SIDES:
        raise MapFileError(f"{label}: side must be 'paddle' or 'torch', got {value!r}.")
    return str(value)


def _ignore(entry: Any, label: str) -> Ignore:
    d = _fields(entry, label, ("side", "kind", "path", "cls"), ("side", "kind", "path"))
    kind = d["kind"]
    if kind not in IGNORE_KINDS:
        raise MapFileError(f"{label}: kind must be one of {list(IGNORE_KINDS)}, got {kind!r}.")
    cls = _path(d.get("cls"), label, "cls")
    if kind == "class" and not cls:
        raise MapFileError(f"{label}: a 'class' ignore needs cls (the class name to skip under path).")
    return Ignore(_side(d["side"], label), str(kind), _path(d["path"], label, "path"), cls)


def _unpaired(entry: Any, label: str) -> Unpaired:
    d = _fields(entry, label, ("side", "path", "cls", "reason"), ("side", "path"))
    return Unpaired(_side(d["side"], label), _path(d["path"], label, "path"), _path(d.get("cls"), label, "cls"),
                    _path(d.get("reason"), label, "reason"))


def _check_no_duplicates(labelled: list[tuple[str, LayerPair]], source: str = "") -> None:
    seen: dict[tuple[str, str], str] = {}
    prefix = source + " " if source else ""
    for label, pair in labelled:
        for side, path in [(sd, path) for sd in SIDES for path in pair.paths(sd)]:
            first = seen.get((side, path))
            if first is not None:
                raise MapFileError(f"{label}: the {side} layer {path or '<root>'!r} is already paired by {first}. "
                                   "A layer can be in one pair only: keep one of the two entries.")
            seen[(side, path)] = label[len(prefix):] if prefix and label.startswith(prefix) else label


def _validate_live(labelled: list[tuple[str, LayerPair]], ignores: list[Ignore], layer: Any, module: Any,
                   where: _Where, notes: list[str]) -> tuple[list[tuple[str, LayerPair]], list[str]]:
    """Check paths and weights against the models; refresh descriptive classes/shapes (noted)."""
    from padiff.adapters import PADDLE, TORCH, pair_state, subtree_state
    from padiff.runtime.weights import plan_fused, plan_pair

    if not PADDLE.is_model(layer) or not TORCH.is_model(module):
        raise MappingError("to validate a map pass the paddle layer first and the torch module second.")
    objs = {"paddle": dict(PADDLE.named_layers(layer)), "torch": dict(TORCH.named_layers(module))}
    owned = {"paddle": PADDLE.owned_state(layer), "torch": TORCH.owned_state(module)}
    notes = list(notes)
    out = []
    for label, pair in labelled:
        for side, path in [(sd, path) for sd in SIDES for path in pair.paths(sd)]:
            if path not in objs[side]:
                raise MapFileError(f"{label}: the {side} model has no layer {path!r}.{_close(path, objs[side])}")
        p_obj, t_obj = objs["paddle"][pair.paddle_path], objs["torch"][pair.torch_path]
        if pair.split_side:
            p_state = pair_state(owned["paddle"], pair.paddle_paths, False)
            t_state = pair_state(owned["torch"], pair.torch_paths, False)
            try:
                plan_fused(pair, objs["paddle"], p_state, objs["torch"], t_state)
            except WeightAssignError as exc:
                raise MapFileError(f"{label}: shapes cannot be split or concatenated: {exc}") from None
        elif pair.opaque:
            p_state = subtree_state(owned["paddle"], pair.paddle_path)
            t_state = subtree_state(owned["torch"], pair.torch_path)
        else:
            p_state = owned["paddle"].get(pair.paddle_path, [])
            t_state = owned["torch"].get(pair.torch_path, [])
            try:
                plan_pair(pair.paddle_path, p_obj, p_state, pair.torch_path, t_obj, t_state)
            except WeightAssignError as exc:
                raise MapFileError(f"{label}: shapes cannot be paired: {exc}") from None
        live = {
            "paddle_class": type(p_obj).__name__, "torch_class": type(t_obj).__name__,
            "paddle_shapes": tuple(tuple(int(s) for s in e.tensor.shape) for e in p_state),
            "torch_shapes": tuple(tuple(int(s) for s in e.tensor.shape) for e in t_state),
        }
        changed = {k: v for k, v in live.items() if getattr(pair, k) != v}
        stale = [k for k in changed if getattr(pair, k)]
        if stale:
            notes.append(f"{label}: {', '.join(stale)} updated from the live models "
                         f"(file said {', '.join(repr(getattr(pair, k)) for k in stale)}).")
        if changed:
            import dataclasses

            pair = dataclasses.replace(pair, **changed)
        out.append((label, pair))
    for i, ig in enumerate(ignores):
        if ig.path not in objs[ig.side]:
            label = where("ignores", i, ig.to_dict())
            raise MapFileError(f"{label}: the {ig.side} model has no layer {ig.path!r}."
                               f"{_close(ig.path, objs[ig.side])}")
    return out, notes


def _close(path: str, known: Mapping[str, Any]) -> str:
    near = difflib.get_close_matches(path, [p for p in known if p], n=3)
    if near:
        return f" Did you mean {', '.join(repr(n) for n in near)}?"
    return " Check the path against named_sublayers() / named_modules()."


# --- files -------------------------------------------------------------------------------
def save_map(lm: LayerMap, path: str, layer: Any = None, module: Any = None) -> None:
    """Write ``lm`` as YAML (``.yaml``/``.yml``) or JSON (``.json``).

    The file is written to a temporary name and moved into place, so an error never
    leaves a half-written file where the user's previous map was.
    """
    path = os.fspath(path)
    fmt = _format_of(path)
    data = map_to_dict(lm, layer, module)
    text = to_yaml(data, os.path.basename(path)) if fmt == "yaml" else to_json(data)
    try:
        atomic_write(path, text, make_dirs=False, what="the layer map")
    except OSError as exc:  # OutputPathError names the path and why; a map error to the caller
        raise MapFileError(str(exc) if isinstance(exc, PadiffError) else f"cannot write {path}: {exc}.") from None


def load_map(path: str, layer: Any = None, module: Any = None) -> LayerMap:
    """Read a map file written by :func:`save_map` (possibly edited); validate against models if given."""
    path = os.fspath(path)
    fmt = _format_of(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise MapFileError(f"map file {path} does not exist; create one with `padiff suggest FILE.py:FUNC --out "
                           f"{path}` or LayerMap.save().") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MapFileError(f"cannot read map file {path}: {exc}") from None
    return parse_map_text(text, fmt, layer, module, source=path)


def parse_map_text(text: str, fmt: str, layer: Any = None, module: Any = None, *, source: str = "") -> LayerMap:
    """Parse the text of a map file (``fmt`` = ``"yaml"`` or ``"json"``) into a validated ``LayerMap``."""
    label = source or "map text"
    lines: dict[tuple[str, int], int] = {}
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MapFileError(f"{label} line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg}). "
                               "Fix the syntax or re-create the file with LayerMap.save().") from None
        except RecursionError:
            raise MapFileError(f"{label}: JSON nested too deeply to be a layer map.") from None
    else:
        data, lines = _load_yaml(text, label)
    return map_from_dict(data, layer, module, source=source, lines=lines)


def _load_yaml(text: str, label: str) -> tuple[Any, dict[tuple[str, int], int]]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise MapFileError(f"{label}{at}: not valid YAML ({exc.problem or exc}). Fix the syntax (indent entries "
                           "under their section with '- ') or re-create the file with LayerMap.save().") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise MapFileError(f"{label}: not valid YAML ({type(exc).__name__}: {exc}).") from None
    _reject_duplicate_keys(node, label)
    return data, _yaml_lines(node)


def _reject_duplicate_keys(node: Any, label: str) -> None:
    """A key given twice in one mapping is an error naming both lines (PyYAML keeps the last silently)."""
    import yaml

    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        raise MapFileError(
                            f"{label} line {line}: {key.value!r} is given twice in one entry (first on line "
                            f"{seen[key.value]}); keep only the one you mean, padiff does not guess which.")
                    seen[key.value] = line
                todo.append(value)
        elif isinstance(n, yaml.SequenceNode):
            todo.extend(n.value)


def _yaml_lines(node: Any) -> dict[tuple[str, int], int]:
    """``{(section, index): line}`` (1-based) from the composed YAML node tree; -1 = the section key."""
    import yaml

    out: dict[tuple[str, int], int] = {}
    if not isinstance(node, yaml.MappingNode):
        return out
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        out[(str(key.value), -1)] = key.start_mark.line + 1
        if isinstance(value, yaml.SequenceNode):
            for i, item in enumerate(value.value):
                out[(str(key.value), i)] = item.start_mark.line + 1
    return out


def _format_of(path: str) -> str:
    lower = path.lower()
    if lower.endswith(YAML_SUFFIXES):
        return "yaml"
    if lower.endswith(JSON_SUFFIXES):
        return "json"
    raise MapFileError(f"{path}: a layer-map file must end in .yaml, .yml or .json (the extension picks the format).")


def to_json(data: Mapping[str, Any]) -> str:
    """Indented JSON with each shape list kept on one line."""
    shapes: dict[str, str] = {}

    def mark(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            out = {}
            for k, v in obj.items():
                if str(k).endswith("_shapes"):
                    token = f"@@padiff-shapes-{len(shapes)}@@"
                    shapes[token] = json.dumps(v)
                    out[k] = token
                else:
                    out[k] = mark(v)
            return out
        if isinstance(obj, list):
            return [mark(v) for v in obj]
        return obj

    text = json.dumps(mark(data), indent=2)
    for token, value in shapes.items():
        text = text.replace(json.dumps(token), value)
    return text + "\n"


# --- YAML writing --------------------------------------------------------------------------
class _Flow(list):
    """A list written on one line (shapes), so entries stay short and readable."""


def _yaml_dumper() -> type:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
    return Dumper


def to_yaml(data: Mapping[str, Any], name: str = "map.yaml") -> str:
    """Block-style YAML with a header explaining how to edit, one commented entry per pair."""
    import yaml

    dumper = _yaml_dumper()

    def dump(obj: Any) -> str:
        return yaml.dump(obj, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                         width=110)

    def flowed(entry: Mapping[str, Any]) -> dict[str, Any]:
        return {k: _Flow(_Flow(s) for s in v) if k.endswith("_shapes") else v for k, v in entry.items()}

    out = [YAML_HEADER.format(version=data["version"], name=name)]
    out.append(dump({"version": data["version"], "route": data["route"]}))
    out.append(dump({"notes": data["notes"]}) if data["notes"] else "notes: []\n")
    comments: dict[str, Callable[[int, Mapping[str, Any]], str]] = {
        "pairs": lambda i, e: f"# pairs[{i}]" + ("  LOW CONFIDENCE: check this pair"
                                                  if float(e.get("confidence", 1.0)) < 0.8 else ""),
        "map": lambda i, e: f"# map[{i}] (opaque)",
    }
    titles = {
        "pairs": "Pairs compared layer by layer",
        "params": "Parameters paired one by one (raw parameters standing for several layers)",
        "map": "Opaque pairs: compared at their tops, weights copied by a special init",
        "ignores": "Layers passed over",
        "unpaired": "Left unpaired by the proposal (for reading; add a pair above to pair one)",
        "baseline": "What plain definition-order pairing would do (for reading)",
    }
    for key in ("pairs", *(("params",) if data.get("params") else ()), "map", "ignores", "unpaired", "baseline"):
        entries = data[key]
        out.append(f"\n# --- {titles[key]} ---\n")
        if not entries:
            out.append(f"{key}: []\n")
            continue
        out.append(f"{key}:\n")
        for i, entry in enumerate(entries):
            if key in comments:
                out.append(comments[key](i, entry) + "\n")
            out.append(dump([flowed(entry) if key in ("pairs", "map", "baseline") else dict(entry)]))
    return "".join(out)


__all__ = ["diff_maps", "load_map", "map_from_dict", "map_to_dict", "parse_map_text", "review_map", "save_map",
           "to_json", "to_yaml"]
