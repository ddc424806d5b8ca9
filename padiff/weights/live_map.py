"""A layer map against the two live models: objects to paths, every entry checked.

:func:`resolve` turns a map into the path-only :class:`~padiff.maps.types.ResolvedMap` the
engine consumes; :func:`object_pairs` / :func:`path_ignores` / :func:`described` prepare a
map for writing; :func:`validate` checks a map file's pairs against the models, including
that each pair's weights can be copied (the weight planner's job, hence the runtime).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

from padiff.adapters import PADDLE, TORCH, StateEntry, pair_state, subtree_state
from padiff.errors import MapFileError, MappingError, WeightAssignError
from padiff.maps.types import SIDES, Ignore, LayerPair, MapData, ParamPair, ResolvedMap, first_duplicate, ignore_method
from padiff.names import SideName, id_index, is_within, other_side, show
from padiff.weights.pair_plan import plan_fused, plan_pair

ADAPTERS = {"paddle": PADDLE, "torch": TORCH}


def _named(layer: Any, module: Any) -> dict[SideName, list[tuple[str, Any]]]:
    return {"paddle": PADDLE.named_layers(layer), "torch": TORCH.named_layers(module)}


def _shapes(entries: list[StateEntry]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(x) for x in e.tensor.shape) for e in entries)


def _path_pair(p_path: str, t_path: str, classes: dict[SideName, dict[str, str]]) -> LayerPair:
    """A ``{paddle path: torch path}`` entry of a plain dict, checked against the live trees."""
    sides: tuple[tuple[SideName, str], ...] = (("paddle", p_path), ("torch", t_path))
    for side, path in sides:
        if path not in classes[side]:
            near = difflib.get_close_matches(path, list(classes[side]), n=3)
            hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
            raise MappingError(f"layer_map entry {p_path!r}: {t_path!r}: the {side} model has no layer at "
                               f"{path!r}.{hint} Paths are dotted names as in named_sublayers()/named_modules(); "
                               "'' is the model itself.")
    return LayerPair(p_path, t_path, classes["paddle"][p_path], classes["torch"][t_path], opaque=True,
                     evidence=("given in LayerMap.map",))


def resolve(md: MapData, layer: Any, module: Any) -> ResolvedMap:
    """Turn objects into paths against the live models and check every entry fits.

    Raises :class:`MappingError` naming the entry when a layer is not inside the model it
    should be in, a path does not exist, or a layer is paired twice.
    """
    trees = _named(layer, module)
    index = {side: id_index(named) for side, named in trees.items()}
    classes = {side: {path: type(obj).__name__ for path, obj in named} for side, named in trees.items()}
    pairs: list[LayerPair] = []
    for key, value in md.map.items():
        if isinstance(key, str) and isinstance(value, str):  # {"encoder.fc1": "encoder.linear1"}: paths
            pairs.append(_path_pair(key, value, classes))
            continue
        # either orientation is accepted: the frameworks tell the two sides apart
        p_obj, t_obj = (value, key) if id(key) in index["torch"] and id(value) in index["paddle"] else (key, value)
        if id(p_obj) not in index["paddle"]:
            raise MappingError(f"layer_map key {type(p_obj).__name__} is not a sublayer of the paddle model; "
                               "use layers reached from the model you pass (e.g. layer.encoder).")
        if id(t_obj) not in index["torch"]:
            raise MappingError(f"layer_map value {type(t_obj).__name__} (for paddle "
                               f"{show(index['paddle'][id(p_obj)])}) is not a submodule of the torch model.")
        pp, tp = index["paddle"][id(p_obj)], index["torch"][id(t_obj)]
        pairs.append(LayerPair(pp, tp, classes["paddle"][pp], classes["torch"][tp], opaque=True,
                               evidence=("given in LayerMap.map",)))
    what_of: dict[SideName, str] = {"paddle": "sublayer", "torch": "submodule"}
    for pair in md.pairs:
        for side, what in what_of.items():
            for path in pair.paths(side):
                if path not in classes[side]:
                    raise MappingError(f"pair {pair.label('paddle')!r} <-> {pair.label('torch')!r}: {side} model "
                                       f"has no {what} {path!r}.")
        pairs.append(pair)
    dup = first_duplicate(("", pair) for pair in pairs)
    if dup is not None:
        other = other_side(dup.side)
        raise MappingError(f"{dup.side} layer {show(dup.path)!r} is paired twice: with "
                           f"{dup.first_pair.label(other)!r} and with {dup.pair.label(other)!r}. Keep one pair.")
    params = _resolve_params(md, layer, module)
    ignored: dict[SideName, set[str]] = {"paddle": set(), "torch": set()}
    recursive: dict[SideName, set[str]] = {"paddle": set(), "torch": set()}
    for entry in path_ignores(md, layer, module, trees=trees):
        _add_ignore(entry, trees, ignored, recursive)
    return ResolvedMap(pairs=tuple(pairs), ignored={s: frozenset(v) for s, v in ignored.items()},
                       ignored_recursive={s: frozenset(v) for s, v in recursive.items()}, params=params)


def _resolve_params(md: MapData, layer: Any, module: Any) -> tuple[ParamPair, ...]:
    """Check every parameter pair names a tensor of each model, once, and none of a paired layer."""
    if not md.params:
        return ()
    owned: dict[SideName, dict[str, list[StateEntry]]] = {"paddle": PADDLE.owned_state(layer),
                                                         "torch": TORCH.owned_state(module)}
    in_pairs = {(side, path) for pr in md.pairs for side in SIDES for path in pr.paths(side)}
    seen: set[tuple[str, str]] = set()
    for pp in md.params:
        for side in SIDES:
            path, name = pp.owner(side)
            full = pp.param(side)
            if not any(e.name == name for e in owned[side].get(path, [])):
                raise MappingError(f"parameter pair {pp.paddle_param!r} <-> {pp.torch_param!r}: the {side} model "
                                   f"has no parameter {full!r} (use the names named_parameters() prints).")
            if (side, path) in in_pairs:
                raise MappingError(f"parameter pair {pp.paddle_param!r} <-> {pp.torch_param!r}: {side} layer "
                                   f"{show(path)!r} is also in a layer pair; pair it one way only.")
            if (side, full) in seen:
                raise MappingError(f"{side} parameter {full!r} is paired twice; keep one parameter pair.")
            seen.add((side, full))
    return tuple(md.params)


def _add_ignore(entry: Ignore, trees: Mapping[SideName, list[tuple[str, Any]]],
                ignored: dict[SideName, set[str]], recursive: dict[SideName, set[str]]) -> None:
    if entry.side not in SIDES:
        raise MappingError(f"ignore entry {entry}: side must be 'paddle' or 'torch'.")
    if entry.path not in {p for p, _ in trees[entry.side]}:
        raise MappingError(f"ignore entry {entry.kind} {entry.path!r}: the {entry.side} model has no such layer.")
    if entry.kind == "self":
        ignored[entry.side].add(entry.path)
    elif entry.kind == "recursive":
        recursive[entry.side].add(entry.path)
    elif entry.kind == "class":
        for path, obj in trees[entry.side]:
            if is_within(path, entry.path) and any(c.__name__ == entry.cls for c in type(obj).__mro__):
                ignored[entry.side].add(path)
    else:
        raise MappingError(f"ignore entry kind must be self, recursive or class, got {entry.kind!r}.")


def path_ignores(md: MapData, layer: Any, module: Any, *,
                 trees: Mapping[SideName, list[tuple[str, Any]]] | None = None) -> list[Ignore]:
    """All ignores as path-based entries (object ones turned into paths), for saving and resolving."""
    trees = trees or _named(layer, module)
    index = {side: id_index(named) for side, named in trees.items()}
    out = list(md.ignores)
    for kind, obj, cls in md.object_ignores:
        side: SideName = "paddle" if id(obj) in index["paddle"] else "torch"
        if id(obj) not in index[side]:
            raise MappingError(f"LayerMap.{ignore_method(kind)}: {type(obj).__name__} is in neither model; "
                               "ignore layers reached from the models you pass.")
        out.append(Ignore(side, kind, index[side][id(obj)], cls.__name__ if cls else ""))
    return out


def object_pairs(md: MapData, layer: Any, module: Any) -> list[LayerPair]:
    """``md.map``'s ``{paddle_layer: torch_module}`` entries as opaque pairs with paths, classes and shapes."""
    trees = _named(layer, module)
    index = {side: id_index(named) for side, named in trees.items()}
    p_state, t_state = PADDLE.owned_state(layer), TORCH.owned_state(module)
    out = []
    for k, (p_obj, t_obj) in enumerate(md.map.items()):
        what = f"LayerMap.map entry #{k} ({type(p_obj).__name__} -> {type(t_obj).__name__})"
        if id(p_obj) not in index["paddle"]:
            reversed_ = id(p_obj) in index["torch"] and id(t_obj) in index["paddle"]
            raise MappingError(f"{what}: " + ("keys must be paddle sublayers and values torch submodules (paddle "
                                              "first)." if reversed_ else "the key is not a sublayer of the paddle "
                                              "model."))
        if id(t_obj) not in index["torch"]:
            raise MappingError(f"{what}: the value is not a submodule of the torch model.")
        pp, tp = index["paddle"][id(p_obj)], index["torch"][id(t_obj)]
        out.append(LayerPair(pp, tp, type(p_obj).__name__, type(t_obj).__name__,
                             _shapes(subtree_state(p_state, pp)), _shapes(subtree_state(t_state, tp)),
                             evidence=("given in LayerMap.map",), opaque=True))
    return out


