"""The eager comparison run: paddle records, torch compares as it goes.

Per step: paddle forward (hooked; layer outputs kept by reference, which costs nothing while
paddle's graph holds them anyway, or as host copies once one was found written in place),
torch forward (each call paired online and compared at once, the kept paddle output dropped
right after), loss, then both backward passes (paddle's output gradients handed to torch's
gradient hooks and compared as they arrive), parameter gradients, optimizer step, parameter
values. ``single_step`` feeds each torch layer the paddle layer's input (forward) or
gradient (backward) so each layer is judged alone. The engine consumes a
:class:`ResolvedMap` and never guesses pairs beyond the call-order rules of
:mod:`padiff.runtime.pairing`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from padiff.adapters import PADDLE, TORCH, Side, StateEntry, pair_state
from padiff.errors import MappingError, ModelRunError, OptionsError, PadiffError, PadiffInternalError, WeightAssignError
from padiff.layer_map import ResolvedMap
from padiff.options import DiffOptions
from padiff.report.records import Comparison, DiffReport, SkippedLayer
from padiff.runtime.compare import Stats, compare_arrays, structure_mismatch
from padiff.runtime.conventions import BATCHNORM_VARIANCE_NOTE, BatchNormVariance
from padiff.runtime.fused import FusedCall, axis_of, cut
from padiff.runtime.grad_exchange import OVERLAP, SEQUENTIAL, GradExchange, make_recorder
from padiff.runtime.hooks import HookSet, user_stack
from padiff.runtime.keyed import key_skeleton, reorder_like
from padiff.runtime.memory import available_memory
from padiff.runtime.pairing import Event, OnlinePairer, Role, assign_roles
from padiff.runtime.weights import PairPlan, plan_fused, plan_pair, plan_param, torch_arrays


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


@dataclass
class _Pass:
    """What one forward/backward pass does."""

    compare_forward: bool
    sync_inputs: bool
    backward: bool
    compare_backward: bool
    sync_grads: bool


@dataclass
class _SideRun:
    side: Side
    root: Any
    roles: dict[str, Role]
    owned: dict[str, list[StateEntry]]
    events: list[Event] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    active: list[Event] = field(default_factory=list)
    by_path: dict[str, Any] | None = None  # path -> layer, built on first use by _layer_at


class Engine:
    """Runs one comparison and fills a :class:`DiffReport`."""

    def __init__(self, spec: RunSpec, report: DiffReport) -> None:
        self.spec = spec
        self.report = report
        self.opts = spec.options
        p_owned = PADDLE.owned_state(spec.layer)
        t_owned = TORCH.owned_state(spec.module)
        # layers whose tensors are paired parameter by parameter are not compared as layers
        p_raw, t_raw = spec.resolved.param_layers("paddle"), spec.resolved.param_layers("torch")
        p_roles = assign_roles(PADDLE, spec.layer, spec.resolved, set(p_owned) - p_raw)
        t_roles = assign_roles(TORCH, spec.module, spec.resolved, set(t_owned) - t_raw)
        self.p = _SideRun(PADDLE, spec.layer, {k: r for k, r in p_roles.items() if k not in p_raw}, p_owned)
        self.t = _SideRun(TORCH, spec.module, {k: r for k, r in t_roles.items() if k not in t_raw}, t_owned)
        self.step = 0
        self._order = 0
        self._hook_error: BaseException | None = None
        self._empty_output = False  # the built-in loss found float outputs, all of them empty
        self._plans: dict[tuple[str, str], PairPlan | None] = {}
        self._pairs_seen: dict[tuple[str, str], tuple[Role, Role, int]] = {}
        self._pairing_checked = False
        self._by_copy = False  # set for good once a paddle output was found written in place
        self._refs: list[Any] = []  # host_ref tokens of the paddle tensors kept in this pass
        self._exchange = GradExchange()  # a new one per pass
        self._grad_bytes = 0
        self._bn = BatchNormVariance()  # paddle's biased running-variance convention, reconciled
        self._tracks_bn = spec.optimizers is not None and self.opts.checks_backward
        self._fused: dict[int, FusedCall] = {}  # paddle event index -> its torch parts so far

    # --- public --------------------------------------------------------------------------
    def run(self, on_step: Callable[[], None] = lambda: None) -> None:
        """All steps; records land in the report. Raises PadiffError subclasses for misuse."""
        opts = self.opts
        passes: list[_Pass] = []
        if opts.single_step:
            if opts.checks_forward:
                passes.append(_Pass(True, True, False, False, False))
            if opts.checks_backward:
                passes.append(_Pass(False, False, True, True, True))
        else:
            passes.append(_Pass(opts.checks_forward, False, opts.checks_backward, opts.checks_backward, False))
        stages = []
        if opts.checks_forward:
            stages += ["forward", "loss"]
        if opts.checks_backward:
            stages += ["backward", "grad"]
        if self.spec.optimizers is not None and opts.checks_backward:
            stages.append("weight")
        self.report.stages = stages
        for side, inputs in ((self.p, self.spec.paddle_inputs), (self.t, self.spec.torch_inputs)):
            side.side.clear_grads(side.root)
            for t in side.side.flatten(inputs):  # the snapshot in padiff.api puts the user's input grads back
                if side.side.requires_grad(t) and side.side.grad(t) is not None:
                    side.side.set_grad(t, None)
        for step in range(self.spec.steps):
            self.step = step
            for ps in passes:
                self._one_pass(ps)
            if self.spec.optimizers is not None and opts.checks_backward:
                self._optimizer_step()
            on_step()

    # --- one pass ------------------------------------------------------------------------
    def _one_pass(self, ps: _Pass) -> None:
        for side in (self.p, self.t):
            side.events, side.calls, side.active = [], {}, []
        self._fused = {}
        self._exchange = GradExchange()
        self._grad_bytes = 0  # paddle output gradients this pass will record (float32 host copies)
        with HookSet() as hooks:
            self._hook_paddle(hooks, ps)
            if self._tracks_bn and ps.backward:
                self._hook_batchnorms(hooks)
            p_out, p_loss = self._paddle_forward(ps)
            mode = self._backward_mode() if ps.backward else SEQUENTIAL
            if ps.backward and mode == SEQUENTIAL:
                # paddle's backward first, as the frameworks' threads would fight over the cores
                # otherwise: what torch compares later must outlive paddle's graph, so copy it
                self._copy_refs()
                self._exchange.run(lambda: self._backward(self.p, p_loss), lambda: None, SEQUENTIAL)
                self._raise_hook_error()
            pairer = OnlinePairer(self.p.events)
            self._hook_torch(hooks, ps, pairer)
            TORCH.seed(0)
            t_out = self._call(self.t, self.spec.torch_inputs, "forward")
            t_loss = self._loss(self.t, t_out, 1) if (ps.compare_forward or ps.backward) else None
            pairer.finish()
            self._check_pairing(pairer)
            if ps.compare_forward:
                self._compare_model_outputs(p_out, t_out)
                if p_loss is not None and t_loss is not None:
                    self._add("loss", "", "", "loss", "loss", self._cmp(PADDLE.to_numpy(p_loss),
                              TORCH.to_numpy(t_loss)), item="loss", dtype=TORCH.dtype_name(t_loss))
            self._release_refs()
            if ps.backward:
                del p_out
                if mode == SEQUENTIAL:
                    self._backward(self.t, t_loss)
                else:
                    self._exchange.run(lambda: self._backward(self.p, p_loss),
                                       lambda: self._backward(self.t, t_loss), mode)
                self._raise_hook_error()
                self._compare_missing_grads()
                self._compare_params("grad")
                if ps.compare_backward:
                    self._compare_input_grads()
        self._raise_hook_error()

    def _paddle_forward(self, ps: _Pass) -> tuple[Any, Any]:
        """Paddle's forward (and loss), keeping layer outputs by reference where that is safe.

        A reference is only right if nothing writes the tensor in place afterwards (``x[...] =``,
        ``relu_``, ``add_`` on a returned output). That is checked before torch runs; if it
        happened, the forward runs again keeping host copies (as the rest of the run does), and
        the state that forward updates a second time (running statistics) is put back to what
        one forward left.
        """
        self._bn.begin_pass()
        p_out, p_loss = self._paddle_forward_once(ps)
        if not any(PADDLE.changed(tok) for tok in self._refs):
            return p_out, p_loss
        del p_out, p_loss
        self._bn.restart_pass()
        self._release_refs()
        self._by_copy = True
        after_one = [(e.tensor, PADDLE.to_numpy(e.tensor)) for entries in self.p.owned.values() for e in entries
                     if not e.trainable]
        p_out, p_loss = self._paddle_forward_once(ps)
        for t, arr in after_one:
            PADDLE.set_value(t, arr)
        return p_out, p_loss

    def _paddle_forward_once(self, ps: _Pass) -> tuple[Any, Any]:
        self.p.events, self.p.calls, self.p.active = [], {}, []
        self._refs = []
        PADDLE.seed(0)
        p_out = self._call(self.p, self.spec.paddle_inputs, "forward")
        p_loss = self._loss(self.p, p_out, 0) if (ps.compare_forward or ps.backward) else None
        self._raise_hook_error()
        return p_out, p_loss

    def _copy_refs(self) -> None:
        """Host copies of the paddle tensors kept by reference, so they outlive paddle's graph."""
        if not self._refs:
            return
        for ev in self.p.events:
            for kept in (ev.outputs, ev.inputs):
                if kept:
                    kept[:] = [a if a.flags.writeable else np.array(a) for a in kept]
        self._refs = []

    def _release_refs(self) -> None:
        """Drop what is still kept of paddle's forward (layers torch never paired)."""
        for ev in self.p.events:
            ev.outputs = ev.inputs = None
        self._refs = []

    def _keep(self, t: Any) -> np.ndarray:
        if self._by_copy:
            return PADDLE.to_numpy(t)
        arr, token = PADDLE.host_ref(t)
        if token is not None:
            self._refs.append(token)
        return arr

    # --- hooks -----------------------------------------------------------------------------
    def _hook_paddle(self, hooks: HookSet, ps: _Pass) -> None:
        run = self.p
        for layer, role in _hooked_layers(run):
            def pre(lay: Any, args: tuple, kwargs: dict, role: Role = role) -> Any:
                try:
                    ev = self._open(run, role)
                    if ps.sync_inputs:
                        ev.inputs = [self._keep(t) for t in PADDLE.flatten((args, kwargs))]
                except Exception as e:  # noqa: BLE001 - reported after the forward
                    self._hook_error = self._hook_error or e
                return None

            def post(lay: Any, args: tuple, out: Any, role: Role = role) -> None:
                try:
                    ev = self._close(run, role)
                    if ev is None:
                        return
                    outs = PADDLE.flatten(out)
                    ev.keys = key_skeleton(out)
                    if ps.compare_forward:
                        ev.outputs = [self._keep(t) for t in outs]
                    ev.dtype = PADDLE.dtype_name(outs[0]) if outs else ""
                    ev.shapes = [tuple(PADDLE.shape(t)) for t in outs]
                    if ps.backward:
                        for i, t in enumerate(outs):
                            if PADDLE.carries_grad(t):
                                ev.grad_hooked.add(i)
                                self._grad_bytes += PADDLE.numel(t) * 4
                                hooks.add(PADDLE.add_grad_hook(t, make_recorder(self._exchange, ev.grads, i,
                                                                                PADDLE.to_numpy)))
                except Exception as e:  # noqa: BLE001
                    self._hook_error = self._hook_error or e

            hooks.add(PADDLE.add_pre_hook(layer, pre))
            hooks.add(PADDLE.add_post_hook(layer, post))

    def _hook_batchnorms(self, hooks: HookSet) -> None:
        """Watch every paddle BatchNorm's training-mode calls, for :class:`BatchNormVariance`."""
        for path, layer in PADDLE.named_layers(self.p.root):
            if PADDLE.batchnorm_update(layer) is None:
                continue

            def post(lay: Any, args: tuple, out: Any, path: str = path) -> None:
                try:
                    update = PADDLE.batchnorm_update(lay)
                    xs = PADDLE.flatten(args)
                    if update is not None and xs:
                        self._bn.observe_variance(path, update, *PADDLE.channel_variance(xs[0], update.channel_axis))
                except Exception as e:  # noqa: BLE001 - reported after the forward
                    self._hook_error = self._hook_error or e

            hooks.add(PADDLE.add_post_hook(layer, post))

    def _hook_torch(self, hooks: HookSet, ps: _Pass, pairer: OnlinePairer) -> None:
        run = self.t
        for layer, role in _hooked_layers(run):
            def pre(mod: Any, args: tuple, kwargs: dict, role: Role = role) -> Any:
                try:
                    ev = self._open(run, role)
                    pev = pairer.match(ev)
                    ev.partner = pev
                    if pev is not None:
                        pev.partner = ev
                        key = (role.pair.paddle_path, role.pair.torch_path) if role.pair is not None \
                            and role.pair.split_side else (pev.role.path, role.path)
                        self._pairs_seen.setdefault(key, (pev.role, role, len(self._pairs_seen)))
                    if ps.sync_inputs and pev is not None and pev.inputs:
                        return _replace_inputs(args, kwargs, pev.inputs)
                except Exception as e:  # noqa: BLE001
                    self._hook_error = self._hook_error or e
                return None

            def post(mod: Any, args: tuple, out: Any, role: Role = role) -> None:
                try:
                    ev = self._close(run, role)
                    if ev is None:
                        return
                    pev = ev.partner
                    outs = TORCH.flatten(out if pev is None else reorder_like(out, pev.keys))
                    ev.dtype = TORCH.dtype_name(outs[0]) if outs else ""
                    if pev is None:
                        return
                    if role.pair is not None and role.pair.split_side:
                        self._fused_post(hooks, ps, pev, ev, outs)
                        return
                    if ps.compare_forward and _compares_output(pev, ev):
                        self._compare_outputs("forward", pev, ev, pev.outputs or [],
                                              [TORCH.host_view(t) for t in outs])
                    pev.outputs = None
                    pev.inputs = None
                    if ps.backward:
                        for i, t in enumerate(outs):
                            if TORCH.carries_grad(t):
                                hooks.add(TORCH.add_grad_hook(t, self._grad_checker(pev, ev, i, ps)))
                except Exception as e:  # noqa: BLE001
                    self._hook_error = self._hook_error or e

            hooks.add(TORCH.add_pre_hook(layer, pre))
            hooks.add(TORCH.add_post_hook(layer, post))

    # --- fused pairs (one layer against several; see padiff.runtime.fused) ------------------
    def _fused_post(self, hooks: HookSet, ps: _Pass, pev: Event, tev: Event, outs: list[Any]) -> None:
        pair = tev.role.pair
        assert pair is not None
        if pair.split_side == "torch":
            call = self._fused.setdefault(pev.index, FusedCall(len(pair.torch_parts)))
            k = pair.torch_parts.index(tev.role.path)
            call.shapes[k] = [tuple(t.shape) for t in outs]
            call.events[k] = tev
            if ps.compare_forward:
                call.outputs[k] = [np.array(TORCH.host_view(t)) for t in outs]
            if call.complete:
                if ps.compare_forward and pair.compare_output:
                    self._compare_torch_parts(pev, call, pair.axis)
                pev.outputs = pev.inputs = None
            if ps.backward:
                for i, t in enumerate(outs):
                    if TORCH.requires_grad(t):
                        hooks.add(TORCH.add_grad_hook(t, self._part_grad_checker(pev, tev, call, k, i, ps)))
            return
        pieces = tev.pieces or []
        if ps.compare_forward and pair.compare_output:
            t_arrs = [TORCH.host_view(t) for t in outs]
            for i, t_arr in enumerate(t_arrs):
                for pe, piece in zip(pieces, self._torch_slices(pieces, t_arr, i, pair.axis) or []):
                    if piece is None:
                        self._add("forward", pe.role.path, tev.role.path, pe.role.cls, tev.role.cls,
                                  structure_mismatch(1, 0), item=_item("output", i, len(t_arrs)), call=tev.call,
                                  depth=pe.role.depth, dtype=tev.dtype, pev=pe, tev=tev)
                        continue
                    self._add("forward", pe.role.path, tev.role.path, pe.role.cls, tev.role.cls,
                              self._cmp((pe.outputs or [])[i], piece), item=_part_item(i, len(t_arrs), pe, pieces),
                              call=tev.call, depth=pe.role.depth, dtype=tev.dtype, pev=pe, tev=tev)
        for pe in pieces:
            pe.outputs = pe.inputs = None
        if ps.backward:
            for i, t in enumerate(outs):
                if TORCH.requires_grad(t):
                    hooks.add(TORCH.add_grad_hook(t, self._fused_grad_checker(pieces, tev, i, ps)))

    def _torch_slices(self, pieces: list[Event], t_arr: np.ndarray, i: int,
                      axis: int) -> list[np.ndarray | None] | None:
        """The fused torch output ``t_arr`` cut into the paddle parts' sizes (None for a part that does not fit)."""
        ax = axis_of(axis, t_arr.ndim)
        out: list[np.ndarray | None] = []
        start = 0
        for pe in pieces:
            shape = pe.shapes[i] if i < len(pe.shapes) else None
            if ax is None or shape is None or len(shape) != t_arr.ndim:
                out.append(None)
                continue
            stop = start + int(shape[ax])
            out.append(cut(t_arr, ax, start, stop) if stop <= t_arr.shape[ax] else None)
            start = stop
        if ax is not None and start != t_arr.shape[ax]:  # the parts do not make up the fused output
            return [None] * len(pieces)
        return out

    def _compare_torch_parts(self, pev: Event, call: FusedCall, axis: int) -> None:
        """Each torch part's output against its slice of the fused paddle output."""
        p_arrs = pev.outputs or []
        for i, p_arr in enumerate(p_arrs):
            bnds = call.part_bounds(i, axis)
            ax = axis_of(axis, p_arr.ndim)
            whole = bnds is not None and ax is not None and bnds[-1][1] == p_arr.shape[ax]
            for k in range(call.n_parts):
                tev = call.events[k]
                common = dict(call=tev.call, depth=pev.role.depth, dtype=tev.dtype, pev=pev, tev=tev)
                outs = call.outputs.get(k, [])
                if not whole or i >= len(outs):
                    self._add("forward", pev.role.path, tev.role.path, pev.role.cls, tev.role.cls,
                              structure_mismatch(len(p_arrs), len(outs)) if i >= len(outs) else
                              self._cmp(p_arr, np.concatenate([call.outputs[j][i] for j in range(call.n_parts)],
                                                              axis=axis)),
                              item=_item("output", i, len(p_arrs)), **common)
                    continue
                assert bnds is not None and ax is not None
                start, stop = bnds[k]
                self._add("forward", pev.role.path, tev.role.path, pev.role.cls, tev.role.cls,
                          self._cmp(cut(p_arr, ax, start, stop), outs[i]),
                          item=f"{_item('output', i, len(p_arrs))} [{start}:{stop}] of axis {axis}", **common)

    def _part_grad_checker(self, pev: Event, tev: Event, call: FusedCall, k: int, i: int,
                           ps: _Pass) -> Callable[[Any], Any]:
        """Gradient of torch part ``k``'s output ``i`` against its slice of the fused paddle output's gradient."""
        def check(grad: Any) -> Any:
            try:
                if i not in call.grads:
                    call.grads[i] = self._exchange.take(pev.grads, i, i in pev.grad_hooked)
                p_grad = call.grads[i]
                bnds = call.part_bounds(i, tev.role.pair.axis)  # type: ignore[union-attr]
                if p_grad is None or bnds is None:
                    return None
                ax = axis_of(tev.role.pair.axis, p_grad.ndim)  # type: ignore[union-attr]
                assert ax is not None
                start, stop = bnds[k]
                piece = cut(p_grad, ax, start, stop)
                if ps.compare_backward and _compares_output(pev, tev):
                    self._add("backward", pev.role.path, tev.role.path, pev.role.cls, tev.role.cls,
                              self._cmp(piece, TORCH.host_view(grad)), call=tev.call,
                              item=f"{_item('grad of output', i, 2)} [{start}:{stop}]",
                              order=-pev.index * 64 + i, depth=pev.role.depth, dtype=tev.dtype, pev=pev, tev=tev)
                    tev.grads[i] = True
                if ps.sync_grads and piece.shape == tuple(grad.shape):
                    return TORCH.from_numpy(np.ascontiguousarray(piece), like=grad)
            except Exception as e:  # noqa: BLE001
                self._hook_error = self._hook_error or e
            return None

        return check

    def _fused_grad_checker(self, pieces: list[Event], tev: Event, i: int, ps: _Pass) -> Callable[[Any], Any]:
        """Gradient of the fused torch output ``i`` cut into the paddle parts, each against its part."""
        def check(grad: Any) -> Any:
            try:
                t_grad = TORCH.host_view(grad)
                slices = self._torch_slices(pieces, t_grad, i, tev.role.pair.axis)  # type: ignore[union-attr]
                p_grads = []
                for pe, piece in zip(pieces, slices or []):
                    p_grad = self._exchange.take(pe.grads, i, i in pe.grad_hooked)
                    p_grads.append(p_grad)
                    if p_grad is None or piece is None or not ps.compare_backward:
                        continue
                    self._add("backward", pe.role.path, tev.role.path, pe.role.cls, tev.role.cls,
                              self._cmp(p_grad, piece), call=tev.call, item=_item("grad of output", i, 2),
                              order=-pe.index * 64 + i, depth=pe.role.depth, dtype=tev.dtype, pev=pe, tev=tev)
                    tev.grads[i] = True
                ax = axis_of(tev.role.pair.axis, t_grad.ndim)  # type: ignore[union-attr]
                if ps.sync_grads and p_grads and all(g is not None for g in p_grads) and ax is not None:
                    whole = np.concatenate(p_grads, axis=ax)
                    if whole.shape == tuple(grad.shape):
                        return TORCH.from_numpy(whole, like=grad)
            except Exception as e:  # noqa: BLE001
                self._hook_error = self._hook_error or e
            return None

        return check

    def _open(self, run: _SideRun, role: Role) -> Event:
        call = run.calls.get(role.path, 0)
        run.calls[role.path] = call + 1
        ev = Event(len(run.events), role, call, stack=user_stack())
        run.events.append(ev)
        run.active.append(ev)
        return ev

    def _close(self, run: _SideRun, role: Role) -> Event | None:
        for i in range(len(run.active) - 1, -1, -1):
            if run.active[i].role is role:
                ev = run.active[i]
                del run.active[i:]
                return ev
        return None

    def _grad_checker(self, pev: Event, tev: Event, i: int, ps: _Pass) -> Callable[[Any], Any]:
        def check(grad: Any) -> Any:
            try:
                p_grad = self._exchange.take(pev.grads, i, i in pev.grad_hooked)
                if p_grad is None:
                    return None
                if ps.compare_backward and _compares_output(pev, tev):
                    stats = self._cmp(p_grad, TORCH.host_view(grad), gradient=True)
                    self._add("backward", pev.role.path, tev.role.path, pev.role.cls, tev.role.cls, stats,
                              call=tev.call, item=_item("grad of output", i, 2), order=-pev.index * 64 + i,
                              depth=pev.role.depth, dtype=tev.dtype, pev=pev, tev=tev)
                    tev.grads[i] = True
                if ps.sync_grads and p_grad.shape == tuple(grad.shape):
                    return TORCH.from_numpy(p_grad, like=grad)
            except Exception as e:  # noqa: BLE001
                self._hook_error = self._hook_error or e
            return None

        return check

    # --- running the models ---------------------------------------------------------------
    def _call(self, run: _SideRun, inputs: Mapping[str, Any], what: str) -> Any:
        try:
            return run.root(**inputs)
        except PadiffError:
            raise
        except SystemExit as e:  # a model that calls sys.exit compared nothing: a usage error, not a verdict
            raise ModelRunError(
                f"the {run.side.name} model called sys.exit({e.code!r}) during {what} (step {self.step}); nothing "
                f"was compared. Remove the exit from the {run.side.name} model's forward (raise an exception "
                "instead)."
            ) from e
        except Exception as e:
            where = ""
            raiser = _raising_layer(run, e)
            if raiser is not None:
                where = f" inside layer {raiser[0] or '<root>'} ({raiser[1]})"
            elif run.active:
                inner = run.active[-1].role
                where = f" inside layer {inner.path or '<root>'} ({inner.cls})"
            raise ModelRunError(
                f"the {run.side.name} model raised during {what} (step {self.step}){where}: "
                f"{type(e).__name__}: {e}. Check the {run.side.name} half of example_inp "
                "(shapes, dtypes, key names) and that the model runs on its own."
            ) from e
        finally:
            run.active.clear()

    def _loss(self, run: _SideRun, out: Any, which: int) -> Any:
        side = run.side
        fns = self.spec.loss_fns
        try:
            if fns is not None:
                loss = fns[which](out)
            else:
                # the built-in loss works in float32: half-precision means lose digits (and paddle
                # has no CPU float16 mean kernel)
                floats = [t for t in side.flatten(out) if "float" in side.dtype_name(t)]
                tensors = [side.widen(t) for t in floats if side.numel(t) > 0]  # the mean of nothing is NaN
                if not tensors:
                    self._empty_output = bool(floats)
                    return None
                loss = tensors[0].mean()
                for t in tensors[1:]:
                    loss = loss + t.mean()
        except PadiffError:
            raise
        except Exception as e:
            what = (f"loss_fn[{which}] (the {side.name} loss function)" if fns is not None
                    else f"padiff's built-in loss (mean of the {side.name} output)")
            raise ModelRunError(
                f"{what} raised during step {self.step}: {type(e).__name__}: {e}. loss_fn must be "
                "[paddle_loss, torch_loss], each taking the model output and returning a scalar tensor."
            ) from e
        if not side.is_tensor(loss):
            raise OptionsError(f"loss_fn for {side.name} must return a {side.name} tensor, got {type(loss).__name__}.")
        if side.numel(loss) != 1:
            raise OptionsError(
                f"loss_fn for {side.name} returned a tensor of shape {list(side.shape(loss))}; it must return "
                "a scalar (e.g. end it with .mean() or .sum())."
            )
        return loss

    def _backward(self, run: _SideRun, loss: Any) -> None:
        if loss is None:
            what = ("every float tensor of the output is empty (no elements)" if self._empty_output
                    else "the output has no float tensor")
            self._warn_once(f"{run.side.name}: {what}, so backward was skipped.")
            return
        if not run.side.requires_grad(loss):
            raise ModelRunError(
                f"the {run.side.name} loss does not require grad, so backward cannot run: no parameter or "
                "input takes part in it (frozen model, a no_grad region, an int output, or a loss_fn that detaches). "
                "Use options={'diff_phase': "
                "'forward'} to compare the forward pass only."
            )
        try:
            run.side.backward(loss)
        except PadiffError:
            raise
        except Exception as e:
            raise ModelRunError(
                f"the {run.side.name} model raised during backward (step {self.step}): {type(e).__name__}: {e}. "
                f"Check that the {run.side.name} model's forward and backward run on their own with this input "
                "(custom autograd functions, in-place ops on tensors autograd still needs)."
            ) from e

    def _backward_mode(self) -> str:
        """How the two backward passes share the machine (see :mod:`.grad_exchange`).

        ``OVERLAP``, when both models are on the CPU and there are at least two cores:
        paddle's backward runs in a worker thread at the same time as torch's, after both
        forwards, so its output gradients are compared as torch's arrive instead of all
        being held at once. That is also faster when torch leaves a core free (pinned
        threads).

        ``SEQUENTIAL`` otherwise: paddle's forward and backward run first, keeping host
        copies, then torch's. That is the case when the frameworks' own threads already
        fill the cores, because two of them at once only slow each other down (convnet,
        default threads: 1.42x against 1.27x bare); they still overlap if holding every
        gradient could exhaust the memory left. It is also the case on one core, and on
        a GPU, which keeps its current device per thread.
        """
        cores = _usable_cores()
        if cores < 2 or not (PADDLE.on_cpu(self.spec.layer) and TORCH.on_cpu(self.spec.module)):
            return SEQUENTIAL
        if TORCH.compute_threads() < cores:
            return OVERLAP
        free = available_memory()
        return OVERLAP if free is not None and self._grad_bytes * 4 > free else SEQUENTIAL

    def _optimizer_step(self) -> None:
        assert self.spec.optimizers is not None
        for run, opt in ((self.p, self.spec.optimizers[0]), (self.t, self.spec.optimizers[1])):
            try:
                run.side.step_optimizer(opt)
            except Exception as e:
                raise ModelRunError(
                    f"the {run.side.name} optimizer raised during step {self.step}: {type(e).__name__}: {e}. "
                    "optimizer must be [paddle_opt, torch_opt] optimizers, or two callables that step and clear."
                ) from e
        self._compare_params("weight")

    # --- comparisons ------------------------------------------------------------------------
    def _cmp(self, a: np.ndarray, b: np.ndarray, *, gradient: bool = False) -> Stats:
        return compare_arrays(a, b, self.opts.atol, self.opts.rtol, self.opts.compare_mode, self.opts.mismatch_ratio,
                              gradient=gradient)

    def _add(self, stage: str, p_path: str, t_path: str, p_cls: str, t_cls: str, stats: Stats, *,
             call: int = 0, item: str = "", order: int | None = None, depth: int = 0, dtype: str = "",
             pev: Event | None = None, tev: Event | None = None) -> None:
        if order is None:
            self._order += 1
            order = self._order
        self.report.records.append(Comparison(
            stage=stage, step=self.step, paddle_path=p_path, torch_path=t_path, paddle_class=p_cls,
            torch_class=t_cls, stats=stats, call=call, item=item, order=order, depth=depth, dtype=dtype,
            paddle_stack=pev.stack if pev else (), torch_stack=tev.stack if tev else ()))

    def _compare_outputs(self, stage: str, pev: Event, tev: Event, p_arrs: list[np.ndarray],
                         t_arrs: list[np.ndarray]) -> None:
        common = dict(call=tev.call, depth=pev.role.depth, dtype=tev.dtype, pev=pev, tev=tev)
        if len(p_arrs) != len(t_arrs):
            if not p_arrs or not t_arrs:
                self._add(stage, pev.role.path, tev.role.path, pev.role.cls, tev.role.cls,
                          structure_mismatch(len(p_arrs), len(t_arrs)), item="output", **common)
                return
            # framework APIs differ here (torch MultiheadAttention also returns the attention
            # weights): compare the leading tensors and say so; the model output stays strict
            n = min(len(p_arrs), len(t_arrs))
            self._warn_once(f"{pev.role.path} ({pev.role.cls}) returns {len(p_arrs)} tensor(s) in paddle and "
                            f"{tev.role.path} ({tev.role.cls}) {len(t_arrs)} in torch; the first {n} are compared.")
            p_arrs, t_arrs = p_arrs[:n], t_arrs[:n]
        for i, (a, b) in enumerate(zip(p_arrs, t_arrs)):
            self._add(stage, pev.role.path, tev.role.path, pev.role.cls, tev.role.cls, self._cmp(a, b),
                      item=_item("output", i, len(p_arrs)), **common)

    def _warn_once(self, text: str) -> None:
        if text not in self.report.warnings:
            self.report.warnings.append(text)

    def _compare_model_outputs(self, p_out: Any, t_out: Any) -> None:
        """The models' own outputs, always compared last in forward (catches root-level code)."""
        t_out = reorder_like(t_out, key_skeleton(p_out))  # same keys, other order, at any depth: pair by key
        p_tensors, t_tensors = PADDLE.flatten(p_out), TORCH.flatten(t_out)
        p_arrs = [PADDLE.to_numpy(t) for t in p_tensors]
        t_arrs = [TORCH.to_numpy(t) for t in t_tensors]
        root_p, root_t = type(self.spec.layer).__name__, type(self.spec.module).__name__
        stack = user_stack()
        if len(p_arrs) != len(t_arrs):
            self._add("forward", "", "", root_p, root_t, structure_mismatch(len(p_arrs), len(t_arrs)),
                      item="model output", order=10**9)
            return
        for i, (a, b) in enumerate(zip(p_arrs, t_arrs)):
            self.report.records.append(Comparison(
                "forward", self.step, "", "", root_p, root_t, self._cmp(a, b), item=_item("model output", i,
                len(p_arrs)), order=10**9 + i, dtype=TORCH.dtype_name(t_tensors[i]), paddle_stack=stack,
                torch_stack=stack))

    def _compare_input_grads(self) -> None:
        """Gradients reaching the model inputs that require grad, compared last in backward.

        For a model without parameters this is the only gradient padiff can see.
        """
        # leaves only: a tensor the forward appended to a list it was given is no input of the run
        p_in = [t for t in PADDLE.flatten(self.spec.paddle_inputs) if PADDLE.requires_grad(t) and t.is_leaf]
        t_in = [t for t in TORCH.flatten(self.spec.torch_inputs) if TORCH.requires_grad(t) and t.is_leaf]
        if len(p_in) != len(t_in):
            return
        root_p, root_t = type(self.spec.layer).__name__, type(self.spec.module).__name__
        for i, (a, b) in enumerate(zip(p_in, t_in)):
            ga, gb = PADDLE.grad(a), TORCH.grad(b)
            if ga is None and gb is None:
                continue
            if ga is None or gb is None:
                stats = _one_sided(f"input gradient exists only on the {'torch' if ga is None else 'paddle'} side")
            else:
                stats = self._cmp(PADDLE.to_numpy(ga), TORCH.to_numpy(gb), gradient=True)
            self._add("backward", "", "", root_p, root_t, stats, item=_item("grad of input", i, len(p_in)),
                      order=10**9 + i, dtype=TORCH.dtype_name(b))

    def _compare_missing_grads(self) -> None:
        """An output gradient that reached only one side is a difference, not a silent pass."""
        for tev in self.t.events:
            pev = tev.partner
            if pev is None or not self.opts.checks_backward or not _compares_output(pev, tev):
                continue
            for i, p_grad in pev.grads.items():
                # paddle hands all-zero gradients to outputs the loss does not use (an LSTM's final
                # states); torch hands none: that is agreement
                if i not in tev.grads and not self.opts.single_step and np.any(p_grad):
                    self._add("backward", pev.role.path, tev.role.path, pev.role.cls, tev.role.cls,
                              _one_sided("gradient reached the paddle output but not the torch output"),
                              call=tev.call, item=_item("grad of output", i, 2), order=-pev.index * 64 + i,
                              depth=pev.role.depth, pev=pev, tev=tev)

    def _compare_params(self, stage: str) -> None:
        """Parameter gradients (``grad``) or values after the optimizer step (``weight``), in paddle layout."""
        which = "grad" if stage == "grad" else "value"
        for (p_path, t_path), (p_role, t_role, idx) in self._pairs_seen.items():
            plan = self._plan(p_role, t_role)
            if plan is None:
                continue
            if t_role.pair is not None and t_role.pair.split_side:
                p_path, t_path = t_role.pair.label("paddle"), t_role.pair.label("torch")
            p_state, t_state = self._state(self.p, p_role), self._state(self.t, t_role)
            converted = plan.convert(torch_arrays(t_state, which))
            t_present = {e.name for e in t_state if (TORCH.grad(e.tensor) if which == "grad" else e.tensor) is not None}
            for k, e in enumerate(p_state):
                link = next((lk for lk in plan.links if lk.paddle_name == e.name), None)
                if link is None:
                    continue
                t_has = all(n in t_present for n in link.torch_names)
                if which == "grad" and not e.trainable and not t_has:
                    continue  # a buffer, or a parameter frozen on both sides
                # frozen on the paddle side only: no paddle grad, which is a difference like the mirror case
                p_t = (PADDLE.grad(e.tensor) if e.trainable else None) if which == "grad" else e.tensor
                if p_t is None and not t_has:
                    continue
                order = -idx * 64 + k if stage == "grad" else idx * 64 + k
                if p_t is None or e.name not in converted:
                    side = "torch" if p_t is None else "paddle"
                    self._add(stage, p_path, t_path, p_role.cls, t_role.cls,
                              _one_sided(f"{stage} exists only on the {side} side"), item=e.name, order=order,
                              depth=p_role.depth)
                    continue
                p_arr = PADDLE.to_numpy(p_t)
                fixed = self._batchnorm_corrected(p_path, t_path, e.name, link.torch_names, p_arr) \
                    if stage == "weight" else None
                stats = (self._cmp(p_arr, converted[e.name]) if fixed is None
                         else replace(self._cmp(fixed, converted[e.name]), reconciled=BATCHNORM_VARIANCE_NOTE))
                self._add(stage, p_path, t_path, p_role.cls, t_role.cls, stats, item=e.name, order=order,
                          depth=p_role.depth, dtype=PADDLE.dtype_name(e.tensor))
        self._compare_param_pairs(stage)

    def _compare_param_pairs(self, stage: str) -> None:
        """Each parameter pair's gradient (``grad``) or value after the step (``weight``), in paddle layout."""
        for k, pp in enumerate(self.spec.resolved.params):
            (pl, pn), (tl, tn) = pp.owner("paddle"), pp.owner("torch")
            p_e = next(e for e in self.p.owned.get(pl, []) if e.name == pn)
            t_e = next(e for e in self.t.owned.get(tl, []) if e.name == tn)
            if stage == "grad" and not p_e.trainable:
                continue
            plan = plan_param(pp, _layer_at(self.p, pl), [p_e], _layer_at(self.t, tl), [t_e])
            p_t = PADDLE.grad(p_e.tensor) if stage == "grad" else p_e.tensor
            t_t = TORCH.grad(t_e.tensor) if stage == "grad" else t_e.tensor
            common = dict(item=f"{pp.paddle_param} <-> {pp.torch_param}", order=10**8 + k,
                          depth=0 if pl == "" else pl.count(".") + 1)
            p_cls, t_cls = type(_layer_at(self.p, pl)).__name__, type(_layer_at(self.t, tl)).__name__
            if p_t is None and t_t is None:
                continue
            if p_t is None or t_t is None:
                side = "torch" if p_t is None else "paddle"
                self._add(stage, pl, tl, p_cls, t_cls, _one_sided(f"{stage} exists only on the {side} side"), **common)
                continue
            converted = plan.links[0].fn([TORCH.to_numpy(t_t)])
            self._add(stage, pl, tl, p_cls, t_cls, self._cmp(PADDLE.to_numpy(p_t), converted),
                      dtype=PADDLE.dtype_name(p_e.tensor), **common)

    def _batchnorm_corrected(self, p_path: str, t_path: str, name: str, torch_names: tuple[str, ...] | list[str],
                             value: np.ndarray) -> np.ndarray | None:
        """Paddle's running variance in torch's convention, when this entry is one and torch's twin too."""
        if len(torch_names) != 1:
            return None
        p_owner, _, p_leaf = _join(p_path, name).rpartition(".")
        t_owner = _join(t_path, torch_names[0]).rpartition(".")[0]
        try:
            t_layer = _layer_at(self.t, t_owner)
        except PadiffInternalError:
            return None
        if not TORCH.is_unbiased_batchnorm(t_layer):
            return None
        return self._bn.corrected(p_owner, p_leaf, value)

    def _state(self, run: _SideRun, role: Role) -> list[StateEntry]:
        if role.pair is not None and role.pair.split_side:
            return pair_state(run.owned, role.pair.paths(run.side.name), False)
        return pair_state(run.owned, (role.path,), role.unit)

    def _plan(self, p_role: Role, t_role: Role) -> PairPlan | None:
        key = (p_role.path, t_role.path)
        if key not in self._plans:
            p_state, t_state = self._state(self.p, p_role), self._state(self.t, t_role)
            plan = None
            fused = t_role.pair if t_role.pair is not None and t_role.pair.split_side else None
            if p_state or t_state:
                try:
                    if fused is not None:
                        self._layer_table()
                        plan = plan_fused(fused, self.p.by_path or {}, p_state, self.t.by_path or {}, t_state)
                    else:
                        plan = plan_pair(p_role.path, _layer_at(self.p, p_role.path), p_state,
                                         t_role.path, _layer_at(self.t, t_role.path), t_state)
                    if plan.layer_init is not None:
                        self.report.warnings.append(
                            f"{p_role.path} <-> {t_role.path}: weights use a user special init, so its parameter "
                            "gradients and values are compared through the outputs only.")
                        plan = None
                except WeightAssignError as e:
                    self.report.warnings.append(f"parameters not compared: {e}")
            self._plans[key] = plan
        return self._plans[key]

    def _layer_table(self) -> None:
        """Fill both sides' path -> layer tables (fused plans look up every part's class)."""
        _layer_at(self.p, "")
        _layer_at(self.t, "")

    def _check_pairing(self, pairer: OnlinePairer) -> None:
        if self._pairing_checked:
            return
        self._pairing_checked = True
        for side, events in (("paddle", pairer.unmatched_paddle), ("torch", pairer.unmatched_torch)):
            seen = set()
            for ev in events:
                if ev.role.path in seen:
                    continue
                seen.add(ev.role.path)
                self.report.skipped.append(SkippedLayer(side, ev.role.path, ev.role.cls, _unpaired_reason(ev)))
        # a parameter-free layer without a partner is not a pairing failure (one module called
        # twice against two modules, a functional call on the other side): no warning for it
        hard = [ev for ev in pairer.unmatched_paddle + pairer.unmatched_torch if ev.role.stateful]
        if hard and self.spec.strict_pairing:
            p_n = sum(1 for e in self.p.events if e.role.kind == "hard")
            t_n = sum(1 for e in self.t.events if e.role.kind == "hard")
            lines = [f"  {('paddle' if ev in pairer.unmatched_paddle else 'torch')}: {ev.role.path or '<root>'} "
                     f"({ev.role.cls}), call {ev.call}" for ev in hard[:10]]
            raise MappingError(
                f"cannot pair the models in call order: the paddle model called {p_n} layers that hold "
                f"parameters, the torch model {t_n}. Unpaired:\n" + "\n".join(lines) +
                "\nPass layer_map='auto' to let padiff propose a map from the model structure, or a LayerMap "
                "/ dict {paddle_layer: torch_module} for the layers that differ (ignore extra ones with "
                "LayerMap.ignore)."
            )
        for ev in hard:
            self.report.warnings.append(
                f"{ev.role.path or '<root>'} ({ev.role.cls}) holds parameters but was not paired; it is not compared.")

    def _raise_hook_error(self) -> None:
        if self._hook_error is not None:
            err, self._hook_error = self._hook_error, None
            if isinstance(err, PadiffError):
                raise err
            raise PadiffInternalError(f"a padiff hook failed: {type(err).__name__}: {err}") from err


