"""``assign_weight``: copy a torch model's weights into its paddle port, all or nothing.

Three steps, each usable alone (the engine calls the first two for ``auto_weights``):

1. :func:`plan_weights` (in :mod:`padiff.runtime.assign_plan`) pairs every layer that owns
   tensors: the map's pairs first (a mapped/opaque pair, or a pair with a special init,
   covers its whole subtree), then the remaining layers in definition order, passing over
   ignored layers. Each pair gets a :class:`PairPlan` (special init, or inferred conversions).
2. :func:`copy_weights` applies the plans after snapshotting every paddle tensor it may
   touch; on any failure everything is restored before the error propagates.
3. :func:`assign_weight` is the public wrapper: ``True`` on success, ``False`` plus a
   printed explanation when the models cannot be paired or copied.
"""

from __future__ import annotations

import copy
import logging
import sys
from typing import Any

import numpy as np

from padiff.adapters import PADDLE, TORCH, StateEntry, pair_state
from padiff.checks import check_models
from padiff.errors import InputError, WeightAssignError
from padiff.layer_map import LayerMap
from padiff.names import is_within, show
from padiff.runtime.assign_message import TreeMarks, build_error
from padiff.runtime.assign_plan import plan_weights
from padiff.runtime.special_init import find_special_pairs
from padiff.runtime.weights import PairPlan, torch_arrays

log = logging.getLogger("padiff")


def copy_weights(layer: Any, module: Any, plans: list[PairPlan],
                 keep: list[tuple[Any, np.ndarray]] | None = None) -> list[str]:
    """Apply ``plans`` all or nothing; returns the conversions that were inferred or special.

    Every paddle tensor a plan may write is snapshotted first (for a user special init:
    every tensor under its paddle layer); on any failure all of them are restored
    exactly, and the failure is raised as a :class:`WeightAssignError`. ``keep``, when
    given, receives that snapshot ``(tensor, value before)`` so a caller can undo the copy.
    """
    p_layers, t_layers = dict(PADDLE.named_layers(layer)), dict(TORCH.named_layers(module))
    p_owned, t_owned = PADDLE.owned_state(layer), TORCH.owned_state(module)
    snapshot = _snapshot(plans, p_layers, p_owned)
    if keep is not None:
        keep[:] = snapshot
    done: list[str] = []
    current: PairPlan | None = None
    try:
        for plan in plans:
            current = plan
            _apply(plan, p_layers, t_layers, p_owned, t_owned)
            done.extend(_describe(plan))
    except BaseException as e:  # any failure, Ctrl-C included: put every touched tensor back first
        _restore(snapshot)
        if not isinstance(e, Exception):
            raise  # KeyboardInterrupt, SystemExit: stop as asked, with the paddle model as it was
        if isinstance(e, WeightAssignError) and hasattr(e, "paddle_path"):
            raise
        pp, tp = (current.paddle_path, current.torch_path) if current else ("", "")
        reason = f"copying failed: {type(e).__name__}: {e}"
        err = build_error(layer, module, pp, tp, reason, TreeMarks(), TreeMarks(), cause=e)
        raise err from e
    return done


def _apply(plan: PairPlan, p_layers: dict[str, Any], t_layers: dict[str, Any],
           p_owned: dict[str, list[StateEntry]], t_owned: dict[str, list[StateEntry]]) -> None:
    if plan.layer_init is not None:
        with PADDLE.no_grad(), TORCH.no_grad():
            plan.layer_init(p_layers[plan.paddle_path], t_layers[plan.torch_path])
        return
    p_by_name = {e.name: e.tensor for e in _plan_state(p_owned, plan.paddle_paths)}
    t_arrays = torch_arrays(_plan_state(t_owned, plan.torch_paths))
    for link in plan.links:
        missing = [n for n in link.torch_names if n not in t_arrays]
        if missing or link.paddle_name not in p_by_name:
            what = f"torch tensor {missing[0]!r}" if missing else f"paddle tensor {link.paddle_name!r}"
            raise WeightAssignError(f"{what} of the pair {show(plan.paddle_path)} <-> "
                                    f"{show(plan.torch_path)} was not found")
    values = plan.convert(t_arrays)
    for link in plan.links:
        target, arr = p_by_name[link.paddle_name], values[link.paddle_name]
        if tuple(target.shape) != tuple(arr.shape):
            raise WeightAssignError(f"paddle {show(plan.paddle_path)}.{link.paddle_name} has shape "
                                    f"{list(target.shape)} but {link.conversion} of torch gives {list(arr.shape)}")
        PADDLE.set_value(target, arr)


