"""The comparisons of layer outputs, output gradients, model outputs, input gradients and the loss.

A :class:`Comparer` turns host arrays into :class:`~padiff.report.records.Stats` under the
run's options and hands each result to the :class:`~padiff.runtime.engine.sink.RecordSink`
with its :class:`~padiff.runtime.engine.sink.Site` and :class:`~padiff.runtime.engine.sink.SortKey`.
It does not run models or hook anything: it is given what to compare.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from padiff.adapters import PADDLE, TORCH
from padiff.adapters.frames import user_stack
from padiff.compare.arrays import structure_mismatch
from padiff.compare.calibrated import allowed_ratio, judge
from padiff.compare.items import Items, align_items
from padiff.compare.keyed import key_skeleton, reorder_like
from padiff.compare.verdict import verdict
from padiff.options import DiffOptions
from padiff.report.records import Stats
from padiff.runtime.engine.reference import Ref, ReferenceRun
from padiff.runtime.engine.sink import RecordSink, Site, SortKey
from padiff.runtime.engine.vanishing import VanishingGradients
from padiff.runtime.pairing import Event


class Comparer:
    """Compares under one run's options and records into one sink."""

    def __init__(self, opts: DiffOptions, sink: RecordSink) -> None:
        self.opts = opts
        self.sink = sink
        self.reference: ReferenceRun | None = None  # compare_mode="calibrated": the float64 torch run
        self.vanishing = VanishingGradients()  # call begin_backward before each backward pass

    def stats(self, a: np.ndarray, b: np.ndarray, *, gradient: bool = False, ref: Ref | None = None,
              dtype: str = "", of_gradients: bool = False) -> Stats:
        """Paddle array ``a`` against torch array ``b`` (``gradient``: both are gradients of outputs).

        ``compare_mode="calibrated"``: judged against ``ref``, torch's float64 reference of ``b``
        (:func:`padiff.compare.calibrated.judge`; none: the ``mean`` verdict, saying so);
        ``of_gradients``: ``a`` and ``b`` are gradients, so noise is measured against this pass's gradients.
        The allowed ratio depends on the step (:func:`~padiff.compare.calibrated.allowed_ratio`).
        """
        o = self.opts
        if o.compare_mode == "calibrated":
            r = ref if ref is not None else Ref(None, "not recorded for this kind of comparison")
            return judge(a, b, r.array, r.why, dtype or str(b.dtype), atol=o.atol, rtol=o.rtol,
                         mismatch_ratio=o.mismatch_ratio, gradient=gradient, k=allowed_ratio(self.sink.step),
                         allowance=r.allowance,
                         magnitude=r.magnitude, noise_scale=self.vanishing.scale if of_gradients else 0.0)
        return verdict(a, b, o, gradient=gradient)

    # --- forward ---------------------------------------------------------------------------
    def outputs(self, stage: str, pev: Event, tev: Event, p_arrs: list[np.ndarray], t_arrs: list[np.ndarray]) -> None:
        """A paired call's output tensors, item by item.

        Framework APIs differ in how many tensors some layers return (torch's MultiheadAttention
        also returns the attention weights, a router its logits too): the shorter list is laid
        onto the order-preserving subsequence of the longer one whose shapes fit and whose values
        agree best (:mod:`padiff.compare.items`), with a warning; ``tev.items`` keeps the choice
        for the gradients.
        """
        site = Site.of_events(pev, tev)
        if (not p_arrs or not t_arrs) and len(p_arrs) != len(t_arrs):
            self.sink.add(stage, site, structure_mismatch(len(p_arrs), len(t_arrs)), item="output", dtype=tev.dtype)
            return
        seen: dict[tuple[int, int], Stats] = {}

        def stats(p: int, t: int) -> Stats:
            if (p, t) not in seen:
                ref = (self.reference.output(tev.role.path, tev.call, pev.keys, t)
                       if self.reference is not None else None)
                seen[p, t] = self.stats(p_arrs[p], t_arrs[t], ref=ref, dtype=tev.dtype)
            return seen[p, t]

        def cost(items: Items) -> float:
            return sum(0.0 if s.passed else 1.0 + _finite(s.mean_abs_diff) / (1.0 + _finite(s.mean_abs_ref))
                       for s in (stats(p, t) for p, t in items))

        items = align_items([a.shape for a in p_arrs], [b.shape for b in t_arrs], cost)
        if len(p_arrs) != len(t_arrs):
            tev.items = items
            self.sink.warn_once(f"{pev.role.path} ({pev.role.cls}) returns {len(p_arrs)} tensor(s) in paddle and "
                                f"{tev.role.path} ({tev.role.cls}) {len(t_arrs)} in torch; compared (paddle, torch): "
                                + ", ".join(f"({p}, {t})" for p, t in items) + " (by shape and value)")
        for p, t in items:
            self.sink.add(stage, site, stats(p, t), item=item_name("output", p, len(p_arrs)), dtype=tev.dtype)

    def model_outputs(self, p_out: Any, t_out: Any, p_cls: str, t_cls: str,
                      p_arrays: list[np.ndarray] | None = None) -> None:
        """The models' own outputs, always last in forward (catches code at the root).

        ``p_arrays``: host copies of paddle's output tensors taken earlier (paddle's backward
        may be running in another thread now), in :meth:`flatten` order.
        """
        keys = key_skeleton(p_out)
        t_out = reorder_like(t_out, keys)  # same keys, other order, at any depth: pair by key
        p_tensors, t_tensors = PADDLE.flatten(p_out), TORCH.flatten(t_out)
        p_arrs = p_arrays if p_arrays is not None else [PADDLE.to_numpy(t) for t in p_tensors]
        t_arrs = [TORCH.to_numpy(t) for t in t_tensors]
        if len(p_arrs) != len(t_arrs):
            self.sink.add("forward", Site.roots(p_cls, t_cls), structure_mismatch(len(p_arrs), len(t_arrs)),
                          item="model output", key=SortKey.model(0))
            return
        site = Site.roots(p_cls, t_cls, user_stack())
        for i, (a, b) in enumerate(zip(p_arrs, t_arrs)):
            ref = self.reference.model_output(keys, i) if self.reference is not None else None
            stats = self.stats(a, b, ref=ref, dtype=TORCH.dtype_name(t_tensors[i]))
            self.sink.add("forward", site, stats, item=item_name("model output", i, len(p_arrs)),
                          key=SortKey.model(i), dtype=TORCH.dtype_name(t_tensors[i]))

    def loss(self, p_loss: Any, t_loss: Any) -> None:
        """The two losses (paddle's may be a host copy already)."""
        p_arr = p_loss if isinstance(p_loss, np.ndarray) else PADDLE.to_numpy(p_loss)
        ref = self.reference.loss_ref() if self.reference is not None else None
        stats = self.stats(p_arr, TORCH.to_numpy(t_loss), ref=ref, dtype=TORCH.dtype_name(t_loss))
        self.sink.add("loss", Site("", "", "loss", "loss"), stats,
                      item="loss", dtype=TORCH.dtype_name(t_loss))

    # --- backward --------------------------------------------------------------------------
    def output_grad(self, pev: Event, tev: Event, i: int, p_grad: np.ndarray, t_grad: np.ndarray, *,
                    item: str | None = None, reconcile: bool = True, ref: Ref | None = None) -> None:
        """The gradient reaching output ``i`` of a paired call on each side.

        ``reconcile``: shapes that differ by broadcasting are reconciled as gradients (fused parts,
        compared slice by slice, are not); ``ref``: the float64 reference of ``t_grad`` when the caller
        cut it (a fused part's slice), else it is looked up by ``tev``'s call.
        """
        if ref is None and self.reference is not None and reconcile:
            t_i = i if tev.items is None else next((t for p, t in tev.items if p == i), i)
            ref = self.reference.output_grad(tev.role.path, tev.call, pev.keys, t_i)
        stats = self.stats(p_grad, t_grad, gradient=reconcile, ref=ref, dtype=tev.dtype, of_gradients=True)
        stats, warning = self.vanishing.judge(stats, tev.dtype, tev.role.path, tev.role.cls)
        if warning:
            self.sink.warn_once(warning)
        self.sink.add("backward", Site.of_events(pev, tev), stats,
                      item=item or item_name("grad of output", i, 2), key=SortKey.backward(pev.index, i),
                      dtype=tev.dtype)
        tev.grads[i] = True

    def begin_backward(self, t_out: Any) -> None:
        """A backward pass starts from torch output ``t_out`` (its size sets the smallest gradient scale)."""
        self.vanishing.begin(sum(TORCH.numel(t) for t in TORCH.flatten(t_out) if TORCH.is_floating(t)))

    def missing_grads(self, t_events: Iterable[Event]) -> None:
        """An output gradient that reached only paddle's side is a difference, not a silent pass."""
        for tev in t_events:
            pev = tev.partner
            if pev is None or not self.opts.checks_backward or not compares_output(pev, tev):
                continue
            for i, p_grad in pev.grads.items():
                # paddle hands all-zero gradients to outputs the loss does not use (an LSTM's final
                # states); torch hands none: that is agreement
                # an output torch does not return at all (paddle's MoE block also returns its router
                # logits) is compared in neither pass, as in forward
                beyond = bool(tev.shapes) and i >= len(tev.shapes) and not (tev.role.pair and tev.role.pair.split_side)
                if tev.items is not None:  # the two return different numbers of tensors: only the paired ones
                    beyond = all(p != i for p, _ in tev.items)
                if i not in tev.grads and not beyond and not self.opts.single_step and np.any(p_grad):
                    self.sink.add("backward", Site.of_events(pev, tev),
                                  one_sided("gradient reached the paddle output but not the torch output"),
                                  item=item_name("grad of output", i, 2), key=SortKey.backward(pev.index, i))

    def input_grads(self, p_inputs: Any, t_inputs: Any, p_cls: str, t_cls: str) -> None:
        """Gradients reaching the model inputs that require grad, last in backward.

        For a model without parameters this is the only gradient padiff can see. Leaves only:
        a tensor the forward appended to a list it was given is no input of the run.
        """
        p_in = [t for t in PADDLE.flatten(p_inputs) if PADDLE.requires_grad(t) and PADDLE.is_leaf(t)]
        t_in = [t for t in TORCH.flatten(t_inputs) if TORCH.requires_grad(t) and TORCH.is_leaf(t)]
        if len(p_in) != len(t_in):
            return
        for i, (a, b) in enumerate(zip(p_in, t_in)):
            ga, gb = PADDLE.grad(a), TORCH.grad(b)
            if ga is None and gb is None:
                continue
            if ga is None or gb is None:
                stats = one_sided(f"input gradient exists only on the {'torch' if ga is None else 'paddle'} side")
            else:
                ref = self.reference.input_grad(i) if self.reference is not None else None
                stats = self.stats(PADDLE.to_numpy(ga), TORCH.to_numpy(gb), gradient=True, ref=ref,
                                   dtype=TORCH.dtype_name(b))
            self.sink.add("backward", Site.roots(p_cls, t_cls), stats, item=item_name("grad of input", i, len(p_in)),
                          key=SortKey.model(i), dtype=TORCH.dtype_name(b))


def compares_output(pev: Event, tev: Event) -> bool:
    """False for a pair whose map entry says its outputs are not compared (only its weights)."""
    pair = pev.role.pair or tev.role.pair
    return pair is None or pair.compare_output


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 1e30


def item_name(base: str, i: int, n: int) -> str:
    """``"output"`` for a single tensor, ``"output[1]"`` among several."""
    return f"{base}[{i}]" if n > 1 else base


def one_sided(note: str) -> Stats:
    """The record of a tensor that exists on one side only: a difference of unknown size."""
    return Stats.failure(note, kind="one_sided", count=1)
