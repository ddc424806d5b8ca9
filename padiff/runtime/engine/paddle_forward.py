"""Paddle's forward in a pass: its layer calls recorded, their outputs kept for torch to compare.

Paddle runs first, so what torch compares later must be kept. Outputs are kept by
reference into paddle's memory, which costs nothing while paddle's graph holds them anyway,
until a forward is found writing one in place (``x[...] =``, ``relu_``, ``add_`` on a
returned output): then the forward runs again keeping host copies, for the rest of the
run, and the state that forward updates a second time (running statistics) is put back
to what one forward left. The output gradients paddle's backward produces are handed to
torch's hooks through a :class:`~padiff.runtime.grad_exchange.GradExchange`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from padiff.adapters import PADDLE
from padiff.adapters.hooks import HookSet
from padiff.compare.conventions import BatchNormVariance
from padiff.compare.keyed import key_skeleton
from padiff.runtime.engine.passes import Pass
from padiff.runtime.engine.recording import SideRecorder
from padiff.runtime.grad_exchange import GradExchange, make_recorder
from padiff.runtime.pairing import Event


class PaddleForward:
    """Keeps what paddle's forward produced, for the pass that is running."""

    def __init__(self, rec: SideRecorder, batchnorm: BatchNormVariance) -> None:
        self.rec = rec
        self.bn = batchnorm
        self.by_copy = False  # set for good once a paddle output was found written in place
        self.refs: list[Any] = []  # host_ref tokens of the paddle tensors kept in this pass
        self.grad_bytes = 0  # output gradients this pass will record (float32 host copies)

    def install(self, hooks: HookSet, ps: Pass, exchange: GradExchange, track_batchnorm: bool) -> None:
        """Hook paddle's layers for this pass (and its BatchNorms, to reconcile their running variance)."""
        self.grad_bytes = 0

        def before(ev: Event, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if ps.sync_inputs:
                ev.inputs = [self.keep(t) for t in PADDLE.flatten((args, kwargs))]

        def after(ev: Event, args: tuple[Any, ...], out: Any) -> None:
            outs = PADDLE.flatten(out)
            ev.keys = key_skeleton(out)
            if ps.compare_forward:
                ev.outputs = [self.keep(t) for t in outs]
            ev.dtype = PADDLE.dtype_name(outs[0]) if outs else ""
            ev.shapes = [PADDLE.shape(t) for t in outs]
            if ps.backward:
                self.rec.hook_output_grads(hooks, ev, outs, lambda i, t: self._grad_recorder(exchange, ev, i, t))

        self.rec.install(hooks, before, after)
        if track_batchnorm:
            self._hook_batchnorms(hooks)

    def _grad_recorder(self, exchange: GradExchange, ev: Event, i: int, t: Any) -> Callable[[Any], None]:
        self.grad_bytes += PADDLE.numel(t) * 4
        return make_recorder(exchange, ev.grads, i, PADDLE.to_numpy)

    def _hook_batchnorms(self, hooks: HookSet) -> None:
        """Watch every BatchNorm's training-mode calls, for :class:`BatchNormVariance`."""
        for path, layer in PADDLE.named_layers(self.rec.root):
            if PADDLE.batchnorm_update(layer) is None:
                continue

            def post(lay: Any, args: tuple[Any, ...], out: Any, path: str = path) -> None:
                update = PADDLE.batchnorm_update(lay)
                xs = PADDLE.flatten(args)
                if update is not None and xs:
                    self.bn.observe_variance(path, update, *PADDLE.channel_variance(xs[0], update.channel_axis))

            hooks.add(PADDLE.add_post_hook(layer, self.rec.errors.guard(post)))

    def run(self, forward_once: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
        """``forward_once()`` (the model and its loss), run again keeping copies if an output was written in place."""
        self.bn.begin_pass()
        p_out, p_loss = self._once(forward_once)
        if not any(PADDLE.changed(tok) for tok in self.refs):
            return p_out, p_loss
        del p_out, p_loss
        self.bn.restart_pass()
        self.release()
        self.by_copy = True
        after_one = [(e.tensor, PADDLE.to_numpy(e.tensor)) for entries in self.rec.owned.values() for e in entries
                     if not e.trainable]
        p_out, p_loss = self._once(forward_once)
        for t, arr in after_one:
            PADDLE.set_value(t, arr)
        return p_out, p_loss

    def _once(self, forward_once: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
        self.rec.reset()
        self.refs = []
        return forward_once()

    def keep(self, t: Any) -> np.ndarray:
        """A host array of ``t`` for later: by reference while that is safe, else a copy."""
        if self.by_copy:
            return PADDLE.to_numpy(t)
        arr, token = PADDLE.host_ref(t)
        if token is not None:
            self.refs.append(token)
        return arr

    def copy_refs(self) -> None:
        """Host copies of the tensors kept by reference, so they outlive paddle's graph (its backward ran)."""
        if not self.refs:
            return
        for ev in self.rec.events:
            for kept in (ev.outputs, ev.inputs):
                if kept:
                    kept[:] = [a if a.flags.writeable else np.array(a) for a in kept]
        self.refs = []

    def release(self) -> None:
        """Drop what is still kept of paddle's forward (layers torch never paired)."""
        for ev in self.rec.events:
            ev.outputs = ev.inputs = None
        self.refs = []
