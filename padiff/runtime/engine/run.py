"""Pass orchestration: the steps of a run, the passes of a step, and what a pass does in which order.

Per step: paddle forward (hooked, outputs kept), torch forward (each call paired online and
compared at once), loss, then both backward passes (paddle's output gradients handed to
torch's gradient hooks and compared as they arrive), missing gradients, parameter gradients,
input gradients, the optimizer step and parameter values. :meth:`Engine.run` returns a
:class:`RunResult`; every comparison lands in the :class:`~padiff.report.records.DiffReport`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from padiff.adapters import PADDLE, TORCH, Side
from padiff.adapters.hooks import HookSet
from padiff.compare.conventions import BatchNormVariance
from padiff.layer_map import ResolvedMap
from padiff.options import DiffOptions
from padiff.report.records import DiffReport
from padiff.runtime.engine import backward_mode, calls
from padiff.runtime.engine.comparisons import Comparer
from padiff.runtime.engine.fused_calls import FusedComparisons
from padiff.runtime.engine.paddle_forward import PaddleForward
from padiff.runtime.engine.pairs import PairsSeen, SeenPair, check_pairing
from padiff.runtime.engine.params import ParamComparer
from padiff.runtime.engine.passes import Pass, passes_for, stages_for
from padiff.runtime.engine.recording import HookErrors, SideRecorder
from padiff.runtime.engine.reference import ReferenceRun
from padiff.runtime.engine.sink import RecordSink
from padiff.runtime.engine.torch_forward import TorchForward
from padiff.runtime.grad_exchange import AHEAD, SEQUENTIAL, GradExchange
from padiff.runtime.pairing import OnlinePairer, Role, assign_roles
from padiff.weights.identity_params import identity_twins


@dataclass
class RunSpec:
    """Everything a run needs, already validated by :mod:`padiff.api`."""

    layer: Any
    module: Any
    paddle_inputs: dict[str, Any]
    torch_inputs: dict[str, Any]
    options: DiffOptions
    resolved: ResolvedMap
    steps: int = 1
    loss_fns: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None
    optimizers: tuple[Any, Any] | None = None
    strict_pairing: bool = True  # default pairing: unpaired stateful layers are an error
    # told the (paddle role, torch role) pairs of the first forward, before any comparison of
    # gradients or optimizer step; may raise to stop the run (auto_weights checks its copy so)
    on_paired: Callable[[list[tuple[Role, Role]]], None] | None = None

    @property
    def training(self) -> bool:
        """An optimizer steps after each backward pass."""
        return self.optimizers is not None and self.options.checks_backward


@dataclass(frozen=True)
class RunResult:
    """What a run produced besides its records: the pairs it compared, in the order first seen."""

    pairs: tuple[SeenPair, ...]


class Engine:
    """Runs one comparison, recording into a :class:`DiffReport`."""

    def __init__(self, spec: RunSpec, report: DiffReport) -> None:
        self.spec = spec
        self.opts = spec.options
        self.sink = RecordSink(report)
        self.errors = HookErrors()
        # a layer whose only tensors are an identity scale/bias against a twin without them pairs as parameter-free
        self.p = _recorder(PADDLE, spec.layer, spec.resolved, self.errors,
                           identity_twins(PADDLE, spec.layer, TORCH, spec.module))
        self.t = _recorder(TORCH, spec.module, spec.resolved, self.errors,
                           identity_twins(TORCH, spec.module, PADDLE, spec.layer))
        self.seen = PairsSeen()
        self.cmp = Comparer(self.opts, self.sink)
        if self.opts.compare_mode == "calibrated":  # the float64 torch copy every record is judged against
            self.cmp.reference = ReferenceRun(spec.module, spec.torch_inputs, self.t.roles,
                                              spec.loss_fns[1] if spec.loss_fns is not None else None,
                                              spec.optimizers[1] if spec.optimizers is not None else None)
        self.bn = BatchNormVariance()  # paddle's biased running-variance convention, reconciled
        self.params = ParamComparer(self.cmp, self.p, self.t, spec.resolved, self.bn)
        self.fused = FusedComparisons(self.cmp, self.errors)
        self.paddle_fwd = PaddleForward(self.p, self.bn)
        self.torch_fwd = TorchForward(self.t, self.cmp, self.fused, self.seen)
        self._pairing_checked = False
        self._empty_output = False  # the built-in loss found float outputs, all of them empty

    @property
    def step(self) -> int:
        """The step running now."""
        return self.sink.step

    def run(self, on_step: Callable[[], None] = lambda: None) -> RunResult:
        """All steps; records land in the report. Raises PadiffError subclasses for misuse."""
        self.sink.report.stages = stages_for(self.opts, self.spec.training)
        for rec, inputs in ((self.p, self.spec.paddle_inputs), (self.t, self.spec.torch_inputs)):
            rec.side.clear_grads(rec.root)
            for t in rec.side.flatten(inputs):  # the snapshot in padiff.api puts the user's input grads back
                if rec.side.requires_grad(t) and rec.side.grad(t) is not None:
                    rec.side.set_grad(t, None)
        try:
            for step in range(self.spec.steps):
                self.sink.step = step
                if self.cmp.reference is not None:
                    self.cmp.reference.run_step(step, self.opts.checks_backward)
                for ps in passes_for(self.opts):
                    self._one_pass(ps)
                if self.spec.training:
                    self._optimizer_step()
                self.sink.flush()
                on_step()
        finally:
            self.sink.flush()
        return RunResult(self.seen.pairs())

    # --- one pass ------------------------------------------------------------------------
    def _one_pass(self, ps: Pass) -> None:
        self.p.reset()
        self.t.reset()
        exchange = GradExchange()
        self.fused.begin_pass(exchange)
        with HookSet() as hooks:
            self.paddle_fwd.install(hooks, ps, exchange, self.spec.training and ps.backward)
            p_out, p_loss = self.paddle_fwd.run(lambda: self._forward(self.p, self.spec.paddle_inputs, ps, 0))
            mode, torch_threads = self._backward_mode() if ps.backward else (SEQUENTIAL, 0)
            p_host = None
            if mode == AHEAD and ps.compare_forward:
                # no paddle call in this thread while paddle's backward runs in the worker
                p_host = ([PADDLE.to_numpy(t) for t in PADDLE.flatten(p_out)],
                          None if p_loss is None else PADDLE.to_numpy(p_loss))
            if ps.backward and mode in (SEQUENTIAL, AHEAD):
                # paddle's backward before or beside torch's forward: what torch compares later
                # must outlive paddle's graph, so copy it
                self.paddle_fwd.copy_refs()
                if mode == SEQUENTIAL:
                    exchange.run(lambda: self._backward(self.p, p_loss), lambda: None, SEQUENTIAL)
                    self.errors.raise_pending()
                else:
                    exchange.begin(lambda: self._backward(self.p, p_loss), AHEAD)
            try:
                with (TORCH.limit_threads(torch_threads) if mode == AHEAD
                      else contextlib.nullcontext(lambda: None)) as restore_threads:
                    exchange.when_paddle_done = restore_threads  # torch's cores back once paddle is done
                    t_out, t_loss = self._torch_forward(hooks, ps, exchange)
                    if not ps.sync_inputs:  # fed paddle's inputs, a consumer agrees whatever it was given
                        flow = self.torch_fwd.dataflow
                        self.sink.note_consumers(flow.consumers(), flow.stateful())
                    self.torch_fwd.release_dataflow()  # it holds autograd nodes: not past the forward
                    self._after_torch_forward(ps, p_out, t_out, p_loss, t_loss, exchange, mode, p_host)
            finally:
                exchange.settle()  # torch's side failed: paddle's backward ends before anything is put back
        self.errors.raise_pending()

    def _torch_forward(self, hooks: HookSet, ps: Pass, exchange: GradExchange) -> tuple[Any, Any]:
        """Torch's forward, each call paired and compared online; the pairing checked once per run."""
        pairer = OnlinePairer(self.p.events)
        self.torch_fwd.install(hooks, ps, pairer, exchange)
        t_out, t_loss = self._forward(self.t, self.spec.torch_inputs, ps, 1)
        pairer.finish()
        if not self._pairing_checked:
            self._pairing_checked = True
            if self.spec.on_paired is not None:
                self.spec.on_paired([(sp.paddle, sp.torch) for sp in self.seen.pairs()])
            check_pairing(pairer, self.p.events, self.t.events, self.sink, self.spec.strict_pairing)
        return t_out, t_loss

    def _after_torch_forward(self, ps: Pass, p_out: Any, t_out: Any, p_loss: Any, t_loss: Any,
                             exchange: GradExchange, mode: str,
                             p_host: tuple[list[Any], Any] | None) -> None:
        """Model outputs and loss compared, then torch's backward (and paddle's, unless it ran already).

        ``p_host``: host copies of paddle's outputs and loss, taken before its backward started ahead.
        """
        if ps.compare_forward:
            self.cmp.model_outputs(p_out, t_out, type(self.spec.layer).__name__, type(self.spec.module).__name__,
                                   p_arrays=None if p_host is None else p_host[0])
            if p_loss is not None and t_loss is not None:
                self.cmp.loss(p_loss if p_host is None else p_host[1], t_loss)
        self.paddle_fwd.release()
        if not ps.backward:
            return
        self.cmp.begin_backward(t_out)
        del p_out
        if mode == SEQUENTIAL:
            self._backward(self.t, t_loss)
        elif mode == AHEAD:
            exchange.end(lambda: self._backward(self.t, t_loss))
        else:
            exchange.run(lambda: self._backward(self.p, p_loss), lambda: self._backward(self.t, t_loss), mode)
        self.errors.raise_pending()
        self.cmp.missing_grads(self.t.events)
        self.params.compare("grad", self.seen)
        if ps.compare_backward:
            self.cmp.input_grads(self.spec.paddle_inputs, self.spec.torch_inputs,
                                 type(self.spec.layer).__name__, type(self.spec.module).__name__)

    def _forward(self, rec: SideRecorder, inputs: dict[str, Any], ps: Pass, which: int) -> tuple[Any, Any]:
        """One side's forward from seed 0, and its loss when the pass needs one."""
        rec.side.seed(0)
        out = calls.call_model(rec, inputs, "forward", self.step)
        loss = None
        if ps.needs_loss:
            fn = self.spec.loss_fns[which] if self.spec.loss_fns is not None else None
            loss, empty = calls.compute_loss(rec.side, out, fn, which, self.step)
            if loss is None:
                self._empty_output = empty
        if which == 0:
            self.errors.raise_pending()
        return out, loss

    def _backward_mode(self) -> tuple[str, int]:
        """How this pass's backward passes share the machine, and torch's threads meanwhile (AHEAD)."""
        machine = backward_mode.Machine.probe(self.spec.layer, self.spec.module)
        mode = backward_mode.choose_backward_mode(machine, self.paddle_fwd.grad_bytes)
        return mode, backward_mode.torch_threads_beside_paddle(machine)

    def _backward(self, rec: SideRecorder, loss: Any) -> None:
        if loss is None:
            self.sink.warn_once(calls.skipped_backward_warning(rec.side, self._empty_output))
            return
        calls.run_backward(rec.side, loss, self.step, rec.root)

    def _optimizer_step(self) -> None:
        assert self.spec.optimizers is not None
        for rec, opt in ((self.p, self.spec.optimizers[0]), (self.t, self.spec.optimizers[1])):
            calls.step_optimizer(rec.side, opt, self.step)
        if self.cmp.reference is not None:
            self.cmp.reference.optimizer_step()
        self.params.compare("weight", self.seen)


def _recorder(side: Side, root: Any, resolved: ResolvedMap, errors: HookErrors, free: set[str]) -> SideRecorder:
    """One side's recorder; layers whose tensors are paired parameter by parameter are not compared as layers.

    ``free``: layers holding tensors that pair as parameter-free ones (identity tensors, twin without them).
    """
    owned = side.owned_state(root)
    raw = resolved.param_layers(side.name)
    roles = assign_roles(side, root, resolved, set(owned) - raw - free)
    return SideRecorder(side, root, {k: r for k, r in roles.items() if k not in raw}, owned, errors)
