"""Snapshot and restore of everything of the user's that a run may touch.

Modes (train/eval) of every layer, ``stop_gradient``/``requires_grad`` of parameters and
inputs, gradients the user already had, the non-trainable state a forward pass updates
(BatchNorm running statistics and step counters, every buffer whatever its dtype or
persistence) and the framework's global random state (runs seed it).
A training check (an optimizer was given) keeps the trained weights, as the user's
optimizers expect; everything else is put back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from padiff.adapters import Side


@dataclass
class SideSnapshot:
    """What one model looked like before the run."""

    side: Side
    root: Any
    modes: list[tuple[Any, bool]] = field(default_factory=list)
    flags: list[tuple[Any, bool]] = field(default_factory=list)
    grads: list[tuple[Any, Any]] = field(default_factory=list)
    stats: list[tuple[Any, np.ndarray]] = field(default_factory=list)
    values: list[tuple[Any, np.ndarray]] = field(default_factory=list)
    buffers: list[tuple[Any, str, Any, np.ndarray]] = field(default_factory=list)  # (layer, name, tensor, value)
    inputs: list[tuple[Any, bool, Any]] = field(default_factory=list)
    rng: Any = None  # the global random state: runs seed the frameworks

    @classmethod
    def take(cls, side: Side, root: Any, inputs: Any, keep_values: bool, grads: bool = True) -> SideSnapshot:
        """Record modes, flags, grads and running statistics (and all values if asked).

        ``grads=False``: the parameters' gradients are not kept (nor put back), for a caller that
        only runs forwards, which never change them: keeping them is a clone of a model's worth of
        gradients (2 GB at 0.5B parameters) when a run has left them.
        """
        snap = cls(side, root)
        snap.modes = [(layer, side.is_training(layer)) for _, layer in side.named_layers(root)]
        try:
            snap.rng = side.rng_state()
        except Exception:  # noqa: BLE001 - a framework without the API: nothing to restore
            snap.rng = None
        for entries in side.owned_state(root).values():
            for e in entries:
                if not e.is_buffer:
                    snap.flags.append((e.tensor, side.requires_grad(e.tensor)))
                    if grads:
                        g = side.grad(e.tensor)
                        snap.grads.append((e.tensor, None if g is None else _kept_grad(side, g)))
        snap._read_values(keep_values)
        for t in side.flatten(inputs):
            # a non-leaf has no .grad of its own (torch warns when asked)
            g = side.grad(t) if side.requires_grad(t) and side.is_leaf(t) else None
            snap.inputs.append((t, side.requires_grad(t), None if g is None else side.clone_detached(g)))
        return snap

    def _read_values(self, keep_values: bool) -> None:
        side, root = self.side, self.root
        self.values, self.stats, self.buffers = [], [], []
        for entries in side.owned_state(root).values():
            for e in entries:
                if keep_values:
                    self.values.append((e.tensor, side.to_numpy(e.tensor)))
                elif not e.trainable:
                    self.stats.append((e.tensor, side.to_numpy(e.tensor)))
        for _, layer in side.named_layers(root):
            # every buffer, whatever its dtype or persistence (num_batches_tracked, a non-persistent EMA)
            for name, b in side.own_buffers(layer):
                self.buffers.append((layer, name, b, side.to_numpy(b)))

    def with_values_now(self) -> SideSnapshot:
        """This snapshot with the values of the non-trainable state and buffers read again now.

        For a model whose values were just written on purpose (``auto_weights`` copies the weights
        and that state is the one to come back to), while its modes, flags, inputs, gradients and
        random state are still those taken first: the gradients are not cloned a second time (a
        0.5B model's gradients are 2 GB, cloned once per snapshot) and the random state stays the
        user's own.
        """
        snap = SideSnapshot(self.side, self.root, modes=self.modes, flags=self.flags, grads=self.grads,
                            inputs=self.inputs, rng=self.rng)
        snap._read_values(keep_values=bool(self.values))
        return snap

    def restore(self, values: bool = True, grads: bool = True) -> None:
        """Put modes, flags, inputs and (optionally) values and grads back; never raises."""
        side = self.side
        for layer, training in self.modes:
            _quiet(side.set_training, layer, training)
        for t, flag in self.flags:
            _quiet(side.set_requires_grad, t, flag)
        if grads:
            for t, g in self.grads:
                _quiet(_put_grad, side, t, g)
        if values:
            for t, arr in self.stats + self.values:
                _quiet(side.set_value, t, arr)
            for layer, name, t, arr in self.buffers:
                _quiet(side.put_buffer, layer, name, t)  # a forward that rebound the name gets the original back
                _quiet(side.set_value, t, arr)
        for t, flag, g in self.inputs:
            _quiet(side.set_requires_grad, t, flag)
            _quiet(side.set_grad, t, g)
        if self.rng is not None:
            _quiet(side.set_rng_state, self.rng)


@dataclass(frozen=True)
class ZeroGrad:
    """A gradient that held only zeros (as an optimizer's ``clear_grad`` leaves it): kept as its shape."""

    shape: tuple[int, ...]
    host_dtype: np.dtype


#: elements read first when checking a gradient for zeros: a non-zero one almost always shows there
_ZERO_PROBE = 4096


def _kept_grad(side: Side, g: Any) -> Any:
    """What to keep of the user's gradient ``g``: a clone, or :class:`ZeroGrad` when every bit is zero.

    Frameworks' ``clear_grad`` / ``clear_gradients`` leave zero-filled gradients by default; cloning
    them costs a model's worth of memory for the whole run (2 GB at 0.5B parameters) to put zeros
    back. The check reads the gradient's bits in place (so ``-0.0`` is kept as a clone).
    """
    view = side.host_view(g)
    if view.dtype.kind == "f" and view.size and view.flags.c_contiguous:
        bits = view.reshape(-1).view(f"u{view.dtype.itemsize}")
        if not bits[:_ZERO_PROBE].any() and not bits.any():
            return ZeroGrad(tuple(view.shape), view.dtype)
    del view
    return side.clone_detached(g)


def _put_grad(side: Side, t: Any, g: Any) -> None:
    """Store the kept gradient ``g`` on ``t``; a :class:`ZeroGrad` zeroes the gradient ``t`` has now in place."""
    if not isinstance(g, ZeroGrad):
        side.set_grad(t, g)
        return
    if side.grad(t) is not None and tuple(side.shape(side.grad(t))) == g.shape and side.zero_grad_in_place(t):
        return
    side.set_grad(t, None)  # no gradient of that shape now (a run that stopped early): a fresh zero one
    side.set_grad(t, side.from_numpy(np.zeros(g.shape, g.host_dtype), like=t))


def _quiet(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - restoring one item must not stop the others
        pass
