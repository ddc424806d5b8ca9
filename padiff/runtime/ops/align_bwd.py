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

Real ports write the same values differently, and the walk allows for it: gradients in another
layout are laid out alike before comparing (``[B, H, W, C]`` against ``[B, C, H, W]``), the
operands of a commutative op are taken in the order the forward values give, inputs are compared
by position only when both ops take as many, and an output's gradient is judged only when it
feeds the same kinds of ops on both sides (else it is the gradient of a different set of readers).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from padiff.adapters.op_events import OpEvent
from padiff.compare.arrays import compare_arrays
from padiff.compare.reconcile import MAX_PERMUTED_RANK
from padiff.report.records import Stats
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
    def readers(self, i: int) -> list[tuple[str, ...]]: ...


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
            elif (laid := _same_layout(a, b)) is not None:
                a = laid
            elif a.size == b.size:  # no layout fits: element order as it is
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


def _same_layout(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``a``'s values laid out as ``b`` (adjacent axes merged, then reordered), closest to ``b``; None if none fits.

    The op pairs are aligned by their forward values, so two paired ops whose tensors hold the
    same values in other layouts have gradients in those layouts too (paddleclas' ConvNeXt scales
    by gamma in ``[B, H, W, C]``, timm in ``[B, C, H, W]``; paddleclas' PVT averages ``[B, N, C]``
    over tokens, timm ``[B, C, H, W]`` over ``H, W``): compared after a flat reshape they would
    differ for no reason.
    """
    if a.size != b.size or a.size == 0 or max(a.ndim, b.ndim) > MAX_PERMUTED_RANK or min(a.ndim, b.ndim) < 2:
        return None
    best: tuple[float, np.ndarray] | None = None
    high, low = (a, b) if a.ndim >= b.ndim else (b, a)
    for merged in _merges(high.shape, low.ndim):
        if sorted(merged) != sorted(low.shape):
            continue
        for p in itertools.permutations(range(low.ndim)):
            if a.ndim >= b.ndim:  # a merged, then reordered to b's shape
                if tuple(merged[i] for i in p) != b.shape:
                    continue
                cand = np.transpose(a.reshape(merged), p)
            else:  # a reordered to b merged, then split as b is
                if tuple(a.shape[i] for i in p) != tuple(merged):
                    continue
                cand = np.transpose(a, p).reshape(b.shape)
            err = rel_err(cand, b)
            if best is None or err < best[0]:
                best = (err, cand)
    return best[1] if best is not None else None


def _merges(shape: tuple[int, ...], rank: int) -> list[tuple[int, ...]]:
    """``shape`` with runs of adjacent dims multiplied together to ``rank`` dims, every way."""
    out = []
    for cuts in itertools.combinations(range(1, len(shape)), rank - 1):
        bounds = (0, *cuts, len(shape))
        out.append(tuple(int(np.prod(shape[bounds[k]:bounds[k + 1]])) for k in range(rank)))
    return out


#: ops whose two operands may come in either order (``act(gate) * up`` against ``up * act(gate)``)
_COMMUTATIVE = frozenset({"add", "mul"})


def _operand_order(p: OpEvent, t: OpEvent, n: int) -> list[int]:
    """The torch op's inputs in the paddle op's order: swapped for a commutative op whose forward inputs say so."""
    same = list(range(n))
    if p.kind not in _COMMUTATIVE or n != 2 or len(p.inputs) != 2 or len(t.inputs) != 2:
        return same
    a0, a1 = p.inputs
    b0, b1 = t.inputs
    straight, swapped = rel_err(a0, b0) + rel_err(a1, b1), rel_err(a0, b1) + rel_err(a1, b0)
    return [1, 0] if swapped < straight else same


def _read_alike(p_readers: list[tuple[str, ...]], t_readers: list[tuple[str, ...]], k: int) -> bool:
    """Whether output ``k`` feeds the same kinds of recorded ops on both sides, so its gradients compare.

    Equal values can still be different tensors to autograd: paddleformers' GPT-OSS hands its
    flattened hidden states to the router *and* the experts, transformers flattens them once for
    the router and again inside the experts; paddle's DenseNet concatenates features layer by
    layer, torchvision every earlier feature again in each layer. Each such tensor gets the
    gradient of its own readers only, so the two differ with nothing wrong; the walk goes on to
    where the dataflow agrees again.
    """
    if k >= len(p_readers) or k >= len(t_readers):
        return True
    return p_readers[k] == t_readers[k]


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
        if early is not None and early.err > early.tol and _read_alike(pg.readers(i), tg.readers(j), early.k):
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
        p_in, t_in = pg.in_grads(i), tg.in_grads(j)
        # inputs are compared by position only when both ops take as many (a paddle concat of two
        # tensors against a torch cat of every earlier feature: input 1 is not the same tensor)
        order = _operand_order(p, t, len(t_in))
        if len(p_in) == len(t_in) and _jump(_worst(p_in, [t_in[k] for k in order], cmp, rtol), e_out):
            t_vjp = tg.vjp(j)  # one entry per input, as in_grads
            own = _worst(pg.vjp(i), [t_vjp[k] for k in order], cmp, rtol)
            if own is not None and _jump(own, e_out):
                return BackwardDivergence(p, t, own.stats, "op", f"input {own.k}", agreed_after=agreed)
        after_i, after_j = i, j
    return None
