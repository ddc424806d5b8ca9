"""Which stateful layers pair up for ``auto_weights``: guessed from the trees, checked by the run.

``auto_weights`` must copy weights *before* the compared run, yet the default pairing is
by call order, which only a run reveals. Running both models once more just to learn that
order costs a whole extra forward (a quarter of a compared run). So :class:`AutoWeights`
first plans the copy in definition order (what ``assign_weight`` does) and lets the
compared run itself check the guess: the engine pairs calls online and reports the pairs
it saw after the first forward (``RunSpec.on_paired``). When a compared pair of stateful
layers is not one the weights were copied for, :class:`CallOrderDiffers` stops the run
before any optimizer step; the caller puts everything back and copies again from the
pairs the run saw, then runs again. A wrong guess costs time, never a wrong result.

When the definition-order plan cannot even be made (shapes that only fit in call order),
:func:`discover_pairs` runs the quiet discovery forward as before: both models once under
``no_grad`` with pre-hooks on the stateful layers only, BatchNorm statistics put back.
All three producers give ``LayerPair`` records (one map type, many producers).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from padiff.adapters import PADDLE, TORCH, Side
from padiff.adapters.hooks import HookSet
from padiff.adapters.snapshot import SideSnapshot
from padiff.errors import WeightAssignError
from padiff.layer_map import LayerMap, LayerPair, ResolvedMap
from padiff.runtime.pairing import Event, OnlinePairer, Role, assign_roles
from padiff.weights.assign_plan import plan_weights
from padiff.weights.plan import PairPlan

log = logging.getLogger("padiff")


class CallOrderDiffers(Exception):
    """The compared run paired stateful layers otherwise than the weights were copied for.

    Raised by :meth:`AutoWeights.check` from inside the engine's first pass; it carries
    the call-order pairs so the weights can be copied again from them.
    """

    def __init__(self, pairs: list[LayerPair]) -> None:
        super().__init__("call order differs from definition order")
        self.pairs = pairs


def call_order_pairs(seen: Iterable[tuple[Role, Role]]) -> list[LayerPair]:
    """Pairs of stateful layers, in the order their calls were paired (first call of each).

    ``seen`` holds ``(paddle role, torch role)`` for each distinct pair of calls, in the
    order they were first paired. Map pairs (``explicit``) and parameter-free layers are
    left out; a reused layer pairs once, and a layer reused on one side only keeps its
    first partner.
    """
    pairs: list[LayerPair] = []
    used_p: set[str] = set()
    used_t: set[str] = set()
    for p_role, t_role in seen:
        if "explicit" in (p_role.kind, t_role.kind) or not (p_role.stateful and t_role.stateful):
            continue
        if p_role.path in used_p or t_role.path in used_t:
            continue
        used_p.add(p_role.path)
        used_t.add(t_role.path)
        pairs.append(LayerPair(p_role.path, t_role.path, p_role.cls, t_role.cls, confidence=1.0,
                               evidence=("call order",)))
    return pairs


def with_pairs(resolved: ResolvedMap, found: Iterable[LayerPair]) -> ResolvedMap:
    """``resolved`` plus the ``found`` pairs whose layers it does not pair already."""
    taken_p = {path for p in resolved.pairs for path in p.paddle_paths} | resolved.param_layers("paddle")
    taken_t = {path for p in resolved.pairs for path in p.torch_paths} | resolved.param_layers("torch")
    extra = tuple(p for p in found if p.paddle_path not in taken_p and p.torch_path not in taken_t)
    return dataclasses.replace(resolved, pairs=resolved.pairs + extra)


def _record(side: Side, root: Any, inputs: dict[str, Any], roles: dict[str, Role]) -> list[Event]:
    events: list[Event] = []
    calls: dict[str, int] = {}
    seen: set[int] = set()
    snap = SideSnapshot.take(side, root, inputs, keep_values=False, grads=False)  # a no_grad forward
    try:
        with HookSet() as hooks:
            for path, layer in side.named_layers(root):
                role = roles.get(path)
                if role is None or role.kind == "soft" or id(layer) in seen:
                    continue
                seen.add(id(layer))

                def pre(lay: Any, args: tuple[Any, ...], kwargs: dict[str, Any], role: Role = role) -> None:
                    call = calls.get(role.path, 0)
                    calls[role.path] = call + 1
                    events.append(Event(len(events), role, call))

                hooks.add(side.add_pre_hook(layer, pre))
            with side.no_grad():
                root(**inputs)
    finally:
        snap.restore(values=True, grads=False)
    return events


def discover_pairs(layer: Any, module: Any, p_inputs: dict[str, Any], t_inputs: dict[str, Any],
                   resolved: ResolvedMap) -> list[LayerPair]:
    """Pairs of stateful layers in call order, found by one quiet forward of both models."""
    p_roles = assign_roles(PADDLE, layer, resolved, set(PADDLE.owned_state(layer)))
    t_roles = assign_roles(TORCH, module, resolved, set(TORCH.owned_state(module)))
    p_events = _record(PADDLE, layer, p_inputs, p_roles)
    t_events = _record(TORCH, module, t_inputs, t_roles)
    pairer = OnlinePairer(p_events)
    seen: list[tuple[Role, Role]] = []
    for tev in t_events:
        pev = pairer.match(tev)
        if pev is not None:
            seen.append((pev.role, tev.role))
    return call_order_pairs(seen)


class AutoWeights:
    """The weight copy of ``auto_weights=True``: which plan, whether the run must check it, and undo.

    Use: :meth:`plan` (raises :class:`WeightAssignError`), copy with ``keep=self.before``,
    run with ``on_paired=self.check`` while :attr:`checking`; on :class:`CallOrderDiffers`
    call :meth:`undo` (after the run's own snapshots are restored), then :meth:`plan` again,
    which now plans from the pairs the run saw.
    """

    def __init__(self, layer: Any, module: Any, resolved: ResolvedMap, lm: LayerMap,
                 p_inputs: dict[str, Any], t_inputs: dict[str, Any]) -> None:
        self.layer, self.module, self.resolved, self.lm = layer, module, resolved, lm
        self.p_inputs, self.t_inputs = p_inputs, t_inputs
        self.checking = False  # the run must check its pairs against :attr:`guessed`
        self.guessed: set[tuple[str, str]] = set()
        self.before: list[tuple[Any, np.ndarray]] = []  # paddle tensors as they were before the copy
        self.redone = False  # the weights were copied again from the run's call order
        self._seen_pairs: list[LayerPair] | None = None

    def plan(self) -> list[PairPlan]:
        """The plans to copy with: map pairs, else definition order (checked by the run), else call order."""
        self.checking = False
        if self._seen_pairs is not None:  # the run showed the call order: copy from it
            return plan_weights(self.layer, self.module, with_pairs(self.resolved, self._seen_pairs))
        if self.lm.pairs:  # full correspondences from the map: no call order is used
            return plan_weights(self.layer, self.module, self.resolved)
        try:
            plans = plan_weights(self.layer, self.module, self.resolved)
        except WeightAssignError:
            # definition order does not even fit (the shapes say so): learn the call order first
            log.debug("auto_weights: definition order does not fit; running a discovery forward")
            return plan_weights(self.layer, self.module, with_pairs(self.resolved, self._discover()))
        self.guessed = {(p.paddle_path, p.torch_path) for p in plans}
        self.checking = True
        return plans

    def _discover(self) -> list[LayerPair]:
        try:
            return discover_pairs(self.layer, self.module, self.p_inputs, self.t_inputs, self.resolved)
        except (Exception, SystemExit):  # noqa: BLE001 - the compared run raises the model's error with context
            return []

    def check(self, seen: list[tuple[Role, Role]]) -> None:
        """Called by the engine once the first forward is paired; raises if a compared pair was not copied.

        Every stateful pair the run compares must be one the weights were copied for
        (definition order and call order agree); then the pre-copy values are dropped.
        Otherwise :class:`CallOrderDiffers` carries the run's pairs.
        """
        if not self.checking:
            return
        self.checking = False
        found = call_order_pairs(seen)
        extra = with_pairs(self.resolved, found).pairs[len(self.resolved.pairs):]
        wrong = [p for p in extra if (p.paddle_path, p.torch_path) not in self.guessed]
        if not wrong:
            self.before = []
            return
        log.info("auto_weights: the models call %s <-> %s%s in another order than they define them; "
                 "copying the weights again in call order and repeating the run", wrong[0].paddle_path,
                 wrong[0].torch_path, f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else "")
        self._seen_pairs = found
        self.redone = True
        raise CallOrderDiffers(found)

    def undo(self) -> None:
        """Put back every paddle tensor the first copy wrote (before copying again)."""
        for tensor, arr in self.before:
            PADDLE.set_value(tensor, arr)
        self.before = []
