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

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from padiff.report.records import Stats
from padiff.runtime.ops.align import Compare, align, rel_err
from padiff.runtime.ops.events import OpEvent

Grad = np.ndarray | None


class OpGrads(Protocol):
    """What one side's backward gave each recorded op (see :class:`~padiff.runtime.ops.grads.GradTrace`)."""

    def out_grads(self, i: int) -> list[tuple[Grad, Grad]]: ...
    def in_grads(self, i: int) -> list[Grad]: ...
    def vjp(self, i: int) -> list[Grad]: ...
    def unrecorded(self, i: int) -> list[str]: ...
    def has_grads(self, i: int) -> bool: ...


@dataclass(frozen=True)
class BackwardDivergence:
    """The first op pair, in backward order, where the gradients part."""

    paddle: OpEvent
    torch: OpEvent
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


def _same(a: np.ndarray, b: np.ndarray, cmp: Compare) -> tuple[Stats | None, bool]:
    """The comparison of two gradients and whether they agree (weights may be transposed)."""
    if a.shape != b.shape:
        if a.ndim == 2 and a.T.shape == b.shape:
            a = a.T
        elif a.size == b.size:
            a, b = a.reshape(-1), b.reshape(-1)
        else:
            return None, True  # not comparable position by position: no verdict
    stats = cmp(a, b)
    floor = 4 * max((float(np.finfo(x.dtype).eps) for x in (a, b) if x.dtype.kind == "f"),
                    default=float(np.finfo("f4").eps))
    return stats, stats.passed or rel_err(a, b) <= floor


def _first_bad(ps: list[Grad], ts: list[Grad], cmp: Compare) -> tuple[int, Stats] | None:
    """The first tensor whose gradient reaches one side only, else the first whose gradients differ."""
    for k, (a, b) in enumerate(zip(ps, ts)):
        if (a is None) != (b is None) and np.any(a if b is None else b):  # all zeros: paddle's unused outputs
            alone = "paddle" if b is None else "torch"
            return k, Stats.failure(f"a gradient reaches it on the {alone} side only (the other side does not "
                                    "differentiate through it: detached, stop_gradient, no_grad)",
                                    kind="one_sided", count=1)
    for k, (a, b) in enumerate(zip(ps, ts)):
        if a is None or b is None:
            continue
        stats, ok = _same(a, b, cmp)
        if not ok and stats is not None:
            return k, stats
    return None


def _changed(early: Grad, late: Grad) -> bool:
    return early is not None and late is not None and (
        early.shape != late.shape or not np.array_equal(early, late))


def _last_without(ops: list[OpEvent], grads: OpGrads) -> OpEvent | None:
    return next((o for o in reversed(ops) if not grads.has_grads(o.index)), None)


def first_backward_divergence(p_ops: list[OpEvent], t_ops: list[OpEvent], pg: OpGrads, tg: OpGrads,
                              cmp: Compare) -> BackwardDivergence | None:
    """The first place, in backward order, where the two sides' gradients part (None if nowhere)."""
    pairs = [(i, j) for i, j in align(p_ops, t_ops) if pg.has_grads(i) and tg.has_grads(j)]
    after_i, after_j = len(p_ops), len(t_ops)  # the pair visited before (later in forward)
    for agreed, (i, j) in enumerate(reversed(pairs)):
        p, t = p_ops[i], t_ops[j]
        po, to = pg.out_grads(i), tg.out_grads(j)
        early = _first_bad([e for e, _ in po], [e for e, _ in to], cmp)
        if early is not None:
            gap_p = tuple(o for o in p_ops[i + 1:after_i] if pg.has_grads(o.index))
            gap_t = tuple(o for o in t_ops[j + 1:after_j] if tg.has_grads(o.index))
            nodes = tuple(("paddle", n) for o in p_ops[i + 1:after_i + 1] for n in pg.unrecorded(o.index))
            nodes += tuple(("torch", n) for o in t_ops[j + 1:after_j + 1] for n in tg.unrecorded(o.index))
            inside = (_last_without(p_ops[i + 1:after_i], pg), _last_without(t_ops[j + 1:after_j], tg))
            return BackwardDivergence(p, t, early[1], "output", f"output {early[0]}", only_paddle=gap_p,
                                      only_torch=gap_t, unrecorded=tuple(dict.fromkeys(nodes)), inside=inside,
                                      agreed_after=agreed)
        late = _first_bad([lt for _, lt in po], [lt for _, lt in to], cmp)
        if late is not None:
            k = late[0]
            hooked = tuple(side for side, outs in (("paddle", po), ("torch", to))
                           if k < len(outs) and _changed(*outs[k]))
            return BackwardDivergence(p, t, late[1], "hook", f"output {k}", hooked=hooked, agreed_after=agreed)
        whole = _first_bad(pg.in_grads(i), tg.in_grads(j), cmp)
        if whole is not None:
            own = _first_bad(pg.vjp(i), tg.vjp(j), cmp)
            if own is not None:
                return BackwardDivergence(p, t, own[1], "op", f"input {own[0]}", agreed_after=agreed)
        after_i, after_j = i, j
    return None