def _unpaired_reason(ev: Event) -> str:
    """Why one layer call found no partner, in the words of its role."""
    if ev.role.kind == "soft":
        return ("no counterpart of the same kind between the same paired neighbours on the other side "
                "(functional call there, or an extra layer)")
    if ev.role.kind == "explicit" and not ev.role.stateful:
        return (f"call {ev.call} has no partner call: the layer is called more often than its mapped partner "
                "(holds no parameters; its other calls are compared)")
    if ev.role.kind == "explicit":
        return f"call {ev.call} has no partner call in the mapped layer"
    return "no counterpart found in call order"


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _raising_layer(run: _SideRun, exc: BaseException) -> tuple[str, str] | None:
    """``(path, class)`` of the innermost layer of this model whose code is in the traceback."""
    paths: dict[int, str] = {}
    for path, layer in run.side.named_layers(run.root):
        paths.setdefault(id(layer), path)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if obj is not None and id(obj) in paths:
            found = (paths[id(obj)], type(obj).__name__)
        tb = tb.tb_next
    return found


def _hooked_layers(run: _SideRun) -> list[tuple[Any, Role]]:
    out, seen = [], set()
    for path, layer in run.side.named_layers(run.root):
        role = run.roles.get(path)
        if role is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append((layer, role))
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _layer_at(run: _SideRun, path: str) -> Any:
    # one walk of the tree per run, not one per paired layer (resnet50: ~160 walks of ~300 layers)
    if run.by_path is None:
        run.by_path = {}
        for p, layer in run.side.named_layers(run.root):
            run.by_path.setdefault(p, layer)
    if path in run.by_path:
        return run.by_path[path]
    raise PadiffInternalError(f"no {run.side.name} layer at {path!r}")


def _compares_output(pev: Event, tev: Event) -> bool:
    pair = pev.role.pair or tev.role.pair
    return pair is None or pair.compare_output


def _replace_inputs(args: tuple, kwargs: dict, paddle_inputs: list[np.ndarray]) -> tuple[tuple, dict] | None:
    tensors = TORCH.flatten((args, kwargs))
    if len(tensors) != len(paddle_inputs):
        return None
    it = iter(paddle_inputs)
    replacements = {}
    for t in tensors:
        arr = next(it)
        if t.is_floating_point() and tuple(t.shape) == arr.shape:
            replacements[id(t)] = TORCH.from_numpy(arr, like=t)

    def swap(t: Any) -> Any:
        return replacements.get(id(t), t)

    return TORCH.map_tensors(args, swap), TORCH.map_tensors(kwargs, swap)


def _part_item(i: int, n: int, part: Event, parts: list[Event]) -> str:
    return f"{_item('output', i, n)} (part {parts.index(part) + 1}/{len(parts)} of the concatenation)"


def _item(base: str, i: int, n: int) -> str:
    return f"{base}[{i}]" if n > 1 else base


def _one_sided(note: str) -> Stats:
    return Stats.failure(note, kind="one_sided", count=1)
