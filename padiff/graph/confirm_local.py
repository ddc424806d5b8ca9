"""The pieces numeric confirmation uses to stay linear in the candidates.

One recorded run per side (:class:`Taps`: each tapped layer's inputs and flattened
outputs, per call) gives, for a tie group of paddle layers ``P_i`` and their torch
candidates ``T_j``, the candidate errors ``cost[i][j]`` (:func:`row_costs`): the input
``P_i`` received, compared with the input every ``T_j`` received in the torch run, all
candidates in one pass. Equal inputs say ``T_j`` sits where ``P_i`` sits (the weights are
copied, so the layers compute alike wherever they sit); a port's own error upstream puts
a floor under every error, the right one's too, so ties are judged relative to it
(:func:`close`). What is left is one small assignment problem (:func:`solve`), not one
model run per permutation.

Candidates that read the same tensor (q/k/v projections, parallel branches) cannot be told
apart by their inputs: their errors tie (:func:`tied_rows`), and only those are decided by
running the smallest block enclosing them, on its recorded input, once per order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from padiff.graph.proposal import ProposedPair

MAX_FUSED_RUNS = 256  # paddle forwards allowed for the layouts of fused pairs (orders x interleavings)
EQUAL = 1e-6  # relative: block errors closer than this are numerically equivalent
GUESS = 0.6  # the highest confidence of a pair kept as a guess (numbers could not decide it)
BIG = 1e30  # stands for "cannot be this pair" in the assignment problem (no inf arithmetic)
LOCAL_TIE = 1e-3  # candidate errors closer than this (absolute) do not separate two candidates
REL_TIE = 0.1  # ... nor closer than this fraction of the smaller one: a port's own error (another
#                BatchNorm epsilon upstream) puts a floor under every candidate's error, the right one too


def flat(side: Any, out: Any) -> list[np.ndarray]:
    """Every tensor of ``out`` as a flat float32 array (sums in :func:`distance` are float64)."""
    return [side.to_numpy(t).astype(np.float32).ravel() for t in side.flatten(out)]


def distance(a: list[list[np.ndarray]], b: list[list[np.ndarray]]) -> float:
    """Sum over calls and tensors of the mean relative error; inf when shapes differ.

    Outputs of different arity (a MoE block that also returns its router logits) are compared
    on their common prefix, as the eager comparison does."""
    total = 0.0
    for ca, cb in zip(a, b):
        for x, y in zip(ca, cb):
            if x.shape != y.shape:
                return float("inf")
            total += float(np.abs(x - y).mean(dtype=np.float64) / (np.abs(y).mean(dtype=np.float64) + 1e-12))
    return total


class Taps:
    """Hooks keeping, per layer path, each call's inputs (``args``) and/or flattened outputs.

    A call's inputs are ``(args, kwargs)``: a layer called with keyword tensors only
    (``self.q(x=h)``) has input evidence too, and a block re-runs as it was called.
    """

    def __init__(self, side: Any, root: Any, inputs: set[str], outputs: set[str], arrays: bool = False) -> None:
        self.side = side
        self.arrays = arrays  # keep inputs as flat arrays (to compare), not tensors (to run again)
        self.keep_outputs = True
        self.args: dict[str, list[tuple]] = defaultdict(list)
        self.outputs: dict[str, list[list[np.ndarray]]] = defaultdict(list)
        self.first: dict[str, int] = {}  # order in which the tapped layers were first entered
        self.on_first: Callable[[str, tuple], None] | None = None  # called at a tapped layer's first call
        self.handles: list[Any] = []
        self.active = True
        seen: set[str] = set()
        for path, obj in side.named_layers(root):
            if path in seen:
                continue
            seen.add(path)
            if path in inputs:
                self.handles.append(side.add_pre_hook(obj, self._pre(path)))
            if path in outputs:
                self.handles.append(side.add_post_hook(obj, self._post(path)))

    def _pre(self, path: str) -> Any:
        def hook(_layer: Any, args: tuple, kwargs: dict) -> None:
            if self.active:
                call = (tuple(args), dict(kwargs))
                keep = flat(self.side, call) if self.arrays else self.side.map_tensors(call, self.side.clone_detached)
                self.args[path].append(keep)
                if path not in self.first:
                    self.first[path] = len(self.first)
                    if self.on_first is not None:
                        self.on_first(path, self.args[path][0])

        return hook

    def _post(self, path: str) -> Any:
        def hook(_layer: Any, _args: tuple, out: Any) -> None:
            if self.active and self.keep_outputs:
                self.outputs[path].append(flat(self.side, out))

        return hook

    def clear(self) -> None:
        self.first.clear()
        self.args.clear()
        self.outputs.clear()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def row_costs(args: tuple, t_inputs: Mapping[str, list[Any]], t_paths: list[str], call: int = 0) -> np.ndarray:
    """Errors of one paddle layer's recorded input (``(args, kwargs)`` of call ``call``) against every torch
    candidate's input then.

    The same recorded input is compared with every candidate in one pass; a candidate that
    did not run that often, or took another shape, costs :data:`BIG`.
    """
    from padiff.adapters import PADDLE

    mine = flat(PADDLE, args)
    row = np.full(len(t_paths), BIG)
    for j, t in enumerate(t_paths):
        theirs = t_inputs.get(t, [])
        if len(theirs) > call:
            d = distance([mine], [theirs[call]])
            if np.isfinite(d):
                row[j] = d
    return row


def solve(cost: np.ndarray) -> list[int]:
    """Column assigned to each row minimising the total cost (Hungarian method, square matrix)."""
    n = cost.shape[0]
    if n == 0:
        return []
    c = np.asarray(cost, dtype=np.float64)
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    p = np.zeros(n + 1, dtype=int)  # p[j]: row matched to column j (1-based; 0 = none)
    way = np.zeros(n + 1, dtype=int)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            delta, j1 = np.inf, 0
            for j in range(1, n + 1):
                if not used[j]:
                    cur = c[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(n + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    out = [0] * n
    for j in range(1, n + 1):
        if p[j]:
            out[p[j] - 1] = j - 1
    return out


def total(cost: np.ndarray, cols: list[int]) -> float:
    """Summed cost of an assignment."""
    return float(sum(cost[i, j] for i, j in enumerate(cols)))


def close(a: float, b: float) -> bool:
    """Whether two errors do not separate their candidates (:data:`LOCAL_TIE`, :data:`REL_TIE`)."""
    return abs(a - b) <= LOCAL_TIE + REL_TIE * min(abs(a), abs(b))


def tied_rows(cost: np.ndarray, cols: list[int]) -> list[list[int]]:
    """Rows whose columns can be swapped at (almost) no cost, grouped (union of swappable pairs).

    Two rows tie when exchanging their columns changes the total by no more than
    :func:`close` allows (and neither entry is :data:`BIG`): their inputs do not tell them
    apart. Singletons are left out.
    """
    n = len(cols)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(n):
        for b in range(a + 1, n):
            ja, jb = cols[a], cols[b]
            if max(cost[a, jb], cost[b, ja]) >= BIG:
                continue
            if close(cost[a, jb] + cost[b, ja], cost[a, ja] + cost[b, jb]):
                parent[find(a)] = find(b)
    groups: dict[int, list[int]] = defaultdict(list)
    for a in range(n):
        groups[find(a)].append(a)
    return [g for g in groups.values() if len(g) > 1]


def runner_up(cost: np.ndarray, cols: list[int], row: int) -> float:
    """The row's best error at any other column (how decisive its choice is); :data:`BIG` when it has none."""
    others = np.delete(cost[row], cols[row])
    return float(others.min()) if others.size else BIG


def _fused(pair: ProposedPair) -> bool:
    return bool(pair.paddle_parts or pair.torch_parts)


def _parts_of(pair: ProposedPair) -> tuple[str, ...]:
    return pair.paddle_parts or pair.torch_parts


def _with_order(pair: ProposedPair, order: tuple[str, ...], groups: int | None = None) -> ProposedPair:
    """``pair`` with its parts in ``order`` (and interleaved in ``groups`` runs, when given)."""
    g = pair.groups if groups is None else groups
    if pair.paddle_parts:
        return replace(pair, paddle_parts=order, paddle_path=order[0], groups=g)
    return replace(pair, torch_parts=order, torch_path=order[0], groups=g)


def _inside(path: str, block: str | None) -> bool:
    return block is None or block == "" or path.startswith(block + ".")
