"""The float64 reference of a torch recording: ``padiff.Recorder(model, out, reference="float64")``.

``compare_runs(..., options={"compare_mode": "calibrated"})`` judges each paddle tensor against
a float64 run of the torch model, as the live ``compare`` does (see the README's calibrated
verdicts). Here the user's own loop drives that run, so the reference follows it call by call:

- the float64 copy (:func:`padiff.adapters.torch_reference.float64_copy`, made when the first
  recorded step begins; the user's model is never touched) runs each root call of the user's
  model on the same inputs cast to float64, right after it, with the random state the user's
  call started from (the same dropout masks) and the same train/eval modes;
- its backward runs after the user's: from ``fn(copy's output)`` when the user gave the loss as a
  function of the output (``rec.loss(loss, fn=...)``), else from torch's own gradient at the model
  output cast to float64. The copy's gradients are cleared where the user's were (``zero_grad``);
- every ``torch.optim`` optimizer stepping the model's parameters is observed (a step pre-hook; the
  user's optimizer is left as it is) and an optimizer of the same class, settings and state steps
  the copy (:func:`padiff.adapters.torch_reference.mirror_optimizer`, shared with the live run);
- its layer outputs, output gradients, parameter gradients (summed over the step's backward
  passes), values after the step and loss are kept under the recorded entries' own keys
  (:func:`padiff.offline.fmt.entry_key`), the layer calls counted as the recording counts them
  (:class:`~padiff.runtime.engine.recording.SideRecorder`).

What cannot be followed is said per entry (``reference_why``) and the comparison falls back to the
``mean`` verdict for it, saying so: a copy that cannot run, weights changed outside an optimizer step,
an optimizer that cannot be rebuilt, gradients averaged across data-parallel ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from padiff.adapters import TORCH
from padiff.adapters.hooks import HookSet
from padiff.adapters.torch_reference import (
    backward_from,
    backward_loss,
    float64_copy,
    float64_inputs,
    follow_cleared_grads,
    follow_modes,
    mirror_optimizer,
    on_optimizer_step,
    optimizer_params,
    parameter_pairs,
    versions,
)
from padiff.offline import fmt
from padiff.runtime.engine.recording import HookErrors, SideRecorder
from padiff.runtime.engine.reference import step_with_allowance
from padiff.runtime.pairing import Event

#: the only reference a Recorder can run
REFERENCES = ("float64",)


@dataclass
class _Call:
    """One root call of the copy: its output, the gradients torch's output received, its loss."""

    micro: int
    out: Any
    outs: list[Any]
    seeds: dict[int, Any] = field(default_factory=dict)
    loss: Any = None


def _host64(t: Any) -> np.ndarray:
    return np.asarray(TORCH.to_numpy(t), dtype=np.float64)


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:200]}"


