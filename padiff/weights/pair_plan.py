"""Weight pairing and copying: torch → paddle, layouts, and the plan the engine reuses.

A :class:`PairPlan` says how the tensors one torch module owns become the tensors the
paired paddle layer owns: a list of :class:`Link` (each paddle tensor computed from named
torch arrays: copy, Linear transpose, inferred transpose/reshape/split/concat, or a
built-in special init), or a user special init working on the layer objects. The same
plan converts weights (``assign_weight``), gradients and post-step values, so grad and
weight comparisons happen in paddle's layout. Shape inference lives in
:mod:`padiff.weights.layout_infer`, built-in special inits in
:mod:`padiff.weights.special_init`, pairing of whole models in :mod:`padiff.weights.assign`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from padiff.adapters import PADDLE, TORCH, Side, StateEntry
from padiff.errors import WeightAssignError
from padiff.names import show
from padiff.weights.identity_params import identity_extras
from padiff.weights.layout_infer import infer_links, one_to_one, raw_conversion, shapes_of
from padiff.weights.layout_types import Inferred
from padiff.weights.layouts import layout_of, orientation, owner_layouts
from padiff.weights.orient import settle_by_forward, settle_by_values
from padiff.weights.plan import ArrayDict, Link, PairPlan, Settle, set_error_fields
from padiff.weights.special_init import special_plan


def plan_pair(p_path: str, p_layer: Any, p_state: list[StateEntry],
              t_path: str, t_layer: Any, t_state: list[StateEntry], settle: Settle = "forward") -> PairPlan:
    """Work out how torch ``t_state`` maps onto paddle ``p_state``.

    A registered special init comes first (by class name), then conversions inferred
    from shapes (:mod:`padiff.weights.layout_infer`): one-to-one links by name (with
    aliases such as BatchNorm statistics) or order — copy, Linear transpose, transpose,
    reshape — and, when the counts differ, splits of packed tensors or concatenations.
    State names may be relative paths (``q_proj.weight``) when a pair covers a subtree.
    A square 2-D weight whose layout no framework convention gives is settled by numbers
    (:mod:`padiff.weights.orient`): ``settle="forward"`` runs the two layers alone (copying
    weights), ``"values"`` reads the models' equal values (comparing models in step),
    ``"shape"`` only checks that the shapes fit (validating a map). A tensor one side holds
    and the other has no counterpart for is left out with a note when its value is its
    identity (:mod:`padiff.weights.identity_params`).
    Raises :class:`WeightAssignError` with the shapes when no plan exists.
    """
    p_class, t_class = type(p_layer).__name__, type(t_layer).__name__
    special = special_plan(p_path, p_layer, p_state, t_path, t_layer, t_state)
    if special is not None:
        return special
    notes: list[str] = []
    inferred = _infer(p_layer, p_state, t_layer, t_state)
    if inferred is None:
        extras = identity_extras(p_path, p_layer, p_state, t_path, t_layer, t_state)
        if extras is not None:
            p_state = [e for e in p_state if e.name not in extras.paddle_names]
            t_state = [e for e in t_state if e.name not in extras.torch_names]
            inferred = _infer(p_layer, p_state, t_layer, t_state)
            notes = extras.notes
    if inferred is None:
        raise mismatch_error(p_path, p_class, p_state, t_path, t_class, t_state)
    links = [Link(x.paddle_name, x.torch_names, x.conversion, x.fn) for x in inferred]
    doubt = [x.paddle_name for x in inferred if x.unsure]
    if doubt and settle != "shape":
        how = settle_by_values if settle == "values" else settle_by_forward
        links = how(links, doubt, p_path, p_layer, p_state, t_path, t_layer, t_state)
    return PairPlan(p_path, t_path, p_class, t_class, links, notes=notes)


def _infer(p_layer: Any, p_state: list[StateEntry], t_layer: Any, t_state: list[StateEntry]) -> list[Inferred] | None:
    """Links inferred from shapes, class names and the layouts the frameworks' own layers fix."""
    p_names, t_names = [e.name for e in p_state], [e.name for e in t_state]
    p_tensors = shapes_of(p_state, owner_classes(PADDLE, p_layer, p_state), owner_layouts(PADDLE, p_layer, p_names))
    t_tensors = shapes_of(t_state, owner_classes(TORCH, t_layer, t_state), owner_layouts(TORCH, t_layer, t_names))
    return infer_links(p_tensors, t_tensors)


