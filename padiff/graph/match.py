"""Pair the layers of two canonical op graphs: pure Python over networkx and plain data.

Input: per side a canonical op graph (see :mod:`padiff.graph.canonical`; nodes carry
``kind``, ``params``, ``layer``, ``call``, ``index``; edges ``slot``) and a
``{path: LayerInfo}`` table. Steps:

1. **Units** (:func:`build_units`): ops grouped by (layer, call) and split into weakly
   connected pieces; a piece is a unit when it reads parameters or belongs to a leaf
   layer (ReLU, pooling ...). Everything else is *glue* (container or root code).
2. **Order**: each unit gets a depth (parameter units on the longest path before it),
   a finer depth (all units), a label (kind + layout-free parameter shapes) and
   signatures of the glue around it (op kinds and consumer slots up to a few hops),
   so ``a - b`` or ``q @ k.T`` tell their operands apart.
3. **Align** the two orders with Needleman–Wunsch (banded by depth for big models):
   same label +2 (parameter units) / +1 (parameter-free), gap −0.6, anything else
   forbidden.
4. **Refine ties**: groups of aligned pairs sharing label and depth are re-assigned to
   maximise agreement of glue signatures and of already-matched neighbours, repeated
   until stable (fixes q/k/v, bn1 ↔ downsample.1, mirrored branches).
5. **Aggregate** unit pairs into layer pairs by vote (a layer called twice still gives
   one pair), with confidence, evidence, and reasons for everything left unpaired.

Must not import paddle or torch (a test checks it in a fresh interpreter).
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx

from padiff.graph.canonical import canonical_kind, compute_kind, shape_key

MATCH, KIND_ONLY, GAP, FORBID = 2.0, 1.0, -0.6, -1e9
SIG_HOPS = 4
GLUE_HOPS = 8
EXACT_DP_CELLS = 40_000
DEPTH_BAND = 3


@dataclass(frozen=True)
class LayerInfo:
    """What the matcher knows of one layer: class name, leaf or not, own tensor shapes."""

    path: str
    cls: str
    leaf: bool
    shapes: tuple[tuple[int, ...], ...] = ()


@dataclass
class Unit:
    """One call of one layer (or one connected piece of it) in an op graph."""

    uid: int
    layer: str
    call: int
    ops: list[int]
    kind: str
    shapes: tuple[tuple[int, ...], ...]  # layout-free parameter shape keys, sorted
    has_params: bool
    compute: frozenset[str] = frozenset()
    depth: int = 0
    fine: int = 0
    down: tuple[str, ...] = ()
    up: tuple[str, ...] = ()

    @property
    def label(self) -> tuple[str, tuple[tuple[int, ...], ...]]:
        return self.kind, self.shapes


@dataclass
class Side:
    """Units of one graph, the unit-level DAG and the glue ops' kinds."""

    units: list[Unit]
    graph: nx.DiGraph  # unit uid -> unit uid
    glue_kinds: Counter[str] = field(default_factory=Counter)
    control_layers: frozenset[str] = frozenset()
    used_params: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProposedPair:
    """A proposed layer correspondence with its confidence and evidence."""

    paddle_path: str
    torch_path: str
    confidence: float
    evidence: tuple[str, ...]
    compare_output: bool = True
    uncertain: bool = False


@dataclass(frozen=True)
class Left:
    """A layer left unpaired, with the reason."""

    side: str
    path: str
    reason: str


@dataclass
class MatchResult:
    """Output of :func:`match_graphs`."""

    pairs: list[ProposedPair]
    unpaired: list[Left]
    unit_pairs: list[tuple[Unit, Unit]] = field(default_factory=list)


# --- 1. units -----------------------------------------------------------------------------


