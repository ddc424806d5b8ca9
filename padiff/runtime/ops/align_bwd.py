"""Where two recorded op sequences part in backward: pure numpy, no framework import.

The ops are paired as in forward (:func:`~padiff.runtime.ops.align.align`) and walked in
backward order (last forward op first). The first pair whose output gradients agree and
whose input gradients do not is named (``kind="op"``): its own share of the input gradients
(:meth:`OpGrads.vjp`) is compared, so an op that only shares a tensor with the faulty one is
not blamed. A gradient that a hook registered on an op's output changes on one side is named
at that op (``kind="hook"``). An output gradient that already differs though every pair after
it agreed came back through something no recorded op accounts for — a custom autograd
``Function`` / ``PyLayer``, an op only one side ran — and is named at that op (``kind="output"``)
with what the gap holds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from padiff.adapters.op_events import OpEvent
from padiff.report.records import Stats
from padiff.runtime.compare import compare_arrays
from padiff.runtime.ops.align import Compare, align, rel_err

Grad = np.ndarray | None


class OpGrads(Protocol):
    """What one side's backward gave each recorded op (see :class:`~padiff.runtime.ops.grads.GradTrace`)."""

    def out_grads(self, i: int) -> list[tuple[Grad, Grad]]: ...
    def in_grads(self, i: int) -> list[Grad]: ...
    def vjp(self, i: int) -> list[Grad]: ...
    def unrecorded(self, i: int) -> list[str]: ...
    def has_grads(self, i: int) -> bool: ...
    def produced(self, i: int) -> list[bool]: ...


@dataclass(frozen=True)
class BackwardDivergence:
    """The first op pair, in backward order, where the gradients part."""

    paddle: OpEvent | None  # None: the finding is an op only torch runs (a gradient hook on its output)
    torch: OpEvent | None
    stats: Stats
    kind: str  # "op": its backward; "hook": a gradient hook on its output; "output": the gradient it got
    item: str  # which tensor: "input 1", "output 0"
    hooked: tuple[str, ...] = ()  # sides whose gradient hooks changed the output gradient
    only_paddle: tuple[OpEvent, ...] = ()  # gradient-carrying ops one side ran, after the pair in forward
    only_torch: tuple[OpEvent, ...] = ()
    unrecorded: tuple[tuple[str, str], ...] = ()  # (side, backward node) no recorded op accounts for
    inside: tuple[OpEvent | None, OpEvent | None] = (None, None)  # last op without gradients in the gap (a
    # custom Function's forward body runs its ops so), per side
    agreed_after: int = 0  # op pairs whose gradients agreed before this one in backward order


@dataclass(frozen=True)
class _Worst:
    k: int  # which tensor of the list
    stats: Stats
    err: float  # relative error (inf: a gradient on one side only)
    tol: float  # the relative error this dtype may have


def _worst(ps: list[Grad], ts: list[Grad], cmp: Compare, rtol: float) -> _Worst | None:
    """The tensor whose gradients differ most, relative to their size (None: nothing comparable).

    Gradients are judged by relative error only: their scale is the seeded output gradient's,
    not the run's, so an absolute tolerance means nothing here. A gradient that reaches one
    side only (the other does not differentiate through the tensor) differs infinitely; all
    zeros against none is agreement (paddle's gradients of unused outputs).
    """
    worst: _Worst | None = None
    for k, (a, b) in enumerate(zip(ps, ts)):
        if a is None and b is None:
            continue
        if a is None or b is None:
            if not np.any(a if b is None else b):
                continue
            alone = "paddle" if b is None else "torch"
            return _Worst(k, Stats.failure(f"a gradient reaches it on the {alone} side only (the other side does "
                                           "not differentiate through it: detached, stop_gradient, no_grad)",
                                           kind="one_sided", count=1), math.inf, rtol)
        if a.shape != b.shape:
            if a.ndim == 2 and a.T.shape == b.shape:
                a = a.T
            elif a.size == b.size:
                a, b = a.reshape(-1), b.reshape(-1)
            else:
                continue  # not comparable position by position: no verdict
        elif a.ndim == 2 and a.shape[0] == a.shape[1] and rel_err(a.T, b) < rel_err(a, b):
            a = a.T  # a square weight: paddle's Linear holds it transposed
        eps = max((float(np.finfo(x.dtype).eps) for x in (a, b) if x.dtype.kind == "f"),
                  default=float(np.finfo("f4").eps))
        err = rel_err(a, b)
        if worst is None or err > worst.err:
            worst = _Worst(k, cmp(a, b), err, max(rtol, 64 * eps))
    return worst