def plan_fused(pair: Any, p_layers: Mapping[str, Any], p_state: list[StateEntry],
               t_layers: Mapping[str, Any], t_state: list[StateEntry]) -> PairPlan:
    """The plan of a fused pair (one layer against several): split or concatenate, in the parts' order.

    ``p_state``/``t_state`` come from :func:`padiff.adapters.pair_state`: the split
    side's tensors are named by their layer path (``k_proj.weight``) and listed in the
    pair's part order, which the inference keeps, so the order of the pieces is the one the
    pair states (from dataflow or a person), never definition order. Raises
    :class:`WeightAssignError` with the shapes when the tensors do not fit together.
    """
    p_class, t_class = type(p_layers[pair.paddle_path]).__name__, type(t_layers[pair.torch_path]).__name__
    p_owner = _part_owners(p_layers, pair.paddle_parts, pair.paddle_path, p_state)
    t_owner = _part_owners(t_layers, pair.torch_parts, pair.torch_path, t_state)
    inferred = infer_links(shapes_of(p_state, p_owner), shapes_of(t_state, t_owner), getattr(pair, "groups", 1))
    p_label, t_label = "+".join(pair.paddle_parts) or pair.paddle_path, "+".join(pair.torch_parts) or pair.torch_path
    if inferred is None:
        groups = getattr(pair, "groups", 1)
        reason = (f"the tensors of {'+'.join(pair.paddle_parts or pair.torch_parts)} do not split or concatenate "
                  "into the fused layer's tensors (their sizes do not add up along one axis"
                  + (f", or do not cut into {groups} equal groups" if groups > 1 else "") + ")")
        err = WeightAssignError(f"cannot pair the weights of the fused pair paddle {p_label} ({p_class}) and torch "
                                f"{t_label} ({t_class}): paddle has {fmt_state(p_state)}; torch has "
                                f"{fmt_state(t_state)}: {reason}. Check that the listed parts are the layers the "
                                "fused one stands for, or drop the pair from the map.")
        set_error_fields(err, pair.paddle_path, p_class, p_state, pair.torch_path, t_class, t_state, reason)
        raise err
    links = [Link(x.paddle_name, x.torch_names, x.conversion, x.fn) for x in inferred]
    return PairPlan(pair.paddle_path, pair.torch_path, p_class, t_class, links,
                    paddle_parts=tuple(pair.paddle_parts), torch_parts=tuple(pair.torch_parts))


def plan_param(pair: Any, p_layer: Any, p_state: list[StateEntry], t_layer: Any,
               t_state: list[StateEntry], settle: Settle = "forward") -> PairPlan:
    """The plan of one parameter pair (``ParamPair``): a single link, copied or transposed.

    ``p_state``/``t_state`` are the owning layers' own tensors. ``conversion="auto"`` is
    read from the shapes (:func:`raw_conversion`); a square weight from the owners' layout
    conventions, else settled by numbers as in :func:`plan_pair` (``settle``). Raises
    :class:`WeightAssignError` when the parameter is missing or the shapes do not fit.
    """
    (p_path, p_name), (t_path, t_name) = pair.owner("paddle"), pair.owner("torch")
    p_e = next((e for e in p_state if e.name == p_name), None)
    t_e = next((e for e in t_state if e.name == t_name), None)
    p_class, t_class = type(p_layer).__name__, type(t_layer).__name__
    if p_e is None or t_e is None:
        raise WeightAssignError(f"parameter pair {pair.paddle_param!r} <-> {pair.torch_param!r}: "
                                f"{'paddle' if p_e is None else 'torch'} parameter not found")
    p_shape, t_shape = tuple(p_e.tensor.shape), tuple(t_e.tensor.shape)
    conv = pair.conversion if pair.conversion != "auto" else raw_conversion(p_shape, t_shape, t_class)
    fits = {"copy": p_shape == t_shape, "transpose": len(p_shape) == 2 and p_shape == t_shape[::-1]}
    if conv is None or not fits.get(conv, False):
        reason = (f"paddle {pair.paddle_param} {list(p_shape)} cannot take torch {pair.torch_param} {list(t_shape)}"
                  + (f" by {conv}" if conv else " by a copy or a transpose"))
        err = WeightAssignError(f"cannot pair parameters: {reason}. Fix the parameter pair in the map (or its "
                                "conversion: copy or transpose).")
        set_error_fields(err, p_path, p_class, [p_e], t_path, t_class, [t_e], reason)
        raise err
    fn = _transpose_arr if conv == "transpose" else _copy_arr
    how = "transpose (parameter pair)" if conv == "transpose" else "copy"
    links = [Link(p_name, (t_name,), how, fn)]
    if pair.conversion == "auto" and len(p_shape) == 2 and p_shape[0] == p_shape[1] and settle != "shape":
        known = orientation(layout_of(PADDLE, p_layer, p_name), layout_of(TORCH, t_layer, t_name))
        if known is not None:
            fn = _transpose_arr if known == "transpose" else _copy_arr
            links = [Link(p_name, (t_name,), "transpose (parameter pair)" if known == "transpose" else "copy", fn)]
        else:  # square, no convention: the shape cannot tell
            how_settle = settle_by_values if settle == "values" else settle_by_forward
            links = how_settle(links, [p_name], p_path, p_layer, [p_e], t_path, t_layer, [t_e])
    return PairPlan(p_path, t_path, p_class, t_class, links)


