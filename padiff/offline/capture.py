"""What the Recorder captures from one model during one step: the per-side event capture.

Kept apart from :mod:`padiff.offline.recorder` (which owns the run folder) so the capture can be
shared with, or replaced by, another per-side recorder: it turns hooks on one model into
entries keyed by stage, layer path, call index, item and micro-step, and nothing else.
It talks to the model only through the framework adapter (:mod:`padiff.adapters`).

Framework conventions (:mod:`padiff.compare.conventions`) are observed here too: on a paddle
model, every training-mode BatchNorm call adds its batch variance to a
:class:`~padiff.compare.conventions.BatchNormVariance` that lives as long as the Recorder, so
each recorded running variance can also be stored as torch's convention gives it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from padiff.adapters.hooks import HookSet
from padiff.compare.conventions import BatchNormVariance
from padiff.offline import fmt
from padiff.offline.shards import local_shard
from padiff.offline.tensor_file import to_stored
from padiff.runtime.engine.recording import HookErrors, SideRecorder
from padiff.runtime.pairing import Event

#: suffix of the key under which a running variance in torch's convention is stored
UNBIASED_SUFFIX = "#torch-convention"
#: skeleton flag of a layer whose running variance follows torch's (unbiased) convention
UNBIASED_VARIANCE = "batchnorm_unbiased_variance"


class StepCapture:
    """What one step has recorded so far (kept in memory until the step ends)."""

    def __init__(self, step: int, keep_tensors: bool) -> None:
        self.step = step
        self.keep_tensors = keep_tensors
        self.micro = -1
        self.errors = HookErrors()  # the first error inside a recording hook, raised when the step ends
        self.call_order: list[str] = []
        self.opened: list[tuple[int, str, int]] = []  # (open index, path, call) of the first micro-step's calls
        self.digests: list[str] = []
        self.entries: list[dict[str, Any]] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.dtypes: dict[str, str] = {}
        self.grads: dict[tuple[str, str, str], tuple[np.ndarray, str, dict[str, Any] | None]] = {}
        self.root_call: tuple[tuple, dict] | None = None  # the first root call's arguments (for the graph)

    def add(self, stage: str, path: str, cls: str, call: int, item: str, micro: int, arr: np.ndarray,
            dtype: str, placement: dict[str, Any] | None = None) -> dict[str, Any]:
        """Add one entry (and its tensor at level ``full``); returns the entry. ``placement``: how a
        tensor-parallel shard sits in the whole tensor (:mod:`padiff.offline.shards`)."""
        key = fmt.entry_key(stage, path, call, item, micro)
        arr = np.asarray(arr)
        entry = {"key": key, "stage": stage, "path": path, "cls": cls, "call": call, "item": item, "micro": micro,
                 "shape": list(arr.shape), "dtype": dtype, "stats": fmt.tensor_stats(arr)}
        if placement is not None:
            entry["placement"] = placement
        self.entries.append(entry)
        self.keep(key, arr, dtype)
        return entry

    def keep(self, key: str, arr: np.ndarray, dtype: str) -> None:
        """Keep a tensor under ``key`` (level ``full`` only), in its own dtype (the adapter widened halves).

        ``arr`` is kept as it is, not copied: it is either padiff's own host copy (outputs, gradients)
        or a view of a parameter that the step's end writes before the user's code runs again.
        """
        if self.keep_tensors:
            self.tensors[key] = to_stored(arr, dtype, copy=False)
            self.dtypes[key] = dtype

    def accumulate(self, path: str, cls: str, name: str, g: np.ndarray, dtype: str,
                   placement: dict[str, Any] | None = None) -> None:
        """Sum one backward pass's gradient of a parameter into the step's (as the framework accumulates)."""
        key = (path, cls, name)
        if key not in self.grads:
            self.grads[key] = (g, dtype, placement)  # ``g`` is a host copy of its own (see ``host``)
            return
        prev = self.grads[key][0]
        if prev.shape == g.shape and np.result_type(prev, g) == prev.dtype and prev.flags.writeable:
            np.add(prev, g, out=prev)  # summed in place: no second copy of every gradient per micro-step
        else:
            self.grads[key] = (prev + g, dtype, placement)


class Capture:
    """Hooks that fill a :class:`StepCapture` from one model (``layers``: the selected paths, or all)."""

    def __init__(self, side: Any, model: Any, layers: set[str] | None) -> None:
        self.side, self.model, self.layers = side, model, layers
        self.paths: dict[int, tuple[str, str]] = {}
        for path, lay in side.named_layers(model):
            self.paths.setdefault(id(lay), (path, type(lay).__name__))
        self.cls_of = {p: c for p, c in self.paths.values()}
        self.batchnorm = BatchNormVariance()  # d = 0: both sides start from the same statistics

    def selected(self, path: str) -> bool:
        """Whether the layer at ``path`` is recorded."""
        return self.layers is None or path in self.layers

    def layer_flags(self, layer: Any) -> list[str]:
        """Conventions a layer follows that the other framework's run needs to know (for the skeleton)."""
        unbiased = getattr(self.side, "is_unbiased_batchnorm", None)
        return [UNBIASED_VARIANCE] if callable(unbiased) and unbiased(layer) else []

    # --- hooks --------------------------------------------------------------------------------
    def install_conventions(self) -> list[Any]:
        """Hooks observing paddle BatchNorm calls (also on steps not recorded: the correction runs on)."""
        side, handles = self.side, []
        update_of = getattr(side, "batchnorm_update", None)
        if not callable(update_of):
            return handles
        for path, lay in side.named_layers(self.model):
            if self.paths.get(id(lay), ("",))[0] != path or not _is_batchnorm(update_of, lay):
                continue

            def post(layer: Any, args: tuple, _out: Any, path: str = path) -> None:
                update = update_of(layer)
                xs = side.flatten(args)
                if update is not None and xs:
                    self.batchnorm.observe_variance(path, update, *side.channel_variance(xs[0], update.channel_axis))
            handles.append(side.add_post_hook(lay, post))
        return handles

    def install(self, st: StepCapture) -> HookSet:
        """Every hook of a recorded step: root inputs, layer outputs and their grads, parameter grads.

        Layer calls go through the engine's per-side event recording (call index per path and
        micro-step, a shared layer under its first path); a hook that fails keeps its error in
        ``st.errors`` (raised when the step ends) instead of breaking the user's forward."""
        side, hooks = self.side, HookSet()
        events = SideRecorder.every_layer(side, self.model, st.errors, stacks=False)

        def pre_root(_lay: Any, args: tuple, kwargs: dict) -> None:
            if st.root_call is None:
                st.root_call = (args, dict(kwargs))
            st.micro += 1
            events.reset()  # call indices count per micro-step
            h = hashlib.sha256()
            for t in side.flatten((args, kwargs)):
                a = np.ascontiguousarray(side.host_view(t))  # hashed at once: a view will do
                h.update(str(a.shape).encode())
                h.update(a.reshape(-1).view(np.uint8) if a.size else b"")
            st.digests.append(h.hexdigest()[:16])
            return None

        def after(ev: Event, _args: tuple, out: Any) -> None:
            path, cls, call = ev.role.path, ev.role.cls, ev.call
            if st.micro == 0 and call == 0:
                st.call_order.append(path)
            if st.micro == 0:
                st.opened.append((ev.index, path, call))
            if not self.selected(path):
                return
            micro = max(st.micro, 0)
            outs = side.flatten(out)
            for k, t in enumerate(outs):
                st.add("forward", path, cls, call, f"out[{k}]", micro, *host(side, t, view=not st.keep_tensors))

            def on_grad(k: int, _t: Any) -> Callable[[Any], None]:
                return _grad_recorder(st, side, path, cls, call, f"out[{k}]", micro)

            events.hook_output_grads(hooks, ev, outs, on_grad)

        # the root's own pre-hook first: a new micro-step starts before the root's call is recorded
        hooks.add(side.add_pre_hook(self.model, st.errors.guard(pre_root)))
        events.install(hooks, after=after)  # output gradient hooks join ``hooks`` as the step runs
        for path, entries in side.owned_state(self.model).items():
            if not self.selected(path):
                continue
            for e in entries:
                if e.trainable and not e.is_buffer:
                    fn = _pgrad_recorder(st, side, path, self.cls_of.get(path, ""), e.name)
                    hooks.add(side.add_grad_hook(e.tensor, st.errors.guard(fn)))
        for h in self.install_conventions():
            hooks.add(h)
        return hooks

    def finish(self, st: StepCapture) -> None:
        """Add the step's summed parameter grads and the values of every parameter and buffer after it."""
        side = self.side
        for (path, cls, name), (g, dt, placement) in st.grads.items():
            st.add("grad", path, cls, 0, name, 0, g, dt, placement)
        for path, entries in side.owned_state(self.model).items():
            if not self.selected(path):
                continue
            cls = self.cls_of.get(path, "")
            for e in entries:
                item = f"buffer:{e.name}" if e.is_buffer and not e.trainable else e.name
                value, dtype, placement = host(side, e.tensor, view=True)  # written before the user's code runs on
                entry = st.add("weight", path, cls, 0, item, 0, value, dtype, placement)
                fixed = self.batchnorm.corrected(path, e.name, value)
                if fixed is not None:  # the same value as torch's unbiased convention would hold it
                    key = entry["key"] + UNBIASED_SUFFIX
                    entry["torch_convention"] = {"key": key, "stats": fmt.tensor_stats(fixed)}
                    st.keep(key, fixed, dtype)


