"""Which output tensor of a paired call is which, when the two sides return different numbers.

Framework APIs and ports differ in what a layer returns besides its result: torch's
MultiheadAttention adds the attention weights, transformers' GPT-OSS router returns
``(logits, scores, indices)`` where the paddle port returns ``(scores, indices)``, a paddle MoE
block adds its router logits. The tensors both sides return keep their relative order, so the
shorter list is laid onto an order-preserving subsequence of the longer: only subsequences whose
shapes fit are considered, and among several the one whose values agree best is taken (the
leading one when nothing can tell them apart). Pure Python over shapes and a cost callback.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

Shape = tuple[int, ...]
Items = tuple[tuple[int, int], ...]  # (paddle output index, torch output index), in order

#: beyond this many candidate subsequences the leading one is taken without looking further
MAX_CANDIDATES = 256


def shapes_fit(sa: Shape, sb: Shape) -> bool:
    """Whether two output shapes could hold the same values (equal, or reconcilable by size)."""
    if tuple(sa) == tuple(sb):
        return True
    if math.prod(sa) == math.prod(sb):
        return True  # size-1 dims, a layout-free reshape or reordered middle axes (runtime.reconcile)
    n = max(len(sa), len(sb))
    pa, pb = (1,) * (n - len(sa)) + tuple(sa), (1,) * (n - len(sb)) + tuple(sb)
    return all(x == y or x == 1 or y == 1 for x, y in zip(pa, pb))  # broadcasting


def align_items(p_shapes: Sequence[Shape], t_shapes: Sequence[Shape],
                cost: Callable[[Items], float] | None = None) -> Items:
    """The ``(paddle index, torch index)`` pairs to compare; all of them, in order, when the counts agree.

    ``cost(items)`` (lower is better) decides between several subsequences whose shapes fit.
    """
    n_p, n_t = len(p_shapes), len(t_shapes)
    if n_p == n_t or not n_p or not n_t:
        return tuple((i, i) for i in range(min(n_p, n_t)))
    short, paddle_short = min(n_p, n_t), n_p < n_t
    leading = tuple((i, i) for i in range(short))
    if math.comb(max(n_p, n_t), short) > MAX_CANDIDATES:
        return leading
    fitting: list[Items] = []
    for picked in itertools.combinations(range(max(n_p, n_t)), short):
        items = tuple((i, j) if paddle_short else (j, i) for i, j in enumerate(picked))
        if all(shapes_fit(p_shapes[p], t_shapes[t]) for p, t in items):
            fitting.append(items)
    if not fitting:
        return leading
    if len(fitting) == 1 or cost is None:
        return fitting[0]
    return min(fitting, key=cost)  # min keeps the first of equal costs: the leading-most subsequence