def _copy_arr(arrs: list[np.ndarray]) -> np.ndarray:
    return arrs[0]


def _transpose_arr(arrs: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(arrs[0].T)


def _part_owners(layers: Mapping[str, Any], parts: tuple[str, ...], path: str,
                 state: list[StateEntry]) -> dict[str, str]:
    """Class name of the layer holding each tensor of one side of a fused pair."""
    if not parts:
        cls = type(layers[path]).__name__
        return {e.name: cls for e in state}
    out = {}
    for e in state:
        owner = max((p for p in parts if e.name.startswith(p + ".")), key=len, default=path)
        out[e.name] = type(layers[owner]).__name__
    return out


def one_to_one_links(p_class: str, p_state: list[StateEntry], t_class: str,
                     t_state: list[StateEntry]) -> list[Link] | None:
    """Pair tensors one by one: by name (and aliases) first, then by order; None if impossible."""
    p_t = shapes_of(p_state, {e.name: p_class for e in p_state})
    t_t = shapes_of(t_state, {e.name: t_class for e in t_state})
    got = one_to_one(p_t, t_t)
    return None if got is None else [Link(x.paddle_name, x.torch_names, x.conversion, x.fn) for x in got]


def owner_classes(side: Side, top: Any, state: list[StateEntry]) -> dict[str, str]:
    """Class name of the layer holding each tensor; names are relative to ``top`` (``q_proj.weight``)."""
    classes = {path: type(obj).__name__ for path, obj in side.named_layers(top)}
    return {e.name: classes.get(e.name.rpartition(".")[0], type(top).__name__) for e in state}


def fmt_state(state: list[StateEntry]) -> str:
    """``weight[8, 4], bias[4]``: names and shapes of a layer's tensors, for messages."""
    return ", ".join(f"{e.name}{list(e.tensor.shape)}" for e in state) or "(no tensors)"


def mismatch_error(p_path: str, p_class: str, p_state: list[StateEntry],
                   t_path: str, t_class: str, t_state: list[StateEntry]) -> WeightAssignError:
    """A :class:`WeightAssignError` for a pair whose tensors do not correspond, with structured fields."""
    reason = ("no one-to-one pairing, transpose, reshape, split or concatenation of the torch tensors gives the "
              "paddle shapes unambiguously")
    hint = ("If these layers really correspond, register a converter with "
            f"padiff.add_special_init(paddle_name={p_class!r}, torch_name={t_class!r}, func=...).")
    err = WeightAssignError(f"cannot pair the weights of paddle {show(p_path)} ({p_class}) and torch "
                            f"{show(t_path)} ({t_class}): paddle has {fmt_state(p_state)}; torch has "
                            f"{fmt_state(t_state)}: {reason}. {hint}")
    set_error_fields(err, p_path, p_class, p_state, t_path, t_class, t_state, reason)
    return err


def torch_arrays(t_state: list[StateEntry], which: str = "value", view: bool = False) -> ArrayDict:
    """Host copies of a torch module's own tensors (``which`` = ``"value"`` or ``"grad"``).

    ``view``: read-only views of the torch storage instead of copies, for a caller that consumes
    them at once (the weight copy writes them into paddle tensors, which copies anyway): a model's
    worth of host copies saved.
    """
    out: ArrayDict = {}
    read = TORCH.host_view if view else TORCH.to_numpy
    for e in t_state:
        t = e.tensor if which == "value" else TORCH.grad(e.tensor)
        if t is not None:
            arr = read(t)
            if view:
                arr = arr.view()
                arr.flags.writeable = False  # a conversion must never write into the torch model
            out[e.name] = arr
    return out


def apply_plan(plan: PairPlan, p_layer: Any, p_state: list[StateEntry], t_layer: Any,
               t_state: list[StateEntry]) -> None:
    """Copy the torch module's tensors into the paired paddle layer following ``plan``."""
    if plan.layer_init is not None:
        plan.layer_init(p_layer, t_layer)
        return
    values = plan.convert(torch_arrays(t_state, view=True))
    by_name = {e.name: e for e in p_state}
    for name, arr in values.items():
        target = by_name[name].tensor
        if tuple(target.shape) != tuple(arr.shape):
            raise WeightAssignError(
                f"paddle {show(plan.paddle_path)}.{name} has shape {list(target.shape)} but the "
                f"converted torch value has {list(arr.shape)}"
            )
        PADDLE.set_value(target, arr)
