"""Units: one call of one layer in a canonical op graph, and the glue between them.

Ops are grouped by (layer, call) and split into weakly connected pieces; a piece is a
unit when it reads parameters or belongs to a leaf layer (ReLU, pooling ...);
everything else is *glue* (container or root code). Each unit gets a depth
(parameter units on the longest path before it), a finer depth (all units), a label
(kind + layout-free parameter shapes) and signatures of the glue around it (op kinds
and consumer slots up to a few hops), so ``a - b`` or ``q @ k.T`` tell their operands
apart. Pure Python over networkx.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import networkx as nx

from padiff.graph.canonical import canonical_kind, compute_kind, shape_key
from padiff.names import is_strictly_within

SIG_HOPS = 4
GLUE_HOPS = 8


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
class UnitGraph:
    """Units of one graph, the unit-level DAG and the glue ops' kinds."""

    units: list[Unit]
    graph: nx.DiGraph  # unit uid -> unit uid
    glue_kinds: Counter[str] = field(default_factory=Counter)
    control_layers: frozenset[str] = frozenset()
    used_params: frozenset[str] = frozenset()



def vectors_only(u: Unit) -> bool:
    """A parameter unit whose every tensor is a vector (a per-feature scale or bias)."""
    return u.has_params and bool(u.shapes) and all(len(s) == 1 for s in u.shapes)


def optional_affine_kinds(*sides: UnitGraph) -> frozenset[str]:
    """Op kinds some unit runs with vector parameters only and another runs with none (a norm created
    with and without its scale/bias): their parameters are a convention, so they add no depth."""
    units = [u for side in sides for u in side.units]
    with_vectors = {u.kind for u in units if vectors_only(u)}
    return frozenset(with_vectors & {u.kind for u in units if not u.has_params})


def build_units(g: nx.DiGraph, layers: Mapping[str, LayerInfo], quiet: frozenset[str] = frozenset()) -> UnitGraph:
    """Group the ops of canonical graph ``g`` into units and glue (see module docstring).

    ``quiet``: op kinds whose vector-only parameter units add no depth (:func:`optional_affine_kinds`), so
    a norm holding its identity scale/bias on one side and none on the other shifts no later unit's depth.
    """
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
    _depths(g, units, unit_of, quiet)
    for u in units:
        u.down = _signature(g, u, unit_of, units, forward=True)
        u.up = _signature(g, u, unit_of, units, forward=False)
    return UnitGraph(units, ug, glue, g.graph.get("control_layers", frozenset()),
                     g.graph.get("used_params", frozenset()))


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


def _depths(g: nx.DiGraph, units: list[Unit], unit_of: dict[int, int], quiet: frozenset[str]) -> None:
    """Depth = parameter units crossed on the longest path in (not the ``quiet`` ones, see
    :func:`build_units`); fine = all units crossed."""
    steps = [u.has_params and not (u.kind in quiet and vectors_only(u)) for u in units]
    deep: dict[int, int] = {}
    fine: dict[int, int] = {}
    for n in nx.topological_sort(g):
        d = f = 0
        for p in g.predecessors(n):
            pu = unit_of.get(p)
            step = pu is not None and pu != unit_of.get(n)
            d = max(d, deep[p] + (1 if step and steps[pu] else 0))  # type: ignore[index]
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


def leaves_by_calls(layers: Mapping[str, LayerInfo], called: set[str]) -> dict[str, LayerInfo]:
    """``layers`` with each tensor-holding layer whose children hold nothing and run no op marked a leaf.

    Such a layer computes its output from its own weights alone: its children are helpers it never
    calls (an activation the forward does not use), so its output is compared as a leaf's would be.
    A child that runs ops (``called``: the layer paths the graph attributes ops to) keeps the layer a
    container, as its output then goes past its weights (raw weights under a called activation).
    """
    owners = {p for p, info in layers.items() if info.shapes}

    def dead_helpers(path: str) -> bool:
        inside = [p for p in layers if is_strictly_within(p, path)]
        return bool(inside) and not any(p in owners or p in called for p in inside)

    return {p: (replace(info, leaf=True) if info.shapes and not info.leaf and p and dead_helpers(p) else info)
            for p, info in layers.items()}