class ReferenceRecorder:
    """The float64 copy of one torch model, run alongside the user's loop; one step's tensors at a time."""

    def __init__(self, model: Any, selected: Callable[[str], bool], world_size: int) -> None:
        self.model = model
        self.selected = selected
        self.twin: Any = None
        self.stale = ""  # once set, no reference from here on (the copy no longer follows the user's model)
        self.weights_why = ""  # why the values after this step have no reference
        self.ranks_why = ("gradients are averaged across the data-parallel ranks, which the float64 copy of one "
                          "rank does not do") if world_size > 1 else ""
        self.errors = HookErrors()
        self.rec: SideRecorder | None = None
        self.pairs: list[tuple[Any, Any]] = []
        self.opts: list[tuple[Any, Any, str]] = []  # (user's optimizer, the copy's or None, why not)
        self.allowance: dict[int, float] = {}  # id(copy's parameter) -> error explained by weight decay
        self._opt_hook: Any = None
        self._grad_keys: dict[int, list[str]] = {}  # id(copy's parameter) -> its grad entry keys
        self._versions: list[int] = []
        self._stepped = False  # an optimizer step was mirrored since the versions were taken
        # the current step
        self.recording = False
        self.keep_tensors = True  # level "full": the tensors are written; "stats": only their statistics
        self.arrays: dict[str, np.ndarray] = {}
        self.summaries: dict[str, tuple[list[int], list[float]]] = {}  # key -> (shape, statistics) at level stats
        self.extra: dict[str, dict[str, float]] = {}
        self.why = ""  # why this step has no reference
        self.why_backward = ""
        self.loss_why = ""
        self.micro = -1
        self.calls: list[_Call] = []
        self.tensor_hooks = HookSet()
        self._inputs: Any = None
        self._rng: Any = None

    # --- the copy ---------------------------------------------------------------------------------
    def start(self, recording: bool, keep_tensors: bool = True) -> None:
        """A step begins (``recording``: its entries get references; ``keep_tensors``: level ``full``, the
        tensors are kept, else only their statistics); the copy is made at the first recorded step."""
        if self.twin is None and not self.stale:
            try:
                self.twin = float64_copy(self.model)
            except Exception as e:  # noqa: BLE001 - a model deepcopy cannot copy: every entry falls back, saying so
                self.stale = f"the torch model could not be copied to float64: {_short(e)}"
            else:
                self.rec = SideRecorder.every_layer(TORCH, self.twin, self.errors, stacks=False)
                self.rec.install(HookSet(), after=self._after)  # hooks on padiff's own copy: they stay
                self.pairs = parameter_pairs(self.model, self.twin)
                self._versions = versions([p for p, _ in self.pairs])
                for path, entries in TORCH.owned_state(self.twin).items():
                    for e in entries:
                        if e.trainable and not e.is_buffer:
                            key = fmt.entry_key("grad", path, 0, e.name, 0)
                            self._grad_keys.setdefault(id(e.tensor), []).append(key)
                            TORCH.add_grad_hook(e.tensor, self.errors.guard(self._param_grad(key)))
                self._opt_hook = on_optimizer_step(self._on_optimizer_step)
        self.recording, self.keep_tensors = recording, keep_tensors
        self.arrays, self.summaries, self.extra, self.calls = {}, {}, {}, []
        self.why, self.why_backward, self.loss_why, self.weights_why = self.stale, "", "", ""
        self.micro = -1
        self.tensor_hooks = HookSet()

    def close(self) -> None:
        """Stop following the user's loop (the optimizer hook is removed, the copy released)."""
        if self._opt_hook is not None:
            self._opt_hook.remove()
            self._opt_hook = None
        self.twin, self.rec, self.pairs, self.opts, self.calls = None, None, [], [], []
        self.stale = self.stale or "the recording was closed"

    def install(self, hooks: HookSet) -> None:
        """Hooks on the user's root layer (removed with ``hooks`` when the step ends)."""
        if self.twin is None:
            return
        hooks.add(TORCH.add_pre_hook(self.model, self.errors.guard(self._pre_root)))
        hooks.add(TORCH.add_post_hook(self.model, self.errors.guard(self._post_root)))

    def _pre_root(self, _lay: Any, args: tuple, kwargs: dict) -> None:
        self.flush(everything=False)
        self._check_versions()
        self.micro += 1
        self._rng = TORCH.rng_state()
        self._inputs = float64_inputs({"args": args, "kwargs": kwargs}) if not self.why else None
        return None

    def _post_root(self, _lay: Any, _args: tuple, out: Any) -> None:
        if self.why or self._inputs is None or self.rec is None:
            return
        after = TORCH.rng_state()
        TORCH.set_rng_state(self._rng)  # the same random draws as the user's call (dropout masks)
        try:
            follow_modes(self.model, self.twin)
            self.rec.reset()  # call indices count per micro-step, as the recording counts them
            twin_out = self.twin(*self._inputs["args"], **self._inputs["kwargs"])
            self.errors.raise_pending()
        except Exception as e:  # noqa: BLE001 - the copy failing only means no reference from here on
            self.errors.first = None
            self.why = self.stale = f"the float64 copy of the torch model could not run: {_short(e)}"
            return
        finally:
            TORCH.set_rng_state(after)
            self._inputs = None
        call = _Call(self.micro, twin_out, TORCH.flatten(twin_out))
        self.calls.append(call)
        for i, t in enumerate(TORCH.flatten(out)):
            if TORCH.carries_grad(t):
                self.tensor_hooks.add(TORCH.add_grad_hook(t, self.errors.guard(self._seed(call, i))))

    def _seed(self, call: _Call, i: int) -> Callable[[Any], None]:
        def hook(grad: Any) -> None:
            if not call.seeds:  # the user's backward reaches the model now: its gradients are as zero_grad left them
                follow_cleared_grads(self.pairs)
            if grad is not None:
                call.seeds[i] = grad.detach().clone()
        return hook

    def _after(self, ev: Event, _args: tuple, out: Any) -> None:
        """A layer call of the copy: keep its outputs under the recording's keys; hook their gradients."""
        path = ev.role.path
        if not self.recording or not self.selected(path) or self.rec is None:
            return
        micro = self.micro
        outs = TORCH.flatten(out)
        for k, t in enumerate(outs):
            self._keep(fmt.entry_key("forward", path, ev.call, f"out[{k}]", micro), _host64(t))

        def make_hook(k: int, _t: Any) -> Callable[[Any], None]:
            key = fmt.entry_key("backward", path, ev.call, f"out[{k}]", micro)

            def hook(g: Any) -> None:
                if g is not None:
                    self._keep(key, _host64(g))
            return hook

        self.rec.hook_output_grads(self.tensor_hooks, ev, outs, make_hook)

    def _keep(self, key: str, arr: np.ndarray) -> None:
        """The reference of one entry: the tensor at level ``full``, its shape and statistics at ``stats``."""
        if self.keep_tensors:
            self.arrays[key] = arr
        else:
            self.summaries[key] = (list(arr.shape), fmt.tensor_stats(arr))

    def _param_grad(self, key: str) -> Callable[[Any], None]:
        def hook(g: Any) -> None:
            if g is not None and self.recording:
                a = _host64(g)
                self.arrays[key] = self.arrays[key] + a if key in self.arrays else a
        return hook

    # --- loss, backward, optimizer ------------------------------------------------------------------
    def loss(self, fn: Callable[[Any], Any] | None) -> None:
        """The user recorded the current micro-step's loss; ``fn`` computes it from the model's output."""
        call = self.calls[-1] if self.calls and self.calls[-1].micro == self.micro else None
        if fn is None:
            self.loss_why = ("the Recorder does not know how the loss is computed: pass it as rec.loss(loss, "
                             "fn=lambda out: ...)")
            return
        if call is None:
            self.loss_why = self.why or "the float64 copy made no call in this micro-step"
            return
        try:
            call.loss = fn(call.out)
        except Exception as e:  # noqa: BLE001 - the loss only lacks its reference
            self.loss_why = f"the loss could not be computed in float64: {_short(e)}"
            return
        if self.recording:
            self._keep(fmt.entry_key("loss", "", 0, "loss", max(self.micro, 0)), _host64(call.loss))

    def flush(self, everything: bool) -> None:
        """Run the copy's backward for each call whose torch output has received its gradient
        (``everything``: then forget the calls still waiting, the step is over)."""
        waiting = []
        for call in self.calls:
            if not call.seeds:
                if not everything:
                    waiting.append(call)
                continue
            if self.why or self.why_backward:
                continue
            try:
                if call.loss is not None:
                    backward_loss(call.loss)
                else:
                    idx = [i for i in sorted(call.seeds) if i < len(call.outs) and TORCH.requires_grad(call.outs[i])]
                    backward_from([call.outs[i] for i in idx], [call.seeds[i] for i in idx])
                self.errors.raise_pending()
            except Exception as e:  # noqa: BLE001
                self.errors.first = None
                self.why_backward = self.stale = f"the float64 copy's backward failed: {_short(e)}"
        self.calls = waiting

    def _on_optimizer_step(self, opt: Any) -> None:
        if self.twin is None or any(opt is twin for _, twin, _ in self.opts):
            return
        mine = {id(p) for p, _ in self.pairs}
        if not any(id(p) in mine for p in optimizer_params(opt)):
            return  # another model's optimizer
        try:
            self.flush(everything=False)
            self._check_versions()
            found = next((o for o in self.opts if o[0] is opt), None)
            if found is None:
                found = (opt, *mirror_optimizer(opt, self.model, self.twin))
                self.opts.append(found)
            twin_opt, why = found[1], found[2]
            if self.stale:
                return
            if twin_opt is None:
                self.stale = f"no float64 reference after the first optimizer step: {why}"
                return
            if self.why or self.why_backward:
                self.stale = "no float64 reference after a step the float64 copy could not run"
                return
            if self.ranks_why:  # the user's step used averaged gradients: the copy's weights would part from theirs
                self.stale = f"no float64 reference after the first optimizer step: {self.ranks_why}"
                return
            self.allowance.update(step_with_allowance(twin_opt, twin_opt.step))
            self._stepped = True
        except Exception as e:  # noqa: BLE001 - never break the user's optimizer step
            self.stale = f"the float64 copy's optimizer step failed: {_short(e)}"

    def _check_versions(self) -> None:
        """Weights written outside an observed optimizer step (a manual update, a load) end the reference."""
        if self.twin is None:
            return
        now = versions([p for p, _ in self.pairs])
        if now != self._versions and not self._stepped and not self.stale:
            self.stale = ("the torch model's weights were changed outside a torch.optim optimizer step, which the "
                          "float64 copy cannot follow")
        self._versions, self._stepped = now, False

    # --- the step's tensors ---------------------------------------------------------------------------
    def finish(self) -> None:
        """The step ends: the last backward runs, and the copy's values after the step are kept."""
        self.flush(everything=True)
        self._check_versions()
        self.tensor_hooks.remove_all()
        self.weights_why = self.stale or self.why or self.ranks_why
        if self.twin is None or not self.recording or self.weights_why:
            return
        for path, entries in TORCH.owned_state(self.twin).items():
            if not self.selected(path):
                continue
            # the layer's largest, for each of its tensors, as the live engine allows it per layer pair
            allowance = max((self.allowance.get(id(e.tensor), 0.0) for e in entries), default=0.0)
            for e in entries:
                item = f"buffer:{e.name}" if e.is_buffer and not e.trainable else e.name
                key = fmt.entry_key("weight", path, 0, item, 0)
                self._keep(key, _host64(e.tensor))
                if allowance:
                    self.extra[key] = {"allowance": allowance}

    def why_not(self, stage: str) -> str:
        """Why an entry of ``stage`` has no reference in this step."""
        if self.why:
            return self.why
        if stage == "loss":
            return self.loss_why or self.why_backward or "the float64 copy computed no loss here"
        if stage in ("backward", "grad"):
            return (self.ranks_why if stage == "grad" else "") or self.why_backward or \
                "no gradient reached this tensor in the float64 copy"
        if stage == "weight":
            return self.weights_why or "no float64 counterpart"
        return "the float64 copy did not make this call"

    def attach(self, entries: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Mark each entry with its reference (statistics, and the tensor returned by key) or why it has none."""
        out: dict[str, np.ndarray] = {}
        for e in entries:
            key = e["key"]
            arr = self.arrays.get(key)
            shape, stats = (list(arr.shape), None) if arr is not None else self.summaries.get(key, (None, None))
            if shape is None or (e["stage"] == "grad" and self.ranks_why):
                e["reference_why"] = self.why_not(e["stage"])
                continue
            if shape != list(e["shape"]):
                e["reference_why"] = f"the float64 copy's tensor has shape {shape}"
                continue
            e["reference"] = {"stats": stats if arr is None else fmt.tensor_stats(arr), **self.extra.get(key, {})}
            if arr is not None and self.keep_tensors:
                out[key] = arr
        self.arrays, self.summaries = {}, {}
        return out