def _jump(w: _Worst | None, before: float) -> bool:
    """Whether ``w`` differs beyond its tolerance and well beyond what came in (``before``)."""
    return w is not None and w.err > w.tol and w.err > 4 * before


def _changed(early: Grad, late: Grad) -> bool:
    return early is not None and late is not None and (
        early.shape != late.shape or not np.array_equal(early, late))


def _last_without(ops: list[OpEvent], grads: OpGrads) -> OpEvent | None:
    return next((o for o in reversed(ops) if not grads.has_grads(o.index)), None)


def _hooked_alone(p_gap: list[OpEvent], pg: OpGrads, t_gap: list[OpEvent], tg: OpGrads,
                  rtol: float) -> BackwardDivergence | None:
    """An op only one side runs whose output gradient a gradient hook changes (no counterpart needed to see it)."""
    for ops, grads, side in ((t_gap, tg, "torch"), (p_gap, pg, "paddle")):
        for o in reversed(ops):
            made = grads.produced(o.index)
            for k, (early, late) in enumerate(grads.out_grads(o.index)):
                if early is None or late is None or not made[k] or not _changed(early, late):
                    continue
                w = _worst([late], [early], lambda a, b: compare_arrays(a, b, 0.0, rtol, "mean"), rtol)
                if w is not None and w.err > w.tol:
                    return BackwardDivergence(o if side == "paddle" else None, o if side == "torch" else None,
                                              w.stats, "hook", f"output {k}", hooked=(side,),
                                              only_paddle=(o,) if side == "paddle" else (),
                                              only_torch=(o,) if side == "torch" else ())
    return None


def first_backward_divergence(p_ops: list[OpEvent], t_ops: list[OpEvent], pg: OpGrads, tg: OpGrads,
                              cmp: Compare, rtol: float = 0.0) -> BackwardDivergence | None:
    """The first place, in backward order, where the two sides' gradients part (None if nowhere).

    ``rtol``: the relative error gradients may have (at least a float rounding floor).
    """
    pairs = [(i, j) for i, j in align(p_ops, t_ops) if pg.has_grads(i) and tg.has_grads(j)]
    after_i, after_j = len(p_ops), len(t_ops)  # the pair visited before (later in forward)
    for agreed, (i, j) in enumerate(reversed(pairs)):
        alone = _hooked_alone(p_ops[i + 1:after_i], pg, t_ops[j + 1:after_j], tg, rtol)
        if alone is not None:
            return dataclasses.replace(alone, agreed_after=agreed)
        p, t = p_ops[i], t_ops[j]
        po, to = pg.out_grads(i), tg.out_grads(j)
        early = _worst([e for e, _ in po], [e for e, _ in to], cmp, rtol)
        e_out = early.err if early is not None else 0.0
        if early is not None and early.err > early.tol:
            gap_p = tuple(o for o in p_ops[i + 1:after_i] if pg.has_grads(o.index))
            gap_t = tuple(o for o in t_ops[j + 1:after_j] if tg.has_grads(o.index))
            nodes = tuple(("paddle", n) for o in p_ops[i + 1:after_i + 1] for n in pg.unrecorded(o.index))
            nodes += tuple(("torch", n) for o in t_ops[j + 1:after_j + 1] for n in tg.unrecorded(o.index))
            inside = (_last_without(p_ops[i + 1:after_i], pg), _last_without(t_ops[j + 1:after_j], tg))
            return BackwardDivergence(p, t, early.stats, "output", f"output {early.k}", only_paddle=gap_p,
                                      only_torch=gap_t, unrecorded=tuple(dict.fromkeys(nodes)), inside=inside,
                                      agreed_after=agreed)
        late = _worst([lt for _, lt in po], [lt for _, lt in to], cmp, rtol)
        # the hook belongs to the op that made the value (an identity op returning it is passed over)
        hooked = tuple(side for side, outs, made in (("paddle", po, pg.produced(i)), ("torch", to, tg.produced(j)))
                       if late is not None and late.k < len(outs) and _changed(*outs[late.k]) and made[late.k])
        if late is not None and _jump(late, e_out) and hooked:
            return BackwardDivergence(p, t, late.stats, "hook", f"output {late.k}", hooked=hooked,
                                      agreed_after=agreed)
        if _jump(_worst(pg.in_grads(i), tg.in_grads(j), cmp, rtol), e_out):
            own = _worst(pg.vjp(i), tg.vjp(j), cmp, rtol)
            if own is not None and _jump(own, e_out):
                return BackwardDivergence(p, t, own.stats, "op", f"input {own.k}", agreed_after=agreed)
        after_i, after_j = i, j
    return None
