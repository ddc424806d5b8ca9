"""Which layer calls are compared, and how a torch call finds its paddle partner.

Roles are decided once per run from the module trees and the resolved map:

- ``explicit``: the layer is in a pair of the map; its k-th call pairs with the k-th call
  of its partner.
- ``hard``: owns parameters or buffers; paired with the next hard call of the other side
  in call order (top-down).
- ``soft``: a parameter-free leaf (ReLU, pooling, Dropout...); paired only with a soft
  call of the same kind between the same paired neighbours: after the partner of the
  last paired torch call and before the next paddle call that anchors pairing (one that
  holds state, or one of the map). So a functional call on one side (``F.relu``)
  against a layer on the other (``nn.ReLU``) does not break pairing, one module called
  twice pairs with two modules called once, and a soft call never pairs across a
  paired layer (a drop-path ``Identity`` with a later block's ``Identity``).

Wrappers without own state (Sequential, user containers) get no role and no hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from padiff.adapters import Side
from padiff.layer_map import LayerPair, ResolvedMap
from padiff.names import depth as path_depth
from padiff.names import is_strictly_within
from padiff.weights.special_init import is_special


def kind_of(class_name: str) -> str:
    """Normalised kind of a layer class: ``Conv2D`` and ``Conv2d`` are both ``conv2d``."""
    return class_name.lower()


@dataclass
class Role:
    """How one layer path takes part in a run."""

    path: str
    cls: str
    kind: str  # "explicit", "hard", "soft"
    depth: int
    pair: LayerPair | None = None
    unit: bool = False  # owns its whole subtree (opaque pair, or a class with a special init)
    stateful: bool = False  # owns parameters or buffers


@dataclass
class Event:
    """One call of a hooked layer on one side."""

    index: int
    role: Role
    call: int
    stack: tuple[tuple[str, int, str], ...] = ()
    inputs: list[Any] | None = None  # host copies of input tensors (single_step)
    outputs: list[Any] | None = None  # host copies of output tensors
    grads: dict[int, Any] = field(default_factory=dict)  # paddle: output gradients not yet taken by torch
    grad_hooked: set[int] = field(default_factory=set)  # paddle: outputs whose gradient is recorded
    partner: Event | None = None
    dtype: str = ""
    shapes: list[tuple[int, ...]] = field(default_factory=list)  # output shapes (fused pairs slice by them)
    pieces: list[Event] | None = None  # torch event of a fused pair with a split paddle side: its paddle parts
    keys: Any = None  # paddle: the output's dict key layout, so torch's is paired by key (runtime.keyed)
    items: tuple[tuple[int, int], ...] | None = None  # torch: (paddle, torch) output pairs, when the counts differ


def assign_roles(side: Side, root: Any, resolved: ResolvedMap, owned_paths: set[str]) -> dict[str, Role]:
    """Decide the role of every layer path on one side (paths absent from the result get no hooks)."""
    pairs = resolved.pair_of(side.name)
    units = set(resolved.opaque_paths(side.name))
    roles: dict[str, Role] = {}
    for path, layer in side.named_layers(root):
        if path in roles:  # the same path twice cannot happen; shared layers give two paths
            continue
        if any(is_strictly_within(path, top) for top in units):
            continue  # inside an opaque pair or a special-init layer: only its top is compared
        if resolved.hidden(side.name, path):
            continue
        depth = path_depth(path)
        cls = type(layer).__name__
        pair = pairs.get(path)
        special = path != "" and is_special(layer, 0 if side.name == "paddle" else 1)
        if pair is not None:
            unit = pair.opaque or special
            if unit:
                units.add(path)
            roles[path] = Role(path, cls, "explicit", depth, pair, unit=unit, stateful=path in owned_paths or unit)
            continue
        if resolved.skipped(side.name, path):
            continue
        if special and not any(p.startswith(path + ".") for p in pairs):
            # MultiHeadAttention, LSTM ...: weights do not pair one by one, so the layer is one unit
            units.add(path)
            roles[path] = Role(path, cls, "hard", depth, unit=True, stateful=True)
        elif path in owned_paths:
            roles[path] = Role(path, cls, "hard", depth, stateful=True)
        elif not side.children(layer) and path != "":
            roles[path] = Role(path, cls, "soft", depth)
    return roles


class OnlinePairer:
    """Finds the paddle event for each torch event as the torch model runs.

    Paddle has run completely before torch starts, so its events are all known; the torch
    side is paired call by call, which lets the engine compare (and, in single_step, feed
    inputs) immediately and drop the paddle copy right after.
    """

    def __init__(self, paddle_events: list[Event]) -> None:
        self.events = list(paddle_events)
        self.pos = {id(ev): i for i, ev in enumerate(self.events)}
        self.explicit: dict[tuple[str, int], Event] = {}
        for ev in self.events:
            if ev.role.kind == "explicit":
                self.explicit[(ev.role.path, ev.call)] = ev
        self.hard = [i for i, ev in enumerate(self.events) if ev.role.kind == "hard"]
        self.hard_ptr = 0  # next candidate in ``hard``
        self.last = -1  # position of the paddle event paired last (any kind): soft calls pair after it
        self.used: set[int] = set()
        self.unmatched_paddle: list[Event] = []
        self.unmatched_torch: list[Event] = []
        self._parts_seen: dict[tuple[str, int], set[str]] = {}

    def _take(self, i: int) -> Event:
        self.used.add(i)
        self.last = i
        return self.events[i]

    def match(self, tev: Event) -> Event | None:
        """The paddle partner of torch event ``tev`` (or None), consuming it."""
        role = tev.role
        if role.kind == "explicit":
            assert role.pair is not None
            if role.pair.split_side:
                return self._match_fused(tev, role.pair)
            pev = self.explicit.pop((role.pair.paddle_path, tev.call), None)
            if pev is None:
                self.unmatched_torch.append(tev)
                return None
            return self._take(self.pos[id(pev)])
        if role.kind == "hard":
            while self.hard_ptr < len(self.hard):
                i = self.hard[self.hard_ptr]
                self.hard_ptr += 1
                if i not in self.used:
                    return self._take(i)
            self.unmatched_torch.append(tev)
            return None
        kind = kind_of(role.cls)
        for i in range(self.last + 1, len(self.events)):
            if i in self.used:
                continue
            cand = self.events[i]
            if cand.role.kind != "soft":
                break  # the next anchor: a soft call never pairs across it
            if kind_of(cand.role.cls) == kind:
                return self._take(i)
        self.unmatched_torch.append(tev)
        return None

    def _match_fused(self, tev: Event, pair: LayerPair) -> Event | None:
        """A fused pair: every torch part shares the fused paddle call; a fused torch call takes all paddle parts."""
        if pair.split_side == "torch":
            key = (pair.paddle_path, tev.call)
            pev = self.explicit.get(key)
            if pev is None:
                self.unmatched_torch.append(tev)
                return None
            taken = self._parts_seen.setdefault(key, set())
            taken.add(tev.role.path)
            if len(taken) == len(pair.torch_parts):
                del self.explicit[key]
            return self._take(self.pos[id(pev)])  # consumed: not reported unpaired at the end
        pieces = [self.explicit.get((path, tev.call)) for path in pair.paddle_parts]
        if any(p is None for p in pieces):
            self.unmatched_torch.append(tev)
            return None
        for path in pair.paddle_parts:
            del self.explicit[(path, tev.call)]
        tev.pieces = [p for p in pieces if p is not None]
        for piece in tev.pieces:
            self._take(self.pos[id(piece)])
        return tev.pieces[0]

    def finish(self) -> None:
        """Everything on the paddle side not consumed is unmatched."""
        self.unmatched_paddle = [ev for i, ev in enumerate(self.events) if i not in self.used]
        self.explicit = {}