def described(pairs: list[LayerPair], layer: Any, module: Any) -> list[LayerPair]:
    """Fill empty classes and shapes from the live models (best effort: unknown paths are left as they are)."""
    objs = {side: dict(named) for side, named in _named(layer, module).items()}
    owned: dict[SideName, dict[str, list[StateEntry]]] = {"paddle": PADDLE.owned_state(layer),
                                                         "torch": TORCH.owned_state(module)}
    out = []
    for p in pairs:
        fill: dict[str, Any] = {}
        for side in SIDES:
            path = p.paddle_path if side == "paddle" else p.torch_path
            if path not in objs[side]:
                continue
            if not getattr(p, f"{side}_class"):
                fill[f"{side}_class"] = type(objs[side][path]).__name__
            if not getattr(p, f"{side}_shapes") and all(x in objs[side] for x in p.paths(side)):
                fill[f"{side}_shapes"] = _shapes(pair_state(owned[side], p.paths(side), p.opaque))
        out.append(dataclasses.replace(p, **fill) if fill else p)
    return out


def validate(labelled: list[tuple[str, LayerPair]], ignores: list[Ignore], ignore_labels: list[str], layer: Any,
             module: Any, notes: list[str]) -> tuple[list[tuple[str, LayerPair]], list[str]]:
    """Check a map file's pairs against the models; refresh descriptive classes/shapes (with a note).

    Every path must exist and each pair's weights must be copyable one to the other.
    Raises :class:`MapFileError` naming the entry (``labelled``'s labels) otherwise.
    """
    if not PADDLE.is_model(layer) or not TORCH.is_model(module):
        raise MappingError("to validate a map pass the paddle layer first and the torch module second.")
    objs = {side: dict(named) for side, named in _named(layer, module).items()}
    owned: dict[SideName, dict[str, list[StateEntry]]] = {"paddle": PADDLE.owned_state(layer),
                                                         "torch": TORCH.owned_state(module)}
    notes = list(notes)
    out = []
    for label, pair in labelled:
        for side, path in [(sd, path) for sd in SIDES for path in pair.paths(sd)]:
            if path not in objs[side]:
                raise MapFileError(f"{label}: the {side} model has no layer {path!r}.{_close(path, objs[side])}")
        p_state, t_state = _checked_state(label, pair, objs, owned)
        live: dict[str, Any] = {
            "paddle_class": type(objs["paddle"][pair.paddle_path]).__name__,
            "torch_class": type(objs["torch"][pair.torch_path]).__name__,
            "paddle_shapes": _shapes(p_state), "torch_shapes": _shapes(t_state),
        }
        changed = {k: v for k, v in live.items() if getattr(pair, k) != v}
        stale = [k for k in changed if getattr(pair, k)]
        if stale:
            notes.append(f"{label}: {', '.join(stale)} updated from the live models "
                         f"(file said {', '.join(repr(getattr(pair, k)) for k in stale)}).")
        out.append((label, dataclasses.replace(pair, **changed) if changed else pair))
    for label, ig in zip(ignore_labels, ignores):
        if ig.path not in objs[ig.side]:
            raise MapFileError(f"{label}: the {ig.side} model has no layer {ig.path!r}."
                               f"{_close(ig.path, objs[ig.side])}")
    return out, notes


