"""The float64 reference of ``compare_mode="calibrated"``: another feeder, keyed like torch's records.

Before each step, a float64 copy of the torch model (:mod:`padiff.adapters.torch_reference`)
runs the same forward, loss and backward with the same hooks. Its layer outputs and output
gradients are kept under the torch records' own keys (layer path, call index, output index in
torch's flatten order, reordered by the paddle dict keys exactly as torch's are), with the
model output, the loss and the input gradients. Its parameters stay in the copy: their
gradients are read after backward, their values after the copy's own optimizer (same class and
settings) has stepped. A look-up that finds nothing says why (:class:`Ref`), and the record
falls back to the ``mean`` verdict saying so. The user's model is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from padiff.adapters import TORCH, nested
from padiff.adapters.hooks import HookSet
from padiff.adapters.torch_reference import float64_copy, float64_inputs, mirror_optimizer
from padiff.compare.keyed import reorder_like
from padiff.compare.projection import projection
from padiff.runtime.engine import calls
from padiff.runtime.engine.recording import HookErrors, SideRecorder
from padiff.runtime.pairing import Event, Role


@dataclass(frozen=True)
class Ref:
    """A reference array, or why there is none."""

    array: np.ndarray | None
    why: str = ""
    allowance: float = 0.0  # an error the frameworks' conventions explain (see ReferenceRun.decay_allowance)
    magnitude: float = 0.0  # the size of the terms a cancelling sum was made of (the built-in loss)


@dataclass(frozen=True)
class _Leaf:
    index: int


@dataclass
class _Call:
    leaves: list[np.ndarray]
    struct: Any  # the output with each tensor replaced by its _Leaf (for reordering by key)
    grads: dict[int, np.ndarray] = field(default_factory=dict)

    def order(self, keys: Any) -> list[int]:
        """Raw output indices in the order torch's outputs are compared (by paddle's dict keys)."""
        return [leaf.index for leaf in nested.flatten(reorder_like(self.struct, keys), lambda x: isinstance(x, _Leaf))]


def _host64(t: Any) -> np.ndarray:
    return np.asarray(TORCH.to_numpy(t), dtype=np.float64)


class ReferenceRun:
    """The float64 copy of the torch model and what its run of the current step produced."""

    def __init__(self, module: Any, inputs: Mapping[str, Any], roles: Mapping[str, Role],
                 loss_fn: Callable[[Any], Any] | None, optimizer: Any | None) -> None:
        self.stale = ""  # set once the copy's weights no longer follow the user's (no optimizer to mirror)
        try:
            self.twin = float64_copy(module)
            self.inputs = float64_inputs(inputs)
        except Exception as e:  # noqa: BLE001 - a model deepcopy cannot copy: every record falls back, saying so
            self.twin, self.inputs = module, dict(inputs)  # never run: ``stale`` stops every step
            self.stale = f"the torch model could not be copied to float64: {_short(e)}"
        self.errors = HookErrors()
        self.rec = SideRecorder(TORCH, self.twin, roles, TORCH.owned_state(self.twin), self.errors, stacks=False)
        self.loss_fn = loss_fn
        self.opt, self.opt_why = (mirror_optimizer(optimizer, module, self.twin)
                                  if optimizer is not None and not self.stale else (None, self.stale or "no optimizer"))
        self.calls: dict[tuple[str, int], _Call] = {}
        self.model_out: _Call | None = None
        self.loss: np.ndarray | None = None
        self.loss_magnitude = 0.0  # the built-in loss: sum |w * out|, the scale its rounding is at
        self.why = ""  # why this step has no reference at all ("" when the copy ran)
        self.why_backward = ""  # why it has no gradients
        self.decay_allowance: dict[int, float] = {}  # id(copy's parameter) -> lr * weight_decay * mean |update|

    # --- running --------------------------------------------------------------------------
    def run_step(self, step: int, backward: bool) -> None:
        """Forward (and backward) of the copy for ``step``; a failure is kept as the reason, not raised."""
        self.calls, self.model_out, self.loss = {}, None, None
        self.why = self.stale
        self.why_backward = "" if backward else "no backward"
        if self.why:
            return
        TORCH.clear_grads(self.twin)
        for t in TORCH.flatten(self.inputs):
            if TORCH.requires_grad(t):
                TORCH.set_grad(t, None)
        self.rec.reset()
        with HookSet() as hooks:
            self.rec.install(hooks, after=lambda ev, args, out: self._after(hooks, ev, out, backward))
            TORCH.seed(0)
            try:
                out = calls.call_model(self.rec, self.inputs, "forward", step)
                self.errors.raise_pending()
            except Exception as e:  # noqa: BLE001 - the copy failing only means no reference from here on
                self.why = f"the float64 copy of the torch model could not run: {_short(e)}"
                self.errors.first = None
                return
            self.model_out = self._keep(out)
            try:
                loss, _ = calls.compute_loss(TORCH, out, self.loss_fn, 1, step)
            except Exception as e:  # noqa: BLE001
                self.why_backward = f"the loss could not be computed in float64: {_short(e)}"
                return
            if loss is None:
                self.why_backward = "no loss"
                return
            self.loss = _host64(loss)
            self.loss_magnitude = _projection_magnitude(out) if self.loss_fn is None else 0.0
            if not backward:
                return
            try:
                calls.run_backward(TORCH, loss, step)
                self.errors.raise_pending()
            except Exception as e:  # noqa: BLE001
                self.why_backward = f"the float64 copy's backward failed: {_short(e)}"
                self.errors.first = None

    def _after(self, hooks: HookSet, ev: Event, out: Any, backward: bool) -> None:
        kept = self._keep(out)
        self.calls[(ev.role.path, ev.call)] = kept
        if backward:
            def make_hook(i: int, t: Any) -> Callable[[Any], None]:
                def hook(grad: Any) -> None:
                    kept.grads[i] = _host64(grad)
                return hook

            self.rec.hook_output_grads(hooks, ev, TORCH.flatten(out), make_hook)

    def _keep(self, out: Any) -> _Call:
        tensors = TORCH.flatten(out)
        index = {id(t): i for i, t in enumerate(tensors)}
        return _Call([_host64(t) for t in tensors], TORCH.map_tensors(out, lambda t: _Leaf(index[id(t)])))

    def optimizer_step(self) -> None:
        """The copy's optimizer steps (its gradients then cleared); without one the copy goes stale."""
        if self.opt is None:
            self.stale = f"no float64 reference after the first optimizer step: {self.opt_why}"
            return
        if self.why or self.why_backward:
            self.stale = "no float64 reference after a step the float64 copy could not run"
            return
        opt = self.opt
        self.decay_allowance = step_with_allowance(opt, lambda: TORCH.step_optimizer(opt))

    # --- look-ups -------------------------------------------------------------------------
    def output(self, path: str, call: int, keys: Any, i: int) -> Ref:
        """Output ``i`` (torch's compared order) of call ``call`` of the layer at ``path``."""
        c = self.calls.get((path, call))
        if c is None:
            return Ref(None, self.why or "the float64 copy did not make this call")
        order = c.order(keys)
        return Ref(c.leaves[order[i]]) if i < len(order) else Ref(None, "the float64 copy returned fewer tensors")

    def output_grad(self, path: str, call: int, keys: Any, i: int) -> Ref:
        """The gradient reaching output ``i`` (torch's compared order) of that call."""
        c = self.calls.get((path, call))
        if c is None or self.why or self.why_backward:
            return Ref(None, self.why or self.why_backward or "the float64 copy did not make this call")
        order = c.order(keys)
        g = c.grads.get(order[i]) if i < len(order) else None
        return Ref(g, "" if g is not None else "no gradient reached this output in the float64 copy")

    def model_output(self, keys: Any, i: int) -> Ref:
        """The model's own output ``i``."""
        if self.model_out is None:
            return Ref(None, self.why)
        order = self.model_out.order(keys)
        return Ref(self.model_out.leaves[order[i]]) if i < len(order) else Ref(None, "fewer outputs in float64")

    def loss_ref(self) -> Ref:
        """The loss of the copy."""
        return Ref(self.loss, "" if self.loss is not None else (self.why or self.why_backward),
                   magnitude=self.loss_magnitude)

    def input_grad(self, i: int) -> Ref:
        """The gradient of the ``i``-th leaf input that requires grad."""
        if self.why or self.why_backward:
            return Ref(None, self.why or self.why_backward)
        leaves = [t for t in TORCH.flatten(self.inputs) if TORCH.requires_grad(t) and TORCH.is_leaf(t)]
        g = TORCH.grad(leaves[i]) if i < len(leaves) else None
        return Ref(None if g is None else _host64(g), "" if g is not None else "no input gradient in float64")

    def params_why(self, grad: bool) -> str:
        """Why the copy's parameters are no reference now ("" when they are)."""
        if self.why:
            return self.why
        if grad:
            return self.why_backward
        return ""

    def weights_why(self) -> str:
        """Why the copy's values after the step are no reference ("" when they are)."""
        return self.stale


