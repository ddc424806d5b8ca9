"""Align two unit sequences and settle ties: Needleman–Wunsch, then neighbour agreement.

Both sides are put in a canonical order (depth, finer depth, label, glue signatures)
and aligned: same label +2 (parameter units) / +1 (parameter-free, near the same
depth), gap −0.6, anything else forbidden; banded by depth beyond ``EXACT_DP_CELLS``
cells so time grows linearly with model depth. Tie blocks (aligned pairs sharing
label and depth) are then re-assigned to maximise agreement of glue signatures and of
already settled neighbours, spreading out from unique anchors (fixes q/k/v,
bn1 ↔ downsample.1, mirrored branches). Pure Python.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Sequence

from padiff.graph.units import Unit, UnitGraph

MATCH, KIND_ONLY, GAP, FORBID = 2.0, 1.0, -0.6, -1e9
EXACT_DP_CELLS = 40_000
DEPTH_BAND = 3


def order_key(u: Unit) -> tuple:
    """Canonical position of a unit: depth, finer depth, label, glue signatures, op index."""
    return (u.depth, u.fine, u.kind, u.shapes, u.down, u.up, u.ops[0])


def pair_score(a: Unit, b: Unit) -> float:
    """Alignment score of two units (``FORBID`` when they cannot correspond)."""
    if a.has_params != b.has_params or a.kind != b.kind:
        return FORBID
    if a.has_params:  # among equal candidates, prefer the one at the same depth
        return MATCH - 0.01 * min(abs(a.depth - b.depth), 10) if a.shapes == b.shapes else FORBID
    # parameter-free units (activations, pooling) carry little identity: only pair them
    # at nearly the same depth, where a functional call on one side cannot shift them
    return KIND_ONLY if abs(a.depth - b.depth) <= 1 else FORBID


def _windows(p: Sequence[Unit], t: Sequence[Unit], exact: bool) -> tuple[list[int], list[int]]:
    """Column window ``[lo[i], hi[i]]`` of each DP row.

    Exact: every column. Banded: row ``i`` only meets torch units whose depth is within
    ``DEPTH_BAND`` of paddle unit ``i``'s depth (both orders are sorted by depth, so the
    windows move monotonically); consecutive windows are made to overlap so a path
    through the band always exists. Cells grow with n × (units per depth level), i.e.
    linearly in model depth.
    """
    n, m = len(p), len(t)
    if exact:
        return [0] * (n + 1), [m] * (n + 1)
    t_depths = [u.depth for u in t]
    lo, hi = [0] * (n + 1), [0] * (n + 1)
    for i in range(1, n + 1):
        d = p[i - 1].depth
        lo[i] = bisect.bisect_left(t_depths, d - DEPTH_BAND)
        hi[i] = bisect.bisect_right(t_depths, d + DEPTH_BAND)
    hi[0] = lo[1] if n else m
    for i in range(1, n + 1):
        hi[i] = max(hi[i], hi[i - 1])
        lo[i] = min(lo[i], hi[i - 1])
    hi[n] = m
    return lo, hi


def align(p: Sequence[Unit], t: Sequence[Unit]) -> list[tuple[int, int]]:
    """Needleman–Wunsch over two unit sequences in canonical order; matched index pairs.

    Exact O(n·m) up to ``EXACT_DP_CELLS`` cells; beyond that banded by depth (see
    :func:`_windows`), falling back to exact when the band loses most matches (one side
    much deeper than the other) and the exact table is still affordable.
    """
    n, m = len(p), len(t)
    if n == 0 or m == 0:
        return []
    if n * m <= EXACT_DP_CELLS:
        return _nw(p, t, *_windows(p, t, exact=True))
    out = _nw(p, t, *_windows(p, t, exact=False))
    if len(out) < 0.5 * min(n, m) and n * m <= 16 * EXACT_DP_CELLS:
        out = _nw(p, t, *_windows(p, t, exact=True))
    return out


def _nw(p: Sequence[Unit], t: Sequence[Unit], lo: list[int], hi: list[int]) -> list[tuple[int, int]]:
    n, m = len(p), len(t)
    neg = float("-inf")
    score: list[dict[int, float]] = [{} for _ in range(n + 1)]
    move: list[dict[int, int]] = [{} for _ in range(n + 1)]  # 0 diag, 1 up (skip p), 2 left (skip t)
    for j in range(lo[0], hi[0] + 1):
        score[0][j] = GAP * j
        move[0][j] = 2
    for i in range(1, n + 1):
        row, prev = score[i], score[i - 1]
        mv = move[i]
        pi = p[i - 1]
        for j in range(lo[i], hi[i] + 1):
            if j == 0:
                row[0], mv[0] = GAP * i, 1
                continue
            best, how = prev.get(j, neg) + GAP, 1
            d = prev.get(j - 1, neg)
            if d > neg:
                s = pair_score(pi, t[j - 1])
                if s > FORBID and d + s >= best:
                    best, how = d + s, 0
            left = row.get(j - 1, neg) + GAP
            if left > best:
                best, how = left, 2
            row[j], mv[j] = best, how
    i, j = n, m
    out: list[tuple[int, int]] = []
    while i > 0 and j > 0:
        how = move[i].get(j, 1)
        if how == 0:
            out.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif how == 1:
            i -= 1
        else:
            j -= 1
    out.reverse()
    return out


# --- 4. tie refinement -----------------------------------------------------------------------


def _head(sig: tuple[str, ...]) -> frozenset[str]:
    """First hop of each glue path: consumer slot and op kind."""
    return frozenset(">".join(p.split(">")[:2]) for p in sig)


def _similarity(a: Unit, b: Unit, ps: UnitGraph, ts: UnitGraph, mapping: dict[int, int]) -> float:
    s = 2.0 * (a.down == b.down) + 2.0 * (_head(a.down) == _head(b.down))
    s += 1.0 * (a.up == b.up) + 1.0 * (_head(a.up) == _head(b.up))
    t_pred = set(ts.graph.predecessors(b.uid))
    t_succ = set(ts.graph.successors(b.uid))
    s += sum(1.0 for x in ps.graph.predecessors(a.uid) if mapping.get(x) in t_pred)
    s += sum(1.0 for x in ps.graph.successors(a.uid) if mapping.get(x) in t_succ)
    return s


def _best_assignment(sim: list[list[float]]) -> tuple[list[int], float]:
    """Best permutation for a small square similarity matrix, and its margin over the next."""
    k = len(sim)
    if k <= 6:
        scored = sorted(((sum(sim[i][perm[i]] for i in range(k)), perm)
                         for perm in itertools.permutations(range(k))), key=lambda x: -x[0])
        margin = scored[0][0] - scored[1][0] if len(scored) > 1 else float("inf")
        return list(scored[0][1]), margin
    # larger blocks: greedy by descending similarity (rare: wide symmetric stacks)
    cells = sorted(((sim[i][j], i, j) for i in range(k) for j in range(k)), key=lambda x: -x[0])
    perm = [-1] * k
    used: set[int] = set()
    for _, i, j in cells:
        if perm[i] < 0 and j not in used:
            perm[i] = j
            used.add(j)
    return perm, 0.0


def refine(pairs: list[tuple[int, int]], ps: UnitGraph, ts: UnitGraph) -> tuple[list[tuple[int, int]], set[int]]:
    """Re-assign tie blocks; returns the new pairs and the paddle uids left unsettled.

    A tie block is a set of aligned pairs sharing label and depth on both sides. Blocks
    are settled one at a time, from glue signatures and from neighbours that are
    already settled (unique pairs first), so certainty spreads outwards from anchors
    instead of locking in a consistent but wrong first guess.
    """
    blocks: dict[tuple, list[int]] = defaultdict(list)
    for a, b in pairs:
        pu, tu = ps.units[a], ts.units[b]
        blocks[(pu.label, pu.depth, tu.depth)].append(a)
    mapping = dict(pairs)
    settled = {pa[0] for pa in blocks.values() if len(pa) == 1}
    pending = [pa for pa in blocks.values() if len(pa) > 1]
    while pending:
        progress = False
        still: list[list[int]] = []
        for pa in pending:
            tb = [mapping[a] for a in pa]
            known = {a: mapping[a] for a in settled}
            sim = [[_similarity(ps.units[a], ts.units[b], ps, ts, known) for b in tb] for a in pa]
            perm, margin = _best_assignment(sim)
            for i, a in enumerate(pa):
                mapping[a] = tb[perm[i]]
            if margin > 0:
                settled.update(pa)
                progress = True
            else:
                still.append(pa)
        pending = still
        if not progress:
            break
    unsettled = {a for pa in pending for a in pa}
    return sorted(mapping.items()), unsettled
