"""Structure-only route: pair layers from the two module trees, no inputs, no export.

Used when no example input is given or when export fails. Each side becomes the
sequence, in definition order, of its parameter-holding layers and parameter-free leaf
layers, labelled by a normalised class name (``Conv2D`` ~ ``Conv2d`` ~ ``conv``) and
layout-free parameter shapes (paddle ``Linear`` ``[in, out]`` ~ torch ``[out, in]``).
The sequences are aligned with Needleman–Wunsch (same class and shapes +2, same shapes
only +1.2, same parameter-free class +1, gap −0.6); parameter layers left over whose
shape signature is unique on both sides are then paired regardless of order, which
survives a reversed definition order when shapes differ. Pure Python.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

from padiff.graph.canonical import shape_key
from padiff.graph.match import LayerInfo, Left, MatchResult, ProposedPair

GAP = -0.6
_DIM = re.compile(r"[123]d$")


def norm_class(name: str) -> str:
    """``Conv2D`` → ``conv``, ``BatchNorm2d`` → ``batchnorm``, ``Linear`` → ``linear``."""
    return _DIM.sub("", name.lower())


def _shapes(info: LayerInfo) -> tuple[tuple[int, ...], ...]:
    return tuple(sorted(shape_key(s) for s in info.shapes))


def _entries(layers: Mapping[str, LayerInfo]) -> list[LayerInfo]:
    return [i for i in layers.values() if i.shapes or (i.leaf and i.path)]


def _score(a: LayerInfo, b: LayerInfo) -> float | None:
    if bool(a.shapes) != bool(b.shapes):
        return None
    same_class = norm_class(a.cls) == norm_class(b.cls)
    if a.shapes:
        if _shapes(a) != _shapes(b):
            return None
        return 2.0 if same_class else 1.2
    return 1.0 if same_class else None


def _align(p: list[LayerInfo], t: list[LayerInfo]) -> list[tuple[int, int]]:
    n, m = len(p), len(t)
    score = [[0.0] * (m + 1) for _ in range(n + 1)]
    move = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        score[i][0], move[i][0] = GAP * i, 1
    for j in range(1, m + 1):
        score[0][j], move[0][j] = GAP * j, 2
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best, how = score[i - 1][j] + GAP, 1
            if score[i][j - 1] + GAP > best:
                best, how = score[i][j - 1] + GAP, 2
            s = _score(p[i - 1], t[j - 1])
            if s is not None and score[i - 1][j - 1] + s >= best:
                best, how = score[i - 1][j - 1] + s, 0
            score[i][j], move[i][j] = best, how
    i, j, out = n, m, []
    while i > 0 and j > 0:
        if move[i][j] == 0:
            out.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif move[i][j] == 1:
            i -= 1
        else:
            j -= 1
    return out[::-1]


def match_trees(p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> MatchResult:
    """Pair layers from module-tree information only (see module docstring)."""
    p, t = _entries(p_layers), _entries(t_layers)
    p_count = Counter(_shapes(i) for i in p if i.shapes)
    t_count = Counter(_shapes(i) for i in t if i.shapes)
    pairs: list[ProposedPair] = []
    used_p: set[int] = set()
    used_t: set[int] = set()
    for i, j in _align(p, t):
        a, b = p[i], t[j]
        used_p.add(i)
        used_t.add(j)
        ev = ["definition order (module trees)"]
        conf = 0.5
        if norm_class(a.cls) == norm_class(b.cls):
            ev.append(f"same class kind {norm_class(a.cls)}")
            conf += 0.1
        if a.shapes:
            ev.append(f"same parameter shapes {list(_shapes(a))} (layout-free)")
            if p_count[_shapes(a)] == 1 and t_count[_shapes(b)] == 1:
                ev.append("shape signature unique on both sides")
                conf += 0.2
            else:
                ev.append("tie: several layers with these shapes; order decided")
        pairs.append(ProposedPair(a.path, b.path, round(conf, 3), tuple(ev), a.leaf == b.leaf,
                                  uncertain=conf < 0.7))
    # leftovers with a unique shape signature on both sides: pair regardless of order
    left_p = {_shapes(p[i]): i for i in range(len(p)) if i not in used_p and p[i].shapes
              and p_count[_shapes(p[i])] == 1}
    for j in range(len(t)):
        if j in used_t or not t[j].shapes:
            continue
        key = _shapes(t[j])
        if t_count[key] == 1 and key in left_p:
            i = left_p.pop(key)
            used_p.add(i)
            used_t.add(j)
            pairs.append(ProposedPair(p[i].path, t[j].path, 0.6,
                                      ("unique parameter shapes on both sides", "out of definition order"),
                                      p[i].leaf == t[j].leaf))
    unpaired = [Left("paddle", p[i].path, _why(p[i], t, used_t)) for i in range(len(p)) if i not in used_p]
    unpaired += [Left("torch", t[j].path, _why(t[j], p, used_p)) for j in range(len(t)) if j not in used_t]
    return MatchResult(pairs, unpaired)


def _why(info: LayerInfo, others: list[LayerInfo], used: set[int]) -> str:
    free = [o for k, o in enumerate(others) if k not in used]
    if info.shapes:
        same = [o for o in free if o.shapes and norm_class(o.cls) == norm_class(info.cls)]
        if same:
            return f"same kind, different shapes: {list(_shapes(info))} vs {list(_shapes(same[0]))}"
        return "no counterpart with these parameter shapes in the other module tree"
    return f"no counterpart: extra {info.cls} (or functional on the other side)"