def host(side: Any, t: Any, view: bool = False) -> tuple[np.ndarray, str, dict[str, Any] | None]:
    """``t`` on the host (its local shard when distributed), its dtype name and its placement.

    ``view``: the array may share the tensor's memory (no copy on a CPU tensor), for a tensor
    whose statistics are taken and whose values are written before the framework can change it;
    otherwise it is a host copy of padiff's own.
    """
    local, placement = local_shard(side.name, t)
    return (side.host_view(local) if view else side.to_numpy(local)), side.dtype_name(local), placement


def _is_batchnorm(update_of: Callable[[Any], Any], layer: Any) -> bool:
    """Whether ``layer`` is a BatchNorm the adapter knows (whatever its mode right now)."""
    was = layer.training
    try:
        layer.training = True
        return update_of(layer) is not None
    finally:
        layer.training = was


def _grad_recorder(st: StepCapture, side: Any, path: str, cls: str, call: int, item: str,
                   micro: int) -> Callable[[Any], None]:
    def on_grad(g: Any) -> None:
        if g is not None:
            st.add("backward", path, cls, call, item, micro, *host(side, g, view=not st.keep_tensors))
    return on_grad


def _pgrad_recorder(st: StepCapture, side: Any, path: str, cls: str, name: str) -> Callable[[Any], None]:
    def on_pgrad(g: Any) -> None:
        if g is not None:
            st.accumulate(path, cls, name, *host(side, g))
    return on_pgrad
