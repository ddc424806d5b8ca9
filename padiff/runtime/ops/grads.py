"""Follow gradients through one recorded re-run: what reached each op's outputs and inputs in backward.

A :class:`GradTrace` is a :class:`~padiff.adapters.op_events.Trace` that also keeps every
recorded op's live tensors. Each tensor *value* that carries a gradient gets a gradient hook as
soon as an op hands it over (*early*: before any hook the user's forward code registers on it
afterwards) and another one once the forward has returned (*late*: after them), so a gradient
hook that changes a gradient shows as early != late. A tensor an op changes in place
(``relu(inplace=True)``, seen by its in-place version counter) is a new value with its own
hook (registered after the change, it gets the gradient of the new value).
:meth:`GradTrace.backward` runs one backward from given output gradients without
accumulating into anything; :meth:`GradTrace.vjp` is one op's own share of its input
gradients (several ops may add to one tensor). Every hook is removed by :meth:`GradTrace.close`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from padiff.adapters import Side
from padiff.adapters.op_events import OpEvent, Trace

Grad = np.ndarray | None
Key = int  # one value of one tensor: in-place changes make a new key for the same tensor


class GradTrace(Trace):
    """The ops of one re-run with their tensors, and the gradients one backward gave them."""

    def __init__(self, root_path: str, side: Side) -> None:
        super().__init__(root_path)
        self.side = side
        self.live: dict[int, tuple[list[Any], list[Any]]] = {}  # op index -> (input tensors, output tensors)
        self.keys: dict[int, tuple[list[Key | None], list[Key | None]]] = {}  # op index -> their value keys
        self.tensors: dict[Key, Any] = {}  # kept alive, so identities stay unique
        self.aliases: list[Any] = []  # second objects of a tensor (Side.shares_gradient), kept alive too
        self.versions: dict[Key, int] = {}  # the tensor's in-place version when the value was seen
        self.current: dict[int, Key] = {}  # tensor id -> key of its latest value
        self.producer: dict[Key, int] = {}  # value -> index of the recorded op that returned it
        self.calls: dict[int, Any] = {}  # op index -> (function, args, kwargs), to run the op alone again
        self.plain: set[int] = set()  # ops whose outputs carried no gradient when they ran
        self.born: dict[int, tuple[int, int]] = {}  # tensor id -> (op, output position) of a gradient-free output
        self.early: dict[Key, np.ndarray] = {}
        self.late: dict[Key, np.ndarray] = {}
        self._handles: list[Any] = []
        self._capturing = False
        self._share: dict[Key, np.ndarray] | None = None  # one op's own share, while vjp runs
        self._read_by: dict[Key, list[tuple[int, str]]] | None = None  # value -> (op, kind) reading it

    # --- forward ---------------------------------------------------------------------------
    def on_live(self, ev: OpEvent, inputs: list[Any], outputs: list[Any], call: Any) -> None:
        side = self.side
        in_keys = [self._key(t) for t in inputs]
        out_keys: list[Key | None] = []
        for n, t in enumerate(outputs):
            if not side.carries_grad(t):
                out_keys.append(None)
                self.born.setdefault(id(t), (ev.index, n))  # a custom Function may return it with a gradient
                continue
            # a tensor seen before and returned again changed in place is a new value; returned
            # unchanged (dropout with p=0, an identity), the same one
            seen = id(t) in self.current
            alias = next((k for x, k in zip(inputs, in_keys) if k is not None and side.shares_gradient(t, x)), None)
            if alias is not None and not seen:  # one tensor to autograd under a second object: the input's value
                self.current[id(t)] = alias
                self.aliases.append(t)
                out_keys.append(alias)
                continue
            key = self._new(t) if seen and self.versions[self.current[id(t)]] != side.value_version(t) \
                else self._key(t)
            out_keys.append(key)
            if key is not None:
                self.producer.setdefault(key, ev.index)
        self.live[ev.index] = (inputs, outputs)
        self.keys[ev.index] = (in_keys, out_keys)
        if all(side.carries_grad(t) for t in outputs):
            self.calls[ev.index] = call
        else:  # ran without gradients: e.g. inside a custom Function's forward, whose backward is the user's
            self.plain.add(ev.index)

    def _key(self, t: Any) -> Key | None:
        if id(t) in self.current:
            return self.current[id(t)]
        if not self.side.carries_grad(t):
            return None
        key = self._new(t)
        if id(t) in self.born:  # returned without a gradient by an earlier op, then given one (custom Function)
            op, n = self.born.pop(id(t))
            self.keys[op][1][n] = key
            self.producer[key] = op
        return key

    def _new(self, t: Any) -> Key:
        key = len(self.tensors)
        self.tensors[key] = t
        self.versions[key] = self.side.value_version(t)
        self.current[id(t)] = key
        self._hook(t, key, self.early)
        return key

    def _hook(self, t: Any, key: Key, store: dict[Key, np.ndarray]) -> None:
        side = self.side

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
        for key in self.current.values():
            t = self.tensors[key]
            if not self.side.is_leaf(t):
                self._hook(t, key, self.late)

    # --- backward --------------------------------------------------------------------------
    def backward(self, outputs: list[Any], grads: list[Any]) -> None:
        """One backward from ``outputs`` with gradients ``grads``; parameter ``.grad`` is left alone."""
        roots = {id(t) for t in outputs}
        latest = [(k, self.tensors[k]) for k in dict.fromkeys(k for i, k in self.current.items() if i not in roots)]
        self._capturing = True
        try:  # paddle stops at an input it starts from: the roots are no inputs
            got = self.side.grads_of(outputs, [t for _, t in latest], grads) if latest else []
        finally:
            self._capturing = False
        for t, g in zip(outputs, grads):
            if id(t) in self.current:
                self.early.setdefault(self.current[id(t)], self.side.to_numpy(g))
        for (key, _), g in zip(latest, got):
            if g is not None and key not in self.early:  # leaves: the returned gradient is the whole one
                self.early[key] = self.side.to_numpy(g)

    def _grad(self, key: Key | None, late: bool = False) -> Grad:
        if key is None:
            return None
        return self.late.get(key, self.early.get(key)) if late else self.early.get(key)

    def out_grads(self, i: int) -> list[tuple[Grad, Grad]]:
        """(early, late) gradient of each output of op ``i`` (None where no gradient reached it)."""
        return [(self._grad(k), self._grad(k, late=True)) for k in self.keys.get(i, ([], []))[1]]

    def _ins(self, i: int) -> list[tuple[Any, Key | None]]:
        """The inputs (tensor, value key) gradients flow to from op ``i``'s outputs.

        An op that ran without gradients but whose output carries one now returned it from a custom
        Function / PyLayer: its gradients go to the inputs of the gradient-free ops run just before it
        (the custom forward's body), not to its own.
        """
        ins = self.live.get(i, ([], []))[0]
        in_keys, out_keys = self.keys.get(i, ([], []))
        if i not in self.plain or not any(k is not None for k in out_keys):
            return list(zip(ins, in_keys))
        found: dict[Key, Any] = {}
        k = i
        while k in self.plain and k in self.live:
            for t, key in zip(self.live[k][0], self.keys[k][0]):
                if key is not None and self.producer.get(key, -1) < k:
                    found.setdefault(key, t)
            k -= 1
        return [(t, key) for key, t in found.items()]

    def in_grads(self, i: int) -> list[Grad]:
        """The whole gradient reaching each input of op ``i`` (every op using it added to it), before user hooks."""
        return [self._grad(k) for _, k in self._ins(i)]

    def vjp(self, i: int) -> list[Grad]:
        """Op ``i``'s own share of its input gradients, from the gradients its outputs received.

        The op is run once more on copies of its inputs, so the share holds only this op's
        backward: the recorded graph would also count the paths from one input through the
        others (``x + f(x)``: the gradient of ``x`` through ``f``). An op whose outputs came from
        a custom backward, or that cannot run again, is differentiated in the recorded graph.
        """
        ins = self._ins(i)
        outs = list(zip(self.live.get(i, ([], []))[1], self.keys.get(i, ([], []))[1]))
        wanted = [n for n, (_, k) in enumerate(ins) if k is not None]
        if not wanted or not any(k in self.early for _, k in outs if k is not None):
            return [None] * len(ins)
        if i in self.calls:
            try:
                return self._replayed(i, ins, outs, wanted)
            except Exception:  # noqa: BLE001 - an op that cannot run again is differentiated in the recorded graph
                pass
        if {id(t) for t, _ in ins} & {id(t) for t, _ in outs}:
            return [None] * len(ins)  # in place, in the recorded graph: no share of its own to read
        return self._in_graph(ins, outs, wanted)

    def _replayed(self, i: int, ins: list[tuple[Any, Key | None]], outs: list[tuple[Any, Key | None]],
                  wanted: list[int]) -> list[Grad]:
        side = self.side
        fn, args, kwargs = self.calls[i]
        leaves = {id(ins[n][0]): side.clone_detached(ins[n][0]) for n in wanted}
        for t in leaves.values():
            side.set_requires_grad(t, True)
        work = {k: t * 1 for k, t in leaves.items()}  # not leaves: an in-place op may change them
        swap = lambda t: work.get(id(t), t)  # noqa: E731
        new_outs = side.flatten(fn(*side.map_tensors(args, swap), **side.map_tensors(kwargs, swap)))
        if len(new_outs) != len(outs):
            raise ValueError("the op returned another number of tensors when run again")
        pairs = [(n, self.early[k]) for n, (_, k) in zip(new_outs, outs)
                 if k is not None and k in self.early and side.carries_grad(n)]
        got = side.grads_of([n for n, _ in pairs], [leaves[id(ins[n][0])] for n in wanted],
                            [side.from_numpy(g, like=n) for n, g in pairs])
        out: list[Grad] = [None] * len(ins)
        for n, g in zip(wanted, got):
            out[n] = side.to_numpy(g) if g is not None else None
        return out

    def _in_graph(self, ins: list[tuple[Any, Key | None]], outs: list[tuple[Any, Key | None]],
                  wanted: list[int]) -> list[Grad]:
        pairs = [(t, self.early[k]) for t, k in outs if k is not None and k in self.early]
        side = self.side
        self._share = {}
        try:
            got = side.grads_of([t for t, _ in pairs], [ins[n][0] for n in wanted],
                                [side.from_numpy(g, like=t) for t, g in pairs])
            share = self._share
        except Exception:  # noqa: BLE001 - an op whose share cannot be computed is judged by the whole gradient
            return [self._grad(k) for _, k in ins]
        finally:
            self._share = None
        out: list[Grad] = [None] * len(ins)
        for n, g in zip(wanted, got):
            # the gradient as the value's first hook saw it (paddle returns it after the user's hooks, torch before)
            key = ins[n][1]
            out[n] = share[key] if key in share else side.to_numpy(g) if g is not None else None
        return out

    def unrecorded(self, i: int) -> list[str]:
        """Backward nodes no recorded op accounts for that produced op ``i``'s gradient-carrying inputs."""
        ins, in_keys = self.live.get(i, ([], []))[0], self.keys.get(i, ([], []))[0]
        return [self.side.grad_node_name(t) for t, k in zip(ins, in_keys)
                if k is not None and k not in self.producer and not self.side.is_leaf(t)]

    def readers(self, i: int) -> list[tuple[str, ...]]:
        """For each output of op ``i``: the kinds of the recorded ops that read that value afterwards, sorted."""
        if self._read_by is None:  # the forward is over: one index of who reads each value
            kinds = {op.index: op.kind for op in self.ops}
            self._read_by = {}
            for j, (in_keys, _) in self.keys.items():
                for k in set(in_keys):
                    if k is not None:
                        self._read_by.setdefault(k, []).append((j, kinds.get(j, "")))
        outs = self.keys.get(i, ([], []))[1]
        return [tuple(sorted(kind for j, kind in self._read_by.get(k, []) if j > i)) if k is not None else ()
                for k in outs]

    def produced(self, i: int) -> list[bool]:
        """For each output of op ``i``: whether this op made the value (not returned an input unchanged)."""
        return [k is not None and self.producer.get(k) == i for k in self.keys.get(i, ([], []))[1]]

    def custom(self, i: int) -> list[str]:
        """The user's autograd Function / PyLayer classes whose backward produces op ``i``'s outputs' gradients."""
        outs = self.live.get(i, ([], []))[1]
        return [n for n in dict.fromkeys(self.side.custom_backward(t) for t in outs) if n]

    def has_grads(self, i: int) -> bool:
        """Whether any input or output of op ``i`` carries a gradient."""
        in_keys, out_keys = self.keys.get(i, ([], []))
        return any(k is not None for k in (*in_keys, *out_keys))

    def close(self) -> None:
        """Remove every gradient hook and let the tensors go."""
        for h in self._handles:
            try:
                h.remove()
            except Exception:  # noqa: BLE001 - every other hook must still go
                pass
        self._handles.clear()
        self.aliases.clear()
        self._read_by = None
        for store in (self.tensors, self.versions, self.current, self.live, self.keys, self.calls, self.born):
            store.clear()