def build_units(g: nx.DiGraph, layers: Mapping[str, LayerInfo]) -> Side:
    """Group the ops of canonical graph ``g`` into units and glue (see module docstring)."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for n, data in g.nodes(data=True):
        groups[(data["layer"], data["call"])].append(n)
    units: list[Unit] = []
    unit_of: dict[int, int] = {}
    glue: Counter[str] = Counter()
    for (layer, call), ops in sorted(groups.items(), key=lambda kv: min(kv[1])):
        info = layers.get(layer)
        for comp in sorted(nx.weakly_connected_components(g.subgraph(ops)), key=min):
            comp_ops = sorted(comp)
            params = [p for n in comp_ops for p in g.nodes[n]["params"]]
            leaf = info is not None and info.leaf and layer != ""
            if not params and not leaf:
                glue.update(g.nodes[n]["kind"] for n in comp_ops)
                continue
            if params:
                main = max(comp_ops, key=lambda n: max(_numel(s) for _, s in g.nodes[n]["params"])
                           if g.nodes[n]["params"] else -1)
                kind = canonical_kind(g.nodes[main]["op"])
                compute = frozenset({kind} | {g.nodes[n]["kind"] for n in comp_ops if not g.nodes[n]["params"]})
            else:
                kind = compute_kind(g.nodes[n]["kind"] for n in comp_ops)
                compute = frozenset({kind})
            shapes = tuple(sorted({p: shape_key(s) for p, s in params}.values()))
            uid = len(units)
            units.append(Unit(uid, layer, call, comp_ops, kind, shapes, bool(params), compute))
            for n in comp_ops:
                unit_of[n] = uid
    ug = _unit_graph(g, units, unit_of)
    _depths(g, units, unit_of)
    for u in units:
        u.down = _signature(g, u, unit_of, units, forward=True)
        u.up = _signature(g, u, unit_of, units, forward=False)
    return Side(units, ug, glue, g.graph.get("control_layers", frozenset()), g.graph.get("used_params", frozenset()))


def _numel(shape: Sequence[int]) -> int:
    out = 1
    for d in shape:
        out *= max(int(d), 1)
    return out


def _unit_graph(g: nx.DiGraph, units: list[Unit], unit_of: dict[int, int]) -> nx.DiGraph:
    """Unit u → unit v when data flows from u to v through at most ``GLUE_HOPS`` glue ops.

    The hop limit keeps the graph sparse: without it a residual stream
    (``x = x + f(x)`` repeated) would link every unit to every later one.
    """
    ug = nx.DiGraph()
    ug.add_nodes_from(u.uid for u in units)
    for u in units:
        own = set(u.ops)
        frontier = {s for n in u.ops for s in g.successors(n) if s not in own}
        seen: set[int] = set()
        for _ in range(GLUE_HOPS + 1):
            nxt: set[int] = set()
            for n in frontier:
                if n in seen:
                    continue
                seen.add(n)
                v = unit_of.get(n)
                if v is not None:
                    if v != u.uid:
                        ug.add_edge(u.uid, v)
                    continue
                nxt.update(g.successors(n))
            frontier = nxt
            if not frontier:
                break
    return ug


def _depths(g: nx.DiGraph, units: list[Unit], unit_of: dict[int, int]) -> None:
    """Depth = parameter units crossed on the longest path in; fine = all units crossed."""
    deep: dict[int, int] = {}
    fine: dict[int, int] = {}
    for n in nx.topological_sort(g):
        d = f = 0
        for p in g.predecessors(n):
            pu = unit_of.get(p)
            step = pu is not None and pu != unit_of.get(n)
            d = max(d, deep[p] + (1 if step and units[pu].has_params else 0))  # type: ignore[index]
            f = max(f, fine[p] + (1 if step else 0))
        deep[n], fine[n] = d, f
    for u in units:
        u.depth = min(deep[n] for n in u.ops)
        u.fine = min(fine[n] for n in u.ops)


def _signature(g: nx.DiGraph, u: Unit, unit_of: dict[int, int], units: list[Unit], forward: bool) -> tuple[str, ...]:
    """Glue paths (op kind and slot per hop) from ``u`` to the next units, ``SIG_HOPS`` deep."""
    own = set(u.ops)
    out: set[str] = set()
    frontier: list[tuple[int, str]] = []
    for n in u.ops:
        nbrs = g.successors(n) if forward else g.predecessors(n)
        for m in nbrs:
            if m in own:
                continue
            slot = g.edges[n, m]["slot"] if forward else g.edges[m, n]["slot"]
            frontier.append((m, f"@{slot}"))
    for _ in range(SIG_HOPS):
        nxt: list[tuple[int, str]] = []
        for n, path in frontier:
            v = unit_of.get(n)
            if v is not None:
                out.add(f"{path}>U:{units[v].kind}")
                continue
            step = f"{path}>{g.nodes[n]['kind']}"
            nbrs = list(g.successors(n) if forward else g.predecessors(n))
            if not nbrs:
                out.add(step + ">end")
            for m in nbrs:
                slot = g.edges[n, m]["slot"] if forward else g.edges[m, n]["slot"]
                nxt.append((m, f"{step}@{slot}"))
        frontier = nxt
        if len(frontier) > 64:
            frontier = frontier[:64]
    out.update(path for _, path in frontier)
    if not out:
        out.add("output" if forward else "input")
    return tuple(sorted(out))


# --- 2/3. order and align --------------------------------------------------------------------


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


def _similarity(a: Unit, b: Unit, ps: Side, ts: Side, mapping: dict[int, int]) -> float:
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


def refine(pairs: list[tuple[int, int]], ps: Side, ts: Side) -> tuple[list[tuple[int, int]], set[int]]:
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


# --- 5. aggregate ----------------------------------------------------------------------------


def match_sides(ps: Side, ts: Side, p_layers: Mapping[str, LayerInfo],
                t_layers: Mapping[str, LayerInfo]) -> MatchResult:
    """Match two prepared sides (see :func:`match_graphs`)."""
    p_order = sorted(ps.units, key=order_key)
    t_order = sorted(ts.units, key=order_key)
    aligned = [(p_order[i].uid, t_order[j].uid) for i, j in align(p_order, t_order)]
    unit_pairs, unsettled = refine(aligned, ps, ts)
    unit_pairs = _drop_stray_free_pairs(unit_pairs, ps, ts)
    mapping = dict(unit_pairs)

    votes: dict[str, Counter[str]] = defaultdict(Counter)
    per_layer: dict[tuple[str, str], list[tuple[Unit, Unit]]] = defaultdict(list)
    for a, b in unit_pairs:
        pu, tu = ps.units[a], ts.units[b]
        votes[pu.layer][tu.layer] += 1
        per_layer[(pu.layer, tu.layer)].append((pu, tu))
    chosen: dict[str, str] = {}
    taken: dict[str, str] = {}
    conflicts: list[Left] = []
    for p_path, counter in sorted(votes.items(), key=lambda kv: -max(kv[1].values())):
        t_path, _n = counter.most_common(1)[0]
        if t_path in taken:
            conflicts.append(Left("paddle", p_path, f"its calls match torch {t_path!r}, already paired with "
                                                    f"paddle {taken[t_path]!r}"))
            continue
        chosen[p_path], taken[t_path] = t_path, p_path

    pairs: list[ProposedPair] = []
    for p_path, t_path in chosen.items():
        units = per_layer[(p_path, t_path)]
        confs, evidence, doubt = [], [], False
        nbr_ok = nbr_total = 0
        for pu, tu in units:
            nbrs = list(ps.graph.predecessors(pu.uid)) + list(ps.graph.successors(pu.uid))
            t_nbrs = set(ts.graph.predecessors(tu.uid)) | set(ts.graph.successors(tu.uid))
            agree = sum(1 for x in nbrs if mapping.get(x) in t_nbrs)
            nbr_ok, nbr_total = nbr_ok + agree, nbr_total + len(nbrs)
            frac = agree / len(nbrs) if nbrs else 1.0
            c = 0.6 + 0.4 * frac
            if pu.uid in unsettled:
                c *= 0.6
                doubt = True
            confs.append(c)
        pu, tu = units[0]
        evidence.append(f"same op kind {pu.kind}")
        if pu.has_params:
            evidence.append(f"same parameter shapes {list(pu.shapes)} (layout-free)")
        evidence.append(f"{nbr_ok}/{nbr_total} graph neighbours agree")
        if pu.down == tu.down:
            evidence.append("same consumer position")
        if len(units) > 1:
            evidence.append(f"{len(units)} calls matched")
        if doubt:
            evidence.append("tie: equal candidates the structure could not separate")
        total = sum(votes[p_path].values())
        if votes[p_path][t_path] < total:
            evidence.append(f"{votes[p_path][t_path]}/{total} calls agree")
        p_info, t_info = p_layers.get(p_path), t_layers.get(t_path)
        compare = _same_output(p_info, t_info, units)
        if not compare:
            evidence.append("weight-only pair: the layers' outputs are different tensors")
        conf = round(min(1.0, sum(confs) / len(confs)) * (votes[p_path][t_path] / total), 3)
        pairs.append(ProposedPair(p_path, t_path, conf, tuple(evidence), compare, doubt))
    first_op: dict[str, int] = {}
    for u in ps.units:
        first_op[u.layer] = min(first_op.get(u.layer, u.ops[0]), u.ops[0])
    pairs.sort(key=lambda pr: first_op.get(pr.paddle_path, 0))

    unpaired = conflicts + _explain(ps, ts, p_layers, t_layers, set(chosen), set(taken), "paddle") \
        + _explain(ts, ps, t_layers, p_layers, set(taken), set(chosen), "torch")
    return MatchResult(pairs, unpaired, [(ps.units[a], ts.units[b]) for a, b in unit_pairs])


def _drop_stray_free_pairs(pairs: list[tuple[int, int]], ps: Side, ts: Side) -> list[tuple[int, int]]:
    """Unpair parameter-free units none of whose graph neighbours map onto the other's."""
    mapping = dict(pairs)
    keep = []
    for a, b in pairs:
        if not ps.units[a].has_params:
            nbrs = list(ps.graph.predecessors(a)) + list(ps.graph.successors(a))
            t_nbrs = set(ts.graph.predecessors(b)) | set(ts.graph.successors(b))
            if nbrs and not any(mapping.get(x) in t_nbrs for x in nbrs):
                continue
        keep.append((a, b))
    return keep