def _snapshot(plans: list[PairPlan], p_layers: dict[str, Any],
              p_owned: dict[str, list[StateEntry]]) -> list[tuple[Any, np.ndarray]]:
    seen: set[int] = set()
    out: list[tuple[Any, np.ndarray]] = []

    def keep(t: Any) -> None:
        if id(t) not in seen:
            seen.add(id(t))
            out.append((t, np.array(PADDLE.to_numpy(t), copy=True)))  # never a view of t

    for plan in plans:
        if plan.layer_init is not None:
            for _, sub in PADDLE.named_layers(p_layers[plan.paddle_path]):
                for e in PADDLE.raw_state(sub):
                    keep(e.tensor)
        else:
            by_name = {e.name: e.tensor for e in _plan_state(p_owned, plan.paddle_paths)}
            for link in plan.links:
                if link.paddle_name in by_name:
                    keep(by_name[link.paddle_name])
    return out


def _plan_state(owned: dict[str, list[StateEntry]], paths: tuple[str, ...]) -> list[StateEntry]:
    """What a plan reads or writes on one side: the parts of a fused pair, else the subtree (a superset)."""
    return pair_state(owned, paths, True)


def _restore(snapshot: list[tuple[Any, np.ndarray]]) -> None:
    for tensor, arr in snapshot:
        PADDLE.set_value(tensor, arr)


def _describe(plan: PairPlan) -> list[str]:
    where = f"{show(plan.paddle_path)} <- {show(plan.torch_path)}"
    if plan.layer_init is not None:
        return [f"{where}: user special init {plan.special}"]
    out = [f"{where}: special init {plan.special}"] if plan.special else []
    out += [f"{where}: {lk.paddle_name} <- {' + '.join(lk.torch_names)}: {lk.conversion}"
            for lk in plan.links if lk.conversion.startswith("inferred")]
    return out


def with_special_pairs(lm: LayerMap, layer: Any, module: Any) -> LayerMap:
    """``lm`` plus the special-init pairs ``LayerMap.auto`` finds; pairs inside them are dropped.

    A structural proposal may pair the insides of an attention or recurrent layer piece
    by piece (or with the wrong neighbour); a registered special init knows the whole
    layer, so its pair wins. Returns a new map; ``lm`` is not changed.
    """
    # units the map already pairs (the proposal pairs them by dataflow) are not paired again by kind
    covered = {(side, path) for pr in lm.pairs for side in ("paddle", "torch") for path in pr.paths(side)}
    tops = [(side, path) for pr in lm.pairs if pr.opaque for side in ("paddle", "torch") for path in pr.paths(side)]

    def taken(side: str, path: str) -> bool:
        return (side, path) in covered or any(s == side and is_within(path, top) for s, top in tops)

    specials = [sp for sp in find_special_pairs(layer, module)
                if not taken("paddle", sp[2]) and not taken("torch", sp[3])]
    if not specials:
        return lm
    p_tops = [pp for _, _, pp, _ in specials]
    t_tops = [tp for _, _, _, tp in specials]
    out = copy.copy(lm)
    out.pairs = [pr for pr in lm.pairs if not any(is_within(pr.paddle_path, top) for top in p_tops)
                 and not any(is_within(pr.torch_path, top) for top in t_tops)]
    out.map = dict(lm.map)
    mapped = {id(k) for k in out.map} | {id(v) for v in out.map.values()}
    for p_obj, t_obj, _, _ in specials:
        if id(p_obj) not in mapped and id(t_obj) not in mapped:
            out.map[p_obj] = t_obj
    out.notes = [*lm.notes, "special-init pairs added: " + ", ".join(f"{show(p)}<->{show(t)}"
                                                                     for p, t in zip(p_tops, t_tops))]
    return out


def _layer_map(layer_map: Any, layer: Any, module: Any) -> LayerMap:
    if isinstance(layer_map, str):
        if layer_map != "auto":
            raise InputError(f"layer_map must be a LayerMap, a dict {{paddle_layer: torch_module}} or 'auto', "
                             f"got the string {layer_map!r}.")
        try:
            from padiff.graph.suggest import suggest_layer_map
        except ImportError:
            log.info("padiff.graph.suggest is not available; using LayerMap.auto (special-init pairs only).")
            return LayerMap().auto(layer, module)
        return with_special_pairs(suggest_layer_map(layer, module), layer, module)
    return LayerMap.coerce(layer_map)


def assign_weight(layer: Any, module: Any, layer_map: Any = None) -> bool:
    """Copy the torch ``module``'s weights into the paddle ``layer`` (SPEC §2).

    ``layer_map`` may be None, a :class:`LayerMap`, a dict ``{paddle_layer: torch_module}``
    or ``"auto"``. Returns True when every paired tensor was copied; False when the models
    cannot be paired or copied, after printing why (paths, classes, shapes, both trees,
    hints) — the paddle model is then exactly as before. Raises :class:`InputError` for
    misuse (models swapped, not models) and :class:`MappingError` for a map that does not
    fit the models.
    """
    check_models(layer, module, call="assign_weight")
    lm = _layer_map(layer_map, layer, module)
    resolved = lm.resolve(layer, module)
    try:
        plans = plan_weights(layer, module, resolved)
        conversions = copy_weights(layer, module, plans)
    except WeightAssignError as e:
        log.debug("assign_weight failed:\n%s", e)
        print(str(e), file=sys.stderr)
        return False
    for line in conversions:
        log.debug("assign_weight: %s", line)
    return True