def _checked_state(label: str, pair: LayerPair, objs: Mapping[SideName, Mapping[str, Any]],
                   owned: Mapping[SideName, Mapping[str, list[StateEntry]]],
                   ) -> tuple[list[StateEntry], list[StateEntry]]:
    """The tensors of each side of ``pair``, after checking the weight copy can be planned."""
    if pair.split_side:
        p_state = pair_state(owned["paddle"], pair.paddle_paths, False)
        t_state = pair_state(owned["torch"], pair.torch_paths, False)
        try:
            plan_fused(pair, objs["paddle"], p_state, objs["torch"], t_state)
        except WeightAssignError as exc:
            raise MapFileError(f"{label}: shapes cannot be split or concatenated: {exc}") from None
        return p_state, t_state
    if pair.opaque:
        return subtree_state(owned["paddle"], pair.paddle_path), subtree_state(owned["torch"], pair.torch_path)
    p_state = owned["paddle"].get(pair.paddle_path, [])
    t_state = owned["torch"].get(pair.torch_path, [])
    try:
        plan_pair(pair.paddle_path, objs["paddle"][pair.paddle_path], p_state, pair.torch_path,
                  objs["torch"][pair.torch_path], t_state, settle="shape")
    except WeightAssignError as exc:
        raise MapFileError(f"{label}: shapes cannot be paired: {exc}") from None
    return p_state, t_state


def _close(path: str, known: Mapping[str, Any]) -> str:
    near = difflib.get_close_matches(path, [p for p in known if p], n=3)
    if near:
        return f" Did you mean {', '.join(repr(n) for n in near)}?"
    return " Check the path against named_sublayers() / named_modules()."