def _same_output(p: LayerInfo | None, t: LayerInfo | None, units: list[tuple[Unit, Unit]]) -> bool:
    """Do the two layers return the same tensor? Same computation, and alike in kind.

    A container holding raw weights (paddle ``create_parameter`` + ``F.linear`` in a
    bigger forward) against a torch leaf ``Linear`` is a weight-only pair; a paddle
    ``LSTM`` (with RNN/cell children) against torch's leaf ``LSTM`` is not.
    """
    if p is None or t is None:
        return False
    if p.leaf != t.leaf and _norm(p.cls) != _norm(t.cls):
        return False
    return all(pu.compute == tu.compute for pu, tu in units)


def _norm(cls: str) -> str:
    name = cls.lower()
    return name[:-2] if name[-2:] in ("1d", "2d", "3d") else name


def _explain(me: Side, other: Side, mine: Mapping[str, LayerInfo], theirs: Mapping[str, LayerInfo],
             paired: set[str], other_paired: set[str], side: str) -> list[Left]:
    """Reasons for the layers of ``me`` left out of the pairs."""
    out: list[Left] = []
    by_layer: dict[str, list[Unit]] = defaultdict(list)
    for u in me.units:
        by_layer[u.layer].append(u)
    with_units = set(by_layer)
    other_free = [u for u in other.units if u.layer not in other_paired]
    for path, info in mine.items():
        if path in paired:
            continue
        if path in with_units:
            u = by_layer[path][0]
            if u.has_params:
                same_kind = [o for o in other_free if o.has_params and o.kind == u.kind]
                if same_kind:
                    reason = (f"same kind, different shapes: {u.kind} {list(u.shapes)} vs "
                              f"{list(same_kind[0].shapes)} ({same_kind[0].layer or '<root>'})")
                else:
                    reason = f"no counterpart: no {u.kind} with shapes {list(u.shapes)} on the other side"
            elif other.glue_kinds.get(u.kind, 0) or any(other.glue_kinds.get(k, 0) for k in u.compute):
                reason = f"functional on the other side ({u.kind} is not a layer there)"
            else:
                reason = f"no counterpart: extra {info.cls}"
            out.append(Left(side, path, reason))
        elif info.shapes:
            reason = ("inside control flow (If/Loop) in the exported graph"
                      if _in_control(path, me) else "not executed for this input")
            out.append(Left(side, path, reason))
        elif info.leaf and path:
            owner = next((a for a in _ancestors(path) if a in paired), None)
            reason = (f"part of paired layer {owner!r} (exported as one op there)" if owner is not None
                      else f"no counterpart: extra {info.cls} (no computation in the exported graph)")
            out.append(Left(side, path, reason))
    return out


def _ancestors(path: str) -> list[str]:
    """``a.b.c`` → ``["a.b", "a"]`` (the root is left out: it pairs whole models)."""
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _in_control(path: str, side: Side) -> bool:
    return path in side.control_layers


def match_graphs(pg: nx.DiGraph, tg: nx.DiGraph, p_layers: Mapping[str, LayerInfo],
                 t_layers: Mapping[str, LayerInfo]) -> MatchResult:
    """Pair paddle layers with torch layers from two canonical op graphs."""
    return match_sides(build_units(pg, p_layers), build_units(tg, t_layers), p_layers, t_layers)
