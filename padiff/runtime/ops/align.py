"""Align two recorded op sequences and find where they part: pure numpy, no framework import.

:func:`align` pairs ops of the same canonical kind in order (a longest-common-subsequence
dynamic programme that prefers pairs with equal output shapes and close numbers), leaving
ops only one side runs (a ``contiguous``, a ``transpose`` the other side does not do)
unpaired. :func:`first_divergence` walks the pairs in order and names the first one whose
inputs agree and whose output does not; when a pair's inputs already differ, the cause is
an op only one side ran just before it, and that gap is what it names.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from padiff.adapters.op_events import OpEvent
from padiff.compare.arrays import compare_arrays
from padiff.report.records import Stats

Compare = Callable[[np.ndarray, np.ndarray], Stats]

_MAX_CELLS = 600_000  # above this the pairing is greedy (long sequences: a whole large model re-run)
_LOOKAHEAD = 24


@dataclass(frozen=True)
class Divergence:
    """Where two op sequences part, as :func:`first_divergence` found it."""

    paddle: OpEvent | None
    torch: OpEvent | None
    stats: Stats | None  # of the outputs, when both ops exist
    inputs_agree: bool
    only_paddle: tuple[OpEvent, ...] = ()  # ops one side ran with no counterpart, just before the pair
    only_torch: tuple[OpEvent, ...] = ()
    agreed_before: int = 0  # matched op pairs that agreed before this one
    alone_inputs_agree: bool = False  # the one-sided op got what the other side had there: it is the difference


def agreement(atol: float, rtol: float, mode: str, mismatch_ratio: float = 0.0) -> Compare:
    """The comparison of op tensors: the run's tolerances, and never a pass for a mean error beyond them.

    The element-wise mean error is checked as well, so two tensors holding the same values in
    another order (a reshape that should have been a transpose) differ under either mode.
    """
    def cmp(a: np.ndarray, b: np.ndarray) -> Stats:
        stats = compare_arrays(a, b, atol, rtol, mode, mismatch_ratio)
        if stats.passed and a.shape == b.shape and a.size and a.dtype.kind in "fiu" and b.dtype.kind in "fiu":
            a64, b64 = a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
            if float(np.abs(a64 - b64).mean()) > atol + rtol * float(np.abs(b64).mean()):
                stats = dataclasses.replace(stats, passed=False)
        return stats

    return cmp


def align(p_ops: list[OpEvent], t_ops: list[OpEvent]) -> list[tuple[int, int]]:
    """Pairs ``(paddle index, torch index)`` of ops that correspond, in order."""
    n, m = len(p_ops), len(t_ops)
    if n * m > _MAX_CELLS:
        return _greedy(p_ops, t_ops)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = score[i], score[i + 1]
        p = p_ops[i]
        for j in range(m - 1, -1, -1):
            best = max(below[j], row[j + 1])
            s = _pair_score(p, t_ops[j])
            if s and below[j + 1] + s > best:
                best = below[j + 1] + s
            row[j] = best
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        s = _pair_score(p_ops[i], t_ops[j])
        if s and score[i][j] == score[i + 1][j + 1] + s:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif score[i][j] == score[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def _greedy(p_ops: list[OpEvent], t_ops: list[OpEvent]) -> list[tuple[int, int]]:
    pairs, j = [], 0
    for i, p in enumerate(p_ops):
        best, best_s = None, 0
        for k in range(j, min(len(t_ops), j + _LOOKAHEAD)):
            s = _pair_score(p, t_ops[k])
            if s > best_s:
                best, best_s = k, s
        if best is not None:
            pairs.append((i, best))
            j = best + 1
    return pairs


def _pair_score(p: OpEvent, t: OpEvent) -> int:
    if p.kind != t.kind:
        return 0
    s = 2
    if p.out_shape() == t.out_shape():
        s += 2
    if p.fingerprint and t.fingerprint and all(
            abs(a - b) <= 1e-3 * (abs(b) + 1e-6) for a, b in zip(p.fingerprint, t.fingerprint)):
        s += 3
    return s


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """``mean |a - b| / mean |b|``: the relative error of a whole tensor (inf for unequal shapes)."""
    if a.shape != b.shape:
        return math.inf
    if a.size == 0:
        return 0.0
    a64, b64 = a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
    with np.errstate(all="ignore"):
        err = float(np.abs(a64 - b64).mean()) / max(float(np.abs(b64).mean()), 1e-30)
    return math.inf if math.isnan(err) else err


def _noise_floor(arrs: list[np.ndarray]) -> float:
    eps = max((float(np.finfo(a.dtype).eps) for a in arrs if a.dtype.kind == "f"), default=float(np.finfo("f4").eps))
    return 4 * eps


def _inputs(p: OpEvent, t: OpEvent, cmp: Compare) -> tuple[bool, float]:
    """Whether the two ops got the same inputs (weights may be transposed), and the worst relative error."""
    ok, worst = True, 0.0
    for k, (a, b) in enumerate(zip(p.inputs, t.inputs)):
        if a.shape != b.shape:
            if a.ndim == 2 and a.T.shape == b.shape:
                a = a.T
            elif a.size == b.size == 1:
                a, b = a.reshape(()), b.reshape(())
            elif k == 0:
                return False, math.inf
            else:
                continue
        if a.dtype.kind not in "fc" and b.dtype.kind not in "fc":
            if not np.array_equal(a, b):
                return False, math.inf
            continue
        if not cmp(a, b).passed:
            ok = False
        worst = max(worst, rel_err(a, b))
    return ok, worst


def _outputs(p: OpEvent, t: OpEvent, cmp: Compare) -> tuple[Stats | None, float]:
    """The first failing output comparison (or the last passing one) and its relative error."""
    stats, err = None, 0.0
    for a, b in zip(p.outputs, t.outputs):
        stats = cmp(a, b)
        err = rel_err(a, b) if a.shape == b.shape else math.inf
        if not stats.passed:
            return stats, err
    return stats, err


def first_divergence(p_ops: list[OpEvent], t_ops: list[OpEvent], cmp: Compare) -> Divergence | None:
    """The first place the sequences part (None if every paired op agrees and nothing is one-sided)."""
    pairs = align(p_ops, t_ops)
    prev_i = prev_j = -1
    agreed = 0
    fallback: Divergence | None = None
    for i, j in pairs:
        p, t = p_ops[i], t_ops[j]
        stats, out_err = _outputs(p, t, cmp)
        floor = _noise_floor(p.outputs + t.outputs)
        if stats is None or stats.passed or out_err <= floor:
            # within rounding of the two frameworks: the tolerance may flag it, but it is no cause
            if stats is not None and not stats.passed and fallback is None and _inputs(p, t, cmp)[0]:
                fallback = Divergence(p, t, stats, True, agreed_before=agreed)
            agreed += 1
            prev_i, prev_j = i, j
            continue
        in_ok, in_err = _inputs(p, t, cmp)
        gap_p, gap_t = tuple(p_ops[prev_i + 1:i]), tuple(t_ops[prev_j + 1:j])
        if in_err < math.inf and out_err > 4 * in_err:
            return Divergence(p, t, stats, in_ok or in_err <= floor, agreed_before=agreed)
        if gap_p or gap_t:
            return Divergence(gap_p[-1] if gap_p else p, gap_t[-1] if gap_t else t, stats, False,
                              gap_p, gap_t, agreed, _alone_fed_alike(gap_p, gap_t, p_ops, t_ops, prev_i, prev_j, cmp))
        if fallback is None or fallback.inputs_agree:
            fallback = Divergence(p, t, stats, False, agreed_before=agreed)
        prev_i, prev_j = i, j
    tail_p, tail_t = tuple(p_ops[prev_i + 1:]), tuple(t_ops[prev_j + 1:])
    if fallback is None and (tail_p or tail_t):
        return Divergence(tail_p[0] if tail_p else None, tail_t[0] if tail_t else None, None, False,
                          tail_p, tail_t, agreed, _alone_fed_alike(tail_p, tail_t, p_ops, t_ops, prev_i, prev_j, cmp))
    return fallback


def _alone_fed_alike(gap_p: tuple[OpEvent, ...], gap_t: tuple[OpEvent, ...], p_ops: list[OpEvent],
                     t_ops: list[OpEvent], prev_i: int, prev_j: int, cmp: Compare) -> bool:
    """Whether the first op only one side runs got the value the other side holds there (the last agreed output)."""
    if bool(gap_p) == bool(gap_t):
        return False
    alone = (gap_p or gap_t)[0]
    prev = t_ops[prev_j] if gap_p and prev_j >= 0 else p_ops[prev_i] if gap_t and prev_i >= 0 else None
    if prev is None or not alone.inputs or not prev.outputs:
        return False
    a, b = alone.inputs[0], prev.outputs[0]
    return a.shape == b.shape and bool(cmp(a, b).passed)
