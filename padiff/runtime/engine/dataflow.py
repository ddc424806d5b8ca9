"""Which compared layer call reads which one's output, noted during torch's forward.

The representation rule (:mod:`padiff.compare.representations`) needs, for each compared call,
the compared calls that consume its output. Torch's hooks see every call's input and output
tensors, and two ways tie an input to the calls that made it:

- **identity**: the input is an output of an earlier call (passed on as it is: a rotary table
  handed to every attention layer). A call that is not compared passes on the makers of its
  own inputs;
- **the autograd graph**: the input was computed from earlier outputs by functional code (a
  softmax, a weighted sum of experts); walking its ``grad_fn`` nodes back, the walk stops at
  the first compared outputs it meets. The walk is memoised per node, so a pass walks each
  node once.

An output no compared call reads is consumed by the nearest enclosing compared call, whose own
output is computed from it. Tensors and nodes are held by weak reference or by ``id`` while
their owner lives only, so nothing outlives the pass.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from padiff.compare.representations import CallKey

NodeOf = Callable[[Any], Any]  # a tensor's autograd node, or None
NodeInputs = Callable[[Any], list[Any]]  # the nodes a node was computed from


@dataclass
class _Open:
    key: CallKey | None  # None: a call that is not compared
    upstream: frozenset[CallKey]  # the compared calls whose outputs this call reads


def _no_node(t: Any) -> Any:
    return None


def _no_inputs(node: Any) -> list[Any]:
    return []


@dataclass
class Dataflow:
    """The consumers of each compared call of one forward pass."""

    node_of: NodeOf = _no_node
    node_inputs: NodeInputs = _no_inputs  # no graph: identity only
    _made: dict[int, tuple[weakref.ref, frozenset[CallKey]]] = field(default_factory=dict)
    _node_made: dict[int, tuple[Any, frozenset[CallKey]]] = field(default_factory=dict)  # node id -> (node, makers)
    _walked: dict[int, tuple[Any, frozenset[CallKey]]] = field(default_factory=dict)
    _stack: list[_Open] = field(default_factory=list)
    _direct: dict[CallKey, set[CallKey]] = field(default_factory=dict)
    _parent: dict[CallKey, CallKey] = field(default_factory=dict)
    _stateful: set[CallKey] = field(default_factory=set)

    def enter(self, inputs: Iterable[Any]) -> None:
        """A call starts, reading ``inputs``: note which compared calls made them."""
        up: set[CallKey] = set()
        for t in inputs:
            got = self._made.get(id(t))
            if got is not None and got[0]() is t:
                up.update(got[1])
            else:
                node = self.node_of(t)
                if node is not None:
                    up.update(self._walk(node))
        self._stack.append(_Open(None, frozenset(up)))

    def leave(self, outputs: Iterable[Any]) -> None:
        """The innermost open call returns ``outputs``."""
        if not self._stack:
            return
        top = self._stack.pop()
        key = top.key
        if key is not None:
            for maker in top.upstream:
                self._direct.setdefault(maker, set()).add(key)
            parent = next((o.key for o in reversed(self._stack) if o.key is not None), None)
            if parent is not None:
                self._parent[key] = parent
        made = frozenset({key}) if key is not None else top.upstream
        if not made:
            return
        for t in outputs:
            node = self.node_of(t)
            if node is not None and key is not None and id(node) not in self._node_made:
                self._node_made[id(node)] = (node, made)  # the node is kept: its id stays its own
            try:
                self._made[id(t)] = (weakref.ref(t), made)
            except TypeError:  # not weak-referable: this output's consumers are seen through its node only
                continue

    def set_key(self, key: CallKey) -> None:
        """The innermost open call is compared as ``key`` (known once paired, before it returns)."""
        if self._stack:
            self._stack[-1].key = key

    def note_stateful(self, key: CallKey) -> None:
        """Compared call ``key`` changed its layer's state (buffers) in place: it cannot vouch for its inputs."""
        self._stateful.add(key)

    def stateful(self) -> set[CallKey]:
        """The compared calls that updated their layer's state during the pass."""
        return set(self._stateful)

    def _walk(self, start: Any) -> frozenset[CallKey]:
        """The compared calls whose outputs the node ``start`` was computed from (nearest ones only).

        Depth-first, children before parents (iterative: graphs are deep); every node resolved is
        memoised with the node itself kept, so its ``id`` cannot be reused within the pass.
        """
        todo: list[tuple[Any, bool]] = [(start, False)]
        while todo:
            node, expanded = todo.pop()
            if id(node) in self._node_made or id(node) in self._walked:
                continue
            prevs = self.node_inputs(node)
            if expanded:
                found: set[CallKey] = set()
                for prev in prevs:
                    got = self._node_made.get(id(prev)) or self._walked.get(id(prev))
                    if got is not None:
                        found.update(got[1])
                self._walked[id(node)] = (node, frozenset(found))
                continue
            todo.append((node, True))
            todo.extend((p, False) for p in prevs if id(p) not in self._node_made and id(p) not in self._walked)
        got = self._node_made.get(id(start)) or self._walked.get(id(start))
        return got[1] if got is not None else frozenset()

    def clear(self) -> None:
        """Drop everything noted (the hooks may outlive the forward; the nodes must not)."""
        for table in (self._made, self._node_made, self._walked, self._direct, self._parent):
            table.clear()
        self._stateful.clear()
        self._stack.clear()

    def consumers(self) -> dict[CallKey, set[CallKey]]:
        """For each compared call: the compared calls reading its output, else its enclosing compared call."""
        out = {k: set(v) for k, v in self._direct.items()}
        for key, parent in self._parent.items():
            if not out.get(key):
                out[key] = {parent}
        return out
