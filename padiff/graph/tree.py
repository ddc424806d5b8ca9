"""Structure-only route: pair layers from the two module trees, no inputs, no export.

Used when no example input is given or when export fails. Each side becomes the
sequence, in definition order, of its parameter-holding layers and parameter-free leaf
layers, labelled by a normalised class name (``Conv2D`` ~ ``Conv2d`` ~ ``conv``) and
layout-free parameter shapes (paddle ``Linear`` ``[in, out]`` ~ torch ``[out, in]``).
Evidence is used strongest first (see :func:`match_trees`): shapes unique in both
models, shapes unique inside containers holding the same parameters, siblings
following paired layers, and finally definition order via Needleman–Wunsch (same
class and shapes +2, same shapes only +1.2, same parameter-free class +1, gap −0.6).
Parameter-free leaves are then re-paired by the paired parameter layers around them
(see :func:`_pair_free_by_neighbours`). Pure Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from padiff.graph.canonical import shape_key
from padiff.graph.match import LayerInfo, Left, MatchResult, ProposedPair
from padiff.names import class_key

GAP = -0.6


def _shapes(info: LayerInfo) -> tuple[tuple[int, ...], ...]:
    return tuple(sorted(shape_key(s) for s in info.shapes))


def _entries(layers: Mapping[str, LayerInfo]) -> list[LayerInfo]:
    return [i for i in layers.values() if i.shapes or (i.leaf and i.path)]


def _score(a: LayerInfo, b: LayerInfo) -> float | None:
    if bool(a.shapes) != bool(b.shapes):
        return None
    same_class = class_key(a.cls) == class_key(b.cls)
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


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _under(path: str, top: str) -> bool:
    return top == "" or path.startswith(top + ".")


class _Pairing:
    """Pairs found so far, by index into the two entry lists, with evidence."""

    def __init__(self) -> None:
        self.by_p: dict[int, tuple[int, float, tuple[str, ...]]] = {}
        self.taken_t: set[int] = set()

    def add(self, i: int, j: int, conf: float, evidence: tuple[str, ...]) -> None:
        self.by_p[i] = (j, conf, evidence)
        self.taken_t.add(j)

    def free(self, i: int | None = None, j: int | None = None) -> bool:
        return (i is None or i not in self.by_p) and (j is None or j not in self.taken_t)


def _unique_pairs(p: list[LayerInfo], t: list[LayerInfo], pi: list[int], tj: list[int]) -> list[tuple[int, int]]:
    """Parameter layers among ``pi``/``tj`` whose shape signature occurs once on each side."""
    pc = Counter(_shapes(p[i]) for i in pi)
    tc = Counter(_shapes(t[j]) for j in tj)
    t_by = {_shapes(t[j]): j for j in tj if tc[_shapes(t[j])] == 1}
    return [(i, t_by[_shapes(p[i])]) for i in pi if pc[_shapes(p[i])] == 1 and _shapes(p[i]) in t_by]


def _containers(entries: list[LayerInfo]) -> dict[str, list[int]]:
    """``{container path: indices of the parameter layers under it}`` (root excluded)."""
    out: dict[str, list[int]] = {}
    for k, e in enumerate(entries):
        if not e.shapes:
            continue
        parts = e.path.split(".")
        for n in range(1, len(parts)):
            out.setdefault(".".join(parts[:n]), []).append(k)
    return out


def _local_pass(p: list[LayerInfo], t: list[LayerInfo], got: _Pairing) -> bool:
    """Pair unique shapes inside corresponding containers; True when something was added.

    Two containers correspond when their subtrees hold the same multiset of parameter
    shapes and an existing pair already links them; inside such a pair, a shape
    occurring once on each side is paired regardless of definition order.
    """
    pcont, tcont = _containers(p), _containers(t)
    sig = {path: tuple(sorted(_shapes(p[i]) for i in idx)) for path, idx in pcont.items()}
    t_sig = {path: tuple(sorted(_shapes(t[j]) for j in idx)) for path, idx in tcont.items()}
    tsig: dict[tuple, list[str]] = {}
    for path, key in t_sig.items():
        tsig.setdefault(key, []).append(path)
    linked_in_order = _order_links(sig, t_sig)
    added = False
    for ppath in sorted(pcont, key=lambda c: -c.count(".")):  # innermost containers first
        for tpath in tsig.get(sig[ppath], []):
            linked = (ppath, tpath) in linked_in_order or any(
                _under(p[i].path, ppath) and _under(t[j].path, tpath) for i, (j, _, _) in got.by_p.items())
            if not linked:
                continue
            pi = [i for i in pcont[ppath] if got.free(i=i)]
            tj = [j for j in tcont[tpath] if got.free(j=j)]
            for i, j in _unique_pairs(p, t, pi, tj):
                got.add(i, j, 0.7, (f"parameter shapes unique within {ppath} <-> {tpath}",
                                    "containers hold the same parameter shapes"))
                added = True
    return added


def _order_links(p_sig: dict[str, tuple], t_sig: dict[str, tuple]) -> set[tuple[str, str]]:
    """Containers holding the same parameter shapes, paired k-th with k-th when counts agree.

    Only the outermost of nested containers with one signature counts (a block and the
    Sequential inside it that holds all its weights are one container here), so an
    extra wrapper level on one side does not break the count.
    """
    def outermost(sigs: dict[str, tuple]) -> dict[tuple, list[str]]:
        out: dict[tuple, list[str]] = {}
        for path, key in sigs.items():  # insertion order = definition order
            parent = _parent(path)
            if parent in sigs and sigs[parent] == key:
                continue
            out.setdefault(key, []).append(path)
        return out

    ps, ts = outermost(p_sig), outermost(t_sig)
    links: set[tuple[str, str]] = set()
    for key, paths in ps.items():
        if key in ts and len(ts[key]) == len(paths) and len(paths) > 1:
            links.update(zip(paths, ts[key]))
    return links


def _follower_pass(p: list[LayerInfo], t: list[LayerInfo], got: _Pairing) -> bool:
    """Pair a layer with the counterpart of its paired previous sibling's next sibling."""
    def siblings(entries: list[LayerInfo]) -> dict[int, int]:
        nxt: dict[int, int] = {}
        last: dict[str, int] = {}
        for k, e in enumerate(entries):
            if e.shapes:
                par = _parent(e.path)
                if par in last:
                    nxt[last[par]] = k
                last[par] = k
        return nxt

    p_next, t_next = siblings(p), siblings(t)
    added = False
    for i, (j, _, _) in list(got.by_p.items()):
        a, b = p_next.get(i), t_next.get(j)
        if a is not None and b is not None and got.free(i=a, j=b) and _shapes(p[a]) == _shapes(t[b]):
            got.add(a, b, 0.6, (f"follows {p[i].path} <-> {t[j].path} in definition order",
                                f"same parameter shapes {list(_shapes(p[a]))}"))
            added = True
    return added