def step_with_allowance(opt: Any, step: Callable[[], None]) -> dict[int, float]:
    """Run ``step`` (the float64 copy's optimizer ``opt`` stepping) and return, per parameter id, the error
    the optimizers' weight-decay conventions explain in its value after the step.

    paddle's AdamW applies its decoupled weight decay in another order than torch's: the weights
    after a step differ by about ``lr * weight_decay * mean |update|``, which shows on weights near
    zero. Shared by the live reference run and the Recorder's (``reference="float64"``).
    """
    groups = [(g, [(p, _host64(p)) for p in g["params"]]) for g in opt.param_groups
              if g.get("weight_decay", 0) and g.get("lr", 0)]
    step()
    return {id(p): float(g["lr"]) * float(g["weight_decay"]) * float(np.mean(np.abs(_host64(p) - before)))
            for g, kept in groups for p, before in kept if before.size}


def _projection_magnitude(out: Any) -> float:
    """``sum_k sum |w_k * out_k|`` of padiff's built-in loss on ``out`` (see :func:`calls.builtin_loss`)."""
    floats = [t for t in nested.flatten(out, TORCH.is_tensor, by_key=True) if "float" in TORCH.dtype_name(t)]
    arrays = [_host64(t) for t in floats if TORCH.numel(t) > 0]
    return float(sum(np.sum(np.abs(projection(k, a.shape) * a)) for k, a in enumerate(arrays)))


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:200]}"
