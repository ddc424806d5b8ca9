"""Call-order discovery: which stateful layers pair up, found by one quiet forward pass.

``auto_weights`` must copy weights *before* the compared run, yet the default pairing
is by call order, which only a run reveals. This module runs both models once under
``no_grad`` with pre-hooks on the stateful layers only, pairs the calls in order, and
returns the pairs as ``LayerPair`` records (one map type, many producers). BatchNorm
statistics a train-mode forward would update are restored afterwards.
"""

from __future__ import annotations

from typing import Any

from padiff.adapters import PADDLE, TORCH, Side
from padiff.layer_map import LayerPair, ResolvedMap
from padiff.runtime.hooks import HookSet
from padiff.runtime.pairing import Event, OnlinePairer, Role, assign_roles
from padiff.runtime.state import SideSnapshot


def _record(side: Side, root: Any, inputs: dict[str, Any], roles: dict[str, Role]) -> list[Event]:
    events: list[Event] = []
    calls: dict[str, int] = {}
    seen: set[int] = set()
    snap = SideSnapshot.take(side, root, inputs, keep_values=False)
    try:
        with HookSet() as hooks:
            for path, layer in side.named_layers(root):
                role = roles.get(path)
                if role is None or role.kind == "soft" or id(layer) in seen:
                    continue
                seen.add(id(layer))

                def pre(lay: Any, args: tuple, kwargs: dict, role: Role = role) -> None:
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
    """Pairs of stateful layers in call order (first call of each), as the engine would pair them."""
    p_roles = assign_roles(PADDLE, layer, resolved, set(PADDLE.owned_state(layer)))
    t_roles = assign_roles(TORCH, module, resolved, set(TORCH.owned_state(module)))
    p_events = _record(PADDLE, layer, p_inputs, p_roles)
    t_events = _record(TORCH, module, t_inputs, t_roles)
    pairer = OnlinePairer(p_events)
    pairs: list[LayerPair] = []
    used_p: set[str] = set()
    used_t: set[str] = set()
    for tev in t_events:
        pev = pairer.match(tev)
        if pev is None or tev.role.kind == "explicit" or pev.role.path in used_p or tev.role.path in used_t:
            continue  # a reused layer pairs once; a layer reused on one side only keeps its first partner
        used_p.add(pev.role.path)
        used_t.add(tev.role.path)
        pairs.append(LayerPair(pev.role.path, tev.role.path, pev.role.cls, tev.role.cls, confidence=1.0,
                               evidence=("call order",)))
    return pairs
