"""Fused pairs in a run: one layer against several (``qkv_proj`` against ``q/k/v_proj``).

Split on the torch side: every torch part's call pairs with the one fused paddle call; when
the last part has run, each part's output is compared against its slice of the fused paddle
output, and each part's output gradient against its slice of the fused gradient. Split on
the paddle side: the fused torch output is cut into the paddle parts' sizes and each slice
compared with its part. The slicing itself is :mod:`padiff.compare.fused`. With ``compare_mode="calibrated"`` each
part is judged against its own float64 reference: a torch part's own output (or gradient), or
the fused torch tensor's reference cut exactly as the fused tensor is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from padiff.adapters import TORCH
from padiff.adapters.hooks import HookSet
from padiff.compare.arrays import structure_mismatch
from padiff.compare.fused import FusedCall, assemble, axis_of, describe, part_indices, take
from padiff.runtime.engine.comparisons import Comparer, compares_output, item_name
from padiff.runtime.engine.passes import Pass
from padiff.runtime.engine.recording import HookErrors
from padiff.runtime.engine.reference import Ref
from padiff.runtime.engine.sink import Site
from padiff.runtime.grad_exchange import GradExchange
from padiff.runtime.pairing import Event


class FusedComparisons:
    """The comparisons of fused pairs within one pass; :meth:`begin_pass` starts a new one."""

    def __init__(self, comparer: Comparer, errors: HookErrors) -> None:
        self.cmp = comparer
        self.sink = comparer.sink
        self.errors = errors
        self.exchange = GradExchange()
        self.calls: dict[int, FusedCall] = {}  # paddle event index -> its torch parts so far

    def begin_pass(self, exchange: GradExchange) -> None:
        """Forget the previous pass; paddle's gradients now come through ``exchange``."""
        self.calls = {}
        self.exchange = exchange

    def after_torch_call(self, hooks: HookSet, ps: Pass, pev: Event, tev: Event, outs: list[Any]) -> None:
        """A torch call of a fused pair has returned ``outs`` (flattened)."""
        pair = tev.role.pair
        assert pair is not None
        if pair.split_side == "torch":
            self._torch_part(hooks, ps, pev, tev, outs)
            return
        pieces = tev.pieces or []
        if ps.compare_forward and pair.compare_output:
            t_arrs = [TORCH.host_view(t) for t in outs]
            for i, t_arr in enumerate(t_arrs):
                refs = self._ref_slices(pieces, self._output_ref(tev, pev, i), i, pair.axis, pair.groups)
                for k, (pe, piece) in enumerate(zip(pieces, self._torch_slices(pieces, t_arr, i, pair.axis,
                                                                                pair.groups) or [])):
                    site = Site.of_events(pe, tev)
                    if piece is None:
                        self.sink.add("forward", site, structure_mismatch(1, 0),
                                      item=item_name("output", i, len(t_arrs)), dtype=tev.dtype)
                        continue
                    stats = self.cmp.stats((pe.outputs or [])[i], piece, ref=refs[k], dtype=tev.dtype)
                    self.sink.add("forward", site, stats, item=_part_item(i, len(t_arrs), pe, pieces), dtype=tev.dtype)
        for pe in pieces:
            pe.outputs = pe.inputs = None
        if ps.backward:
            for i, t in enumerate(outs):
                if TORCH.requires_grad(t):
                    hooks.add(TORCH.add_grad_hook(t, self._fused_grad_checker(pieces, tev, i, ps)))

    def _torch_part(self, hooks: HookSet, ps: Pass, pev: Event, tev: Event, outs: list[Any]) -> None:
        pair = tev.role.pair
        assert pair is not None
        call = self.calls.setdefault(pev.index, FusedCall(len(pair.torch_parts)))
        k = pair.torch_parts.index(tev.role.path)
        call.shapes[k] = [TORCH.shape(t) for t in outs]
        call.events[k] = tev
        if ps.compare_forward:
            call.outputs[k] = [np.array(TORCH.host_view(t)) for t in outs]
        if call.complete:
            if ps.compare_forward and pair.compare_output:
                self._compare_torch_parts(pev, call, pair.axis, pair.groups)
            pev.outputs = pev.inputs = None
        if ps.backward:
            for i, t in enumerate(outs):
                if TORCH.requires_grad(t):
                    hooks.add(TORCH.add_grad_hook(t, self._part_grad_checker(pev, tev, call, k, i, ps)))

    def _torch_slices(self, pieces: list[Event], t_arr: np.ndarray, i: int,
                      axis: int, groups: int = 1) -> list[np.ndarray | None] | None:
        """The fused torch output ``t_arr`` cut into the paddle parts' sizes (None for a part that does not fit)."""
        ax = axis_of(axis, t_arr.ndim)
        shapes = [pe.shapes[i] if i < len(pe.shapes) else None for pe in pieces]
        if ax is None or any(s is None or len(s) != t_arr.ndim for s in shapes):
            return [None] * len(pieces)
        sizes = [int(s[ax]) for s in shapes]  # type: ignore[index]
        index = part_indices(sizes, groups)
        if index is None or sum(sizes) != t_arr.shape[ax]:  # the parts do not make up the fused output
            return [None] * len(pieces)
        return [take(t_arr, ax, idx) for idx in index]

    def _compare_torch_parts(self, pev: Event, call: FusedCall, axis: int, groups: int = 1) -> None:
        """Each torch part's output against its slice of the fused paddle output."""
        p_arrs = pev.outputs or []
        for i, p_arr in enumerate(p_arrs):
            index = call.part_index(i, axis, groups)
            ax = axis_of(axis, p_arr.ndim)
            whole = index is not None and ax is not None and sum(x.size for x in index) == p_arr.shape[ax]
            refs = [self._output_ref(call.events[k], pev, i) for k in range(call.n_parts)]
            for k in range(call.n_parts):
                tev = call.events[k]
                site = Site.of_events(pev, tev)
                outs = call.outputs.get(k, [])
                if not whole or i >= len(outs):
                    stats = (structure_mismatch(len(p_arrs), len(outs)) if i >= len(outs) else
                             self.cmp.stats(p_arr, np.concatenate([call.outputs[j][i] for j in range(call.n_parts)],
                                                                  axis=axis), ref=_joined(refs, axis), dtype=tev.dtype))
                    self.sink.add("forward", site, stats, item=item_name("output", i, len(p_arrs)), dtype=tev.dtype)
                    continue
                assert index is not None and ax is not None
                self.sink.add("forward", site,
                              self.cmp.stats(take(p_arr, ax, index[k]), outs[i], ref=refs[k], dtype=tev.dtype),
                              item=f"{item_name('output', i, len(p_arrs))} {describe(index[k], groups)} of axis {axis}",
                              dtype=tev.dtype)

    # --- the float64 reference of each part (compare_mode="calibrated") ---------------------------
    def _output_ref(self, tev: Event, pev: Event, i: int) -> Ref | None:
        """The float64 reference of torch output ``i`` of ``tev``'s call (None outside calibrated runs)."""
        ref = self.cmp.reference
        return None if ref is None else ref.output(tev.role.path, tev.call, pev.keys, i)

    def _grad_ref(self, tev: Event, pev: Event, i: int) -> Ref | None:
        """The float64 reference of the gradient reaching torch output ``i`` of ``tev``'s call."""
        ref = self.cmp.reference
        return None if ref is None else ref.output_grad(tev.role.path, tev.call, pev.keys, i)

    def _ref_slices(self, pieces: list[Event], whole: Ref | None, i: int, axis: int,
                    groups: int) -> list[Ref | None]:
        """A fused torch tensor's reference cut into the paddle parts' slices, as the tensor itself is cut."""
        if whole is None:
            return [None] * len(pieces)
        if whole.array is None:
            return [whole] * len(pieces)
        cut = self._torch_slices(pieces, whole.array, i, axis, groups) or [None] * len(pieces)
        return [Ref(c, "" if c is not None else "the float64 tensor does not cut into the parts") for c in cut]

    def _part_grad_checker(self, pev: Event, tev: Event, call: FusedCall, k: int, i: int,
                           ps: Pass) -> Callable[[Any], Any]:
        """Gradient of torch part ``k``'s output ``i`` against its slice of the fused paddle output's gradient."""
        pair = tev.role.pair
        assert pair is not None

        def check(grad: Any) -> Any:
            if i not in call.grads:
                call.grads[i] = self.exchange.take(pev.grads, i, i in pev.grad_hooked)
            p_grad = call.grads[i]
            index = call.part_index(i, pair.axis, pair.groups)
            if p_grad is None or index is None:
                return None
            ax = axis_of(pair.axis, p_grad.ndim)
            assert ax is not None
            piece = take(p_grad, ax, index[k])
            if ps.compare_backward and compares_output(pev, tev):
                self.cmp.output_grad(pev, tev, i, piece, TORCH.host_view(grad), reconcile=False,
                                     item=f"{item_name('grad of output', i, 2)} {describe(index[k], pair.groups)}",
                                     ref=self._grad_ref(tev, pev, i))
            if ps.sync_grads and piece.shape == TORCH.shape(grad):
                return TORCH.from_numpy(np.ascontiguousarray(piece), like=grad)
            return None

        return self.errors.guard(check)

    def _fused_grad_checker(self, pieces: list[Event], tev: Event, i: int, ps: Pass) -> Callable[[Any], Any]:
        """Gradient of the fused torch output ``i`` cut into the paddle parts, each against its part."""
        pair = tev.role.pair
        assert pair is not None

        def check(grad: Any) -> Any:
            t_grad = TORCH.host_view(grad)
            slices = self._torch_slices(pieces, t_grad, i, pair.axis, pair.groups)
            refs = self._ref_slices(pieces, self._grad_ref(tev, pieces[0], i) if pieces else None, i, pair.axis,
                                    pair.groups)
            p_grads = []
            for k, (pe, piece) in enumerate(zip(pieces, slices or [])):
                p_grad = self.exchange.take(pe.grads, i, i in pe.grad_hooked)
                p_grads.append(p_grad)
                if p_grad is None or piece is None or not ps.compare_backward:
                    continue
                self.cmp.output_grad(pe, tev, i, p_grad, piece, reconcile=False, ref=refs[k])
            ax = axis_of(pair.axis, t_grad.ndim)
            if ps.sync_grads and p_grads and all(g is not None for g in p_grads) and ax is not None:
                whole = assemble(p_grads, ax, pair.groups)  # type: ignore[arg-type]
                if whole.shape == TORCH.shape(grad):
                    return TORCH.from_numpy(whole, like=grad)
            return None

        return self.errors.guard(check)


def _joined(refs: list[Ref | None], axis: int) -> Ref | None:
    """The parts' references joined along ``axis`` (the fused tensor's), when every part has one."""
    if not refs or any(r is None for r in refs):
        return None
    arrays = [r.array for r in refs if r is not None and r.array is not None]
    if len(arrays) != len(refs):
        return next(r for r in refs if r is not None and r.array is None)
    try:
        return Ref(np.concatenate(arrays, axis=axis))
    except ValueError:
        return Ref(None, "the float64 parts do not join along the fused axis")


def _part_item(i: int, n: int, part: Event, parts: list[Event]) -> str:
    return f"{item_name('output', i, n)} (part {parts.index(part) + 1}/{len(parts)} of the concatenation)"
