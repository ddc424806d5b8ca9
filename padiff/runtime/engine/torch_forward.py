"""Torch's forward in a pass: each layer call paired with its paddle call and compared at once.

Paddle has run, so each torch call finds its partner as it starts
(:class:`~padiff.runtime.pairing.OnlinePairer`); with ``single_step`` it is fed the paddle
call's input. When it returns, its outputs are compared against the kept paddle outputs,
which are dropped right after, and its output tensors get gradient hooks that take paddle's
gradient from the exchange and compare it (with ``single_step``, hand it on instead of
torch's own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from padiff.adapters import TORCH
from padiff.adapters.autograd_graph import torch_grad_node, torch_node_inputs
from padiff.adapters.hooks import HookSet
from padiff.compare.keyed import reorder_like
from padiff.runtime.engine.comparisons import Comparer, compares_output
from padiff.runtime.engine.dataflow import Dataflow
from padiff.runtime.engine.fused_calls import FusedComparisons
from padiff.runtime.engine.pairs import PairsSeen
from padiff.runtime.engine.passes import Pass
from padiff.runtime.engine.recording import SideRecorder
from padiff.runtime.grad_exchange import GradExchange
from padiff.runtime.pairing import Event, OnlinePairer


class TorchForward:
    """Installs torch's hooks for one pass."""

    def __init__(self, rec: SideRecorder, comparer: Comparer, fused: FusedComparisons, seen: PairsSeen) -> None:
        self.rec = rec
        self.cmp = comparer
        self.fused = fused
        self.seen = seen
        self.dataflow = Dataflow()  # which compared call reads which one's output (this pass)

    def install(self, hooks: HookSet, ps: Pass, pairer: OnlinePairer, exchange: GradExchange) -> None:
        """Hook torch's layers: pair each call, compare its outputs, hook its output gradients."""
        self.dataflow = flow = Dataflow(torch_grad_node, torch_node_inputs)
        versions: dict[int, int] = {}  # compared call -> its layer's buffer versions when it started

        def before(ev: Event, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            flow.enter(TORCH.flatten((args, kwargs)))
            pev = pairer.match(ev)
            ev.partner = pev
            if pev is None:
                return None
            pev.partner = ev
            self.seen.note(pev, ev)
            if ps.compare_forward and compares_output(pev, ev) and not (ev.role.pair and ev.role.pair.split_side):
                flow.set_key((self.cmp.sink.step, pev.role.path, ev.role.path, ev.call))
                versions[id(ev)] = TORCH.state_version(self.rec.layer_table()[ev.role.path])
            if ps.sync_inputs and pev.inputs:
                return replace_inputs(args, kwargs, pev.inputs)
            return None

        def after(ev: Event, args: tuple[Any, ...], out: Any) -> None:
            pev = ev.partner
            outs = TORCH.flatten(out if pev is None else reorder_like(out, pev.keys))
            ev.dtype = TORCH.dtype_name(outs[0]) if outs else ""
            ev.shapes = [TORCH.shape(t) for t in outs]
            flow.leave(outs)
            if pev is None:
                return
            started = versions.pop(id(ev), None)
            if started is not None and TORCH.state_version(self.rec.layer_table()[ev.role.path]) != started:
                flow.note_stateful((self.cmp.sink.step, pev.role.path, ev.role.path, ev.call))
            if ev.role.pair is not None and ev.role.pair.split_side:
                self.fused.after_torch_call(hooks, ps, pev, ev, outs)
                return
            if ps.compare_forward and compares_output(pev, ev):
                self.cmp.outputs("forward", pev, ev, pev.outputs or [], [TORCH.host_view(t) for t in outs])
            pev.outputs = None
            pev.inputs = None
            if ps.backward:
                self.rec.hook_output_grads(hooks, ev, outs, lambda i, t: self._grad_checker(exchange, pev, ev, i, ps))

        self.rec.install(hooks, before, after)

    def release_dataflow(self) -> None:
        """Forget the pass's dataflow (its consumers were handed on): it keeps autograd nodes alive."""
        self.dataflow.clear()

    def _grad_checker(self, exchange: GradExchange, pev: Event, tev: Event, i: int, ps: Pass) -> Callable[[Any], Any]:
        """Torch's gradient of output ``i`` against paddle's, taken from the exchange (waiting for it if needed)."""
        def check(grad: Any) -> Any:
            p_i = paddle_index(tev, i)
            if p_i is None:
                return None  # an output only torch returns: compared in neither pass
            p_grad = exchange.take(pev.grads, p_i, p_i in pev.grad_hooked)
            if p_grad is None:
                return None
            if ps.compare_backward and compares_output(pev, tev):
                self.cmp.output_grad(pev, tev, p_i, p_grad, TORCH.host_view(grad))
            if ps.sync_grads and p_grad.shape == TORCH.shape(grad):
                return TORCH.from_numpy(p_grad, like=grad)
            return None

        return self.rec.errors.guard(check)


def paddle_index(tev: Event, i: int) -> int | None:
    """The paddle output that torch output ``i`` was compared with in forward (None: with none)."""
    if tev.items is None:
        return i
    return next((p for p, t in tev.items if t == i), None)


def replace_inputs(args: tuple[Any, ...], kwargs: dict[str, Any],
                   paddle_inputs: list[np.ndarray]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """Torch's call arguments with each float tensor replaced by paddle's input of the same shape.

    None (keep torch's own) when the two calls do not take the same number of tensors.
    """
    tensors = TORCH.flatten((args, kwargs))
    if len(tensors) != len(paddle_inputs):
        return None
    replacements = {}
    for t, arr in zip(tensors, paddle_inputs):
        if TORCH.is_floating(t) and TORCH.shape(t) == arr.shape:
            replacements[id(t)] = TORCH.from_numpy(arr, like=t)

    def swap(t: Any) -> Any:
        return replacements.get(id(t), t)

    return TORCH.map_tensors(args, swap), TORCH.map_tensors(kwargs, swap)
