"""Follow gradients through one recorded re-run: what reached each op's outputs and inputs in backward.

A :class:`GradTrace` is a :class:`~padiff.runtime.ops.events.Trace` that also keeps every
recorded op's live tensors. Each tensor that carries a gradient gets a gradient hook as soon
as an op hands it over (*early*: before any hook the user's forward code registers on it
afterwards) and another one once the forward has returned (*late*: after them), so a gradient
hook that changes a gradient shows as early != late. :meth:`GradTrace.backward` runs one
backward from given output gradients without accumulating into anything; :meth:`GradTrace.vjp`
is one op's own share of its input gradients (several ops may add to one tensor). Every hook
is removed by :meth:`GradTrace.close`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from padiff.adapters import Side
from padiff.runtime.ops.events import OpEvent, Trace

Grad = np.ndarray | None


class GradTrace(Trace):
    """The ops of one re-run with their tensors, and the gradients one backward gave them."""

    def __init__(self, root_path: str, side: Side) -> None:
        super().__init__(root_path)
        self.side = side
        self.live: dict[int, tuple[list[Any], list[Any]]] = {}  # op index -> (input tensors, output tensors)
        self.tensors: dict[int, Any] = {}  # id -> tensor: kept alive, so identities stay unique
        self.producer: dict[int, int] = {}  # tensor id -> index of the recorded op that returned it
        self.calls: dict[int, Any] = {}  # op index -> (function, args, kwargs), to run the op alone again
        self.plain: set[int] = set()  # ops whose outputs carried no gradient when they ran
        self.early: dict[int, np.ndarray] = {}
        self.late: dict[int, np.ndarray] = {}
        self._handles: list[Any] = []
        self._capturing = False
        self._share: dict[int, np.ndarray] | None = None  # one op's own share, while vjp runs

    # --- forward ---------------------------------------------------------------------------
    def on_live(self, ev: OpEvent, inputs: list[Any], outputs: list[Any], call: Any) -> None:
        self.live[ev.index] = (inputs, outputs)
        if all(self.side.carries_grad(t) for t in outputs):
            self.calls[ev.index] = call
        else:  # ran without gradients: e.g. inside a custom Function's forward, whose backward is the user's
            self.plain.add(ev.index)
        for t in (*inputs, *outputs):
            if self.side.carries_grad(t) and id(t) not in self.tensors:
                self.tensors[id(t)] = t
                self._hook(t, self.early)
        for t in outputs:
            self.producer.setdefault(id(t), ev.index)

    def _hook(self, t: Any, store: dict[int, np.ndarray]) -> None:
        key, side = id(t), self.side

        def seen(g: Any) -> None:
            if g is None:
                return
            if self._capturing:
                store[key] = side.to_numpy(g)
            elif self._share is not None and store is self.early:
                self._share[key] = side.to_numpy(g)

        self._handles.append(side.add_grad_hook(t, seen))

    def forward_done(self) -> None:
        """The scope returned: hooks registered now run after the user's own gradient hooks."""
        for t in self.tensors.values():
            if not self.side.is_leaf(t):
                self._hook(t, self.late)

    # --- backward --------------------------------------------------------------------------
    def backward(self, outputs: list[Any], grads: list[Any]) -> None:
        """One backward from ``outputs`` with gradients ``grads``; parameter ``.grad`` is left alone."""
        roots = {id(t) for t in outputs}
        inputs = [t for k, t in self.tensors.items() if k not in roots]  # paddle stops at an input it starts from
        self._capturing = True
        try:
            got = self.side.grads_of(outputs, inputs, grads) if inputs else []
        finally:
            self._capturing = False
        for t, g in zip(outputs, grads):
            self.early.setdefault(id(t), self.side.to_numpy(g))
        for t, g in zip(inputs, got):
            if g is not None and id(t) not in self.early:  # leaves: the returned gradient is the whole one
                self.early[id(t)] = self.side.to_numpy(g)
            if g is not None and id(t) not in self.late:
                self.late[id(t)] = self.early[id(t)]

    def out_grads(self, i: int) -> list[tuple[Grad, Grad]]:
        """(early, late) gradient of each output of op ``i`` (None where no gradient reached it)."""
        _, outs = self.live.get(i, ([], []))
        return [(self.early.get(id(t)), self.late.get(id(t), self.early.get(id(t)))) for t in outs]

    def _ins(self, i: int) -> list[Any]:
        """The inputs gradients flow to from op ``i``'s outputs.

        An op that ran without gradients but whose output carries one now returned it from a custom
        Function / PyLayer: its gradients go to the inputs of the gradient-free ops run just before it
        (the custom forward's body), not to its own.
        """
        ins, outs = self.live.get(i, ([], []))
        if i not in self.plain or not any(id(t) in self.tensors for t in outs):
            return ins
        found: dict[int, Any] = {}
        k = i
        while k in self.plain and k in self.live:
            for t in self.live[k][0]:
                if id(t) in self.tensors and self.producer.get(id(t), -1) < k:
                    found.setdefault(id(t), t)
            k -= 1
        return list(found.values())

    def in_grads(self, i: int) -> list[Grad]:
        """The whole gradient reaching each input of op ``i`` (every op using it added to it), before user hooks."""
        return [self.early.get(id(t)) for t in self._ins(i)]

    def vjp(self, i: int) -> list[Grad]:
        """Op ``i``'s own share of its input gradients, from the gradients its outputs received.

        The op is run once more on detached copies of its inputs, so the share holds only this
        op's backward: the recorded graph would also count the paths from one input through the
        others (``x + f(x)``: the gradient of ``x`` through ``f``). An op whose outputs came from
        a custom backward, or that cannot run again, is differentiated in the recorded graph.
        """
        ins, outs = self._ins(i), self.live.get(i, ([], []))[1]
        wanted = [k for k, t in enumerate(ins) if id(t) in self.tensors]
        if not wanted or not any(id(t) in self.early for t in outs) or {id(t) for t in ins} & {id(t) for t in outs}:
            return [None] * len(ins)  # in place: no share of its own
        if i in self.calls:
            try:
                return self._replayed(i, ins, outs, wanted)
            except Exception:  # noqa: BLE001 - an op that cannot run again is differentiated in the recorded graph
                pass
        return self._in_graph(ins, outs, wanted)

    def _replayed(self, i: int, ins: list[Any], outs: list[Any], wanted: list[int]) -> list[Grad]:
        side = self.side
        fn, args, kwargs = self.calls[i]
        fresh = {id(ins[k]): side.clone_detached(ins[k]) for k in wanted}
        for t in fresh.values():
            side.set_requires_grad(t, True)
        swap = lambda t: fresh.get(id(t), t)  # noqa: E731
        new_outs = side.flatten(fn(*side.map_tensors(args, swap), **side.map_tensors(kwargs, swap)))
        if len(new_outs) != len(outs):
            raise ValueError("the op returned another number of tensors when run again")
        pairs = [(n, self.early[id(o)]) for n, o in zip(new_outs, outs) if id(o) in self.early and side.carries_grad(n)]
        got = side.grads_of([n for n, _ in pairs], [fresh[id(ins[k])] for k in wanted],
                            [side.from_numpy(g, like=n) for n, g in pairs])
        out: list[Grad] = [None] * len(ins)
        for k, g in zip(wanted, got):
            out[k] = side.to_numpy(g) if g is not None else None
        return out

    def _in_graph(self, ins: list[Any], outs: list[Any], wanted: list[int]) -> list[Grad]:
        pairs = [(t, self.early[id(t)]) for t in outs if id(t) in self.early]
        side = self.side
        self._share = {}
        try:
            got = side.grads_of([t for t, _ in pairs], [ins[k] for k in wanted],
                                [side.from_numpy(g, like=t) for t, g in pairs])
            share = self._share
        except Exception:  # noqa: BLE001 - an op whose share cannot be computed is judged by the whole gradient
            return [self.early.get(id(t)) for t in ins]
        finally:
            self._share = None
        out: list[Grad] = [None] * len(ins)
        for k, g in zip(wanted, got):
            # the gradient as the tensor's first hook saw it (paddle returns it after the user's hooks, torch before)
            out[k] = share.get(id(ins[k]), side.to_numpy(g) if g is not None else None)
        return out

    def unrecorded(self, i: int) -> list[str]:
        """Backward nodes no recorded op accounts for that produced op ``i``'s gradient-carrying inputs."""
        ins, _ = self.live.get(i, ([], []))
        return [self.side.grad_node_name(t) for t in ins
                if id(t) in self.tensors and id(t) not in self.producer and not self.side.is_leaf(t)]

    def custom(self, i: int) -> list[str]:
        """The user's autograd Function / PyLayer classes whose backward produces op ``i``'s outputs' gradients."""
        _, outs = self.live.get(i, ([], []))
        return [n for n in dict.fromkeys(self.side.custom_backward(t) for t in outs) if n]

    def has_grads(self, i: int) -> bool:
        """Whether any input or output of op ``i`` carries a gradient."""
        ins, outs = self.live.get(i, ([], []))
        return any(id(t) in self.tensors for t in (*ins, *outs))

    def close(self) -> None:
        """Remove every gradient hook and let the tensors go."""
        for h in self._handles:
            try:
                h.remove()
            except Exception:  # noqa: BLE001 - every other hook must still go
                pass
        self._handles.clear()
        self.tensors.clear()
        self.live.clear()
        self.calls.clear()
