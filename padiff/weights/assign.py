"""Copying a torch model's weights into its paddle port, all or nothing.

Three steps, each usable alone (the engine calls the first two for ``auto_weights``):

1. :func:`plan_weights` (in :mod:`padiff.weights.assign_plan`) pairs every layer that owns
   tensors: the map's pairs first (a mapped/opaque pair, or a pair with a special init,
   covers its whole subtree), then the remaining layers in definition order, passing over
   ignored layers. Each pair gets a :class:`PairPlan` (special init, or inferred conversions).
2. :func:`copy_weights` applies the plans after snapshotting every paddle tensor it may
   touch (a large snapshot in a temporary file, not in memory: :mod:`padiff.weights.spill`);
   on any failure everything is restored before the error propagates. The torch tensors are
   read through views, not copied.
3. :func:`padiff.assign.assign_weight` is the public wrapper: ``True`` on success, ``False`` plus a
   printed explanation when the models cannot be paired or copied.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from padiff.adapters import PADDLE, TORCH, StateEntry, pair_state
from padiff.errors import WeightAssignError
from padiff.names import show
from padiff.weights.assign_message import TreeMarks, build_error
from padiff.weights.pair_plan import PairPlan, torch_arrays
from padiff.weights.spill import Spill


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
    t_arrays = torch_arrays(_plan_state(t_owned, plan.torch_paths), view=True)
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
    """Each paddle tensor a plan may write, with its value now (in a temporary file when large: :mod:`spill`)."""
    seen: set[int] = set()
    tensors: list[Any] = []
    spill = Spill()

    def keep(t: Any) -> None:
        if id(t) not in seen:
            seen.add(id(t))
            tensors.append(t)
            spill.add(PADDLE.host_view(t), view=True)  # copied or written out at once: t changes later

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
    return list(zip(tensors, spill.arrays()))


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
            for lk in plan.links if lk.conversion.startswith("inferred") or "orientation" in lk.conversion]
    out += [f"{where}: {note}" for note in plan.notes]
    return out