def match_trees(p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> MatchResult:
    """Pair layers from module-tree information only (see module docstring).

    Strongest evidence first: parameter shapes unique in both models; then shapes unique
    within containers that hold the same parameters (survives reordering inside
    blocks); then a layer following an already paired sibling; finally definition
    order (Needleman–Wunsch) for everything left, parameter-free leaves included.
    """
    p, t = _entries(p_layers), _entries(t_layers)
    got = _Pairing()
    p_params = [i for i, e in enumerate(p) if e.shapes]
    t_params = [j for j, e in enumerate(t) if e.shapes]
    for i, j in _unique_pairs(p, t, p_params, t_params):
        got.add(i, j, 0.8, ("parameter shapes unique in both models",))
    for _ in range(8):
        if not (_local_pass(p, t, got) | _follower_pass(p, t, got)):
            break
    rest_p = [i for i in range(len(p)) if got.free(i=i)]
    rest_t = [j for j in range(len(t)) if got.free(j=j)]
    for a, b in _align([p[i] for i in rest_p], [t[j] for j in rest_t]):
        i, j = rest_p[a], rest_t[b]
        ev = ["definition order (module trees)"]
        conf = 0.5
        if class_key(p[i].cls) == class_key(t[j].cls):
            ev.append(f"same class kind {class_key(p[i].cls)}")
            conf += 0.1
        if p[i].shapes:
            ev += [f"same parameter shapes {list(_shapes(p[i]))} (layout-free)",
                   "tie: several layers with these shapes; order decided"]
        got.add(i, j, conf, tuple(ev))
    free_reasons = _pair_free_by_neighbours(p, t, got)
    pairs = []
    for i in sorted(got.by_p):
        j, conf, ev = got.by_p[i]
        if class_key(p[i].cls) == class_key(t[j].cls) and not any(e.startswith("same class") for e in ev):
            ev = (*ev, f"same class kind {class_key(p[i].cls)}")
        pairs.append(ProposedPair(p[i].path, t[j].path, round(conf, 3), ev, p[i].leaf == t[j].leaf,
                                  uncertain=conf < 0.7))
    used_p, used_t = set(got.by_p), set(got.taken_t)
    unpaired = [Left("paddle", p[i].path, free_reasons.get(("paddle", i)) or _why(p[i], t, used_t))
                for i in range(len(p)) if i not in used_p]
    unpaired += [Left("torch", t[j].path, free_reasons.get(("torch", j)) or _why(t[j], p, used_p))
                 for j in range(len(t)) if j not in used_t]
    return MatchResult(pairs, unpaired)


def _pair_free_by_neighbours(p: list[LayerInfo], t: list[LayerInfo], got: _Pairing) -> dict[tuple[str, int], str]:  # noqa: C901  # neighbour rules for parameter-free layers, one branch each
    """Re-pair parameter-free leaves by the paired parameter layers around them; reasons for the rest.

    Trees carry no dataflow, so a parameter-free leaf is placed by the parameter layers
    around it in definition order: its slot is (nearest parameter layer before, nearest
    after). Leaves of one class in corresponding slots (both neighbours paired with each
    other, or absent on both sides) pair k-th with k-th; anything else stays unpaired
    with the reason, so a ``Dropout`` is never paired by class and order alone
    (``pos_drop`` with a block's ``proj_drop``). The engine pairs those calls later.
    """
    for i in [i for i in got.by_p if not p[i].shapes]:
        j, _, _ = got.by_p.pop(i)
        got.taken_t.discard(j)
    partner = {i: j for i, (j, _, _) in got.by_p.items()}

    def slots(entries: list[LayerInfo], to_t: Mapping[int, int] | None) -> dict[tuple, list[int]]:
        before: list[int | None] = []
        last: int | None = None
        for k, e in enumerate(entries):
            before.append(last)
            if e.shapes:
                last = k
        out: dict[tuple, list[int]] = {}
        nxt: int | None = None
        for k in range(len(entries) - 1, -1, -1):
            e = entries[k]
            if e.shapes:
                nxt = k
                continue
            b, a = before[k], nxt
            if to_t is not None:  # paddle side: name the slot by the torch partners
                if (b is not None and b not in to_t) or (a is not None and a not in to_t):
                    continue  # a neighbour left unpaired: no slot
                b, a = (None if b is None else to_t[b]), (None if a is None else to_t[a])
            out.setdefault((b, a, class_key(e.cls)), []).insert(0, k)
        return out

    p_slots, t_slots = slots(p, partner), slots(t, None)
    for key, p_idx in p_slots.items():
        t_idx = t_slots.get(key, [])
        if len(p_idx) == len(t_idx):
            for i, j in zip(p_idx, t_idx):
                got.add(i, j, 0.6, ("between the same paired parameter layers (module trees)",
                                    f"same class kind {class_key(p[i].cls)}"))
    placed = ("parameter-free: the module trees do not place it between the same paired neighbours as one "
              "on the other side; not proposed (the engine pairs its calls between paired neighbours)")
    p_left = {class_key(e.cls) for i, e in enumerate(p) if not e.shapes and got.free(i=i)}
    t_left = {class_key(e.cls) for j, e in enumerate(t) if not e.shapes and got.free(j=j)}
    reasons: dict[tuple[str, int], str] = {}
    for i, e in enumerate(p):  # only where the other side has one of its class left (else: extra layer)
        if not e.shapes and got.free(i=i) and class_key(e.cls) in t_left:
            reasons[("paddle", i)] = placed
    for j, e in enumerate(t):
        if not e.shapes and got.free(j=j) and class_key(e.cls) in p_left:
            reasons[("torch", j)] = placed
    return reasons


def _why(info: LayerInfo, others: list[LayerInfo], used: set[int]) -> str:
    free = [o for k, o in enumerate(others) if k not in used]
    if info.shapes:
        same = [o for o in free if o.shapes and class_key(o.cls) == class_key(info.cls)]
        if same:
            return f"same kind, different shapes: {list(_shapes(info))} vs {list(_shapes(same[0]))}"
        return "no counterpart with these parameter shapes in the other module tree"
    return f"no counterpart: extra {info.cls} (or functional on the other side)"
