"""Pair the layers of two canonical op graphs: pure Python over networkx and plain data.

Input: per side a canonical op graph (see :mod:`padiff.graph.canonical`; nodes carry
``kind``, ``params``, ``layer``, ``call``, ``index``; edges ``slot``) and a
``{path: LayerInfo}`` table. Steps:

1. **Units** (:mod:`padiff.graph.units`): layer calls and the glue between them, with
   depths, labels and glue signatures.
2. **Align** (:mod:`padiff.graph.align`): Needleman–Wunsch over the canonical orders,
   then tie blocks refined by neighbour agreement.
3. **Aggregate** (here): unit pairs become layer pairs by vote (a layer called twice
   still gives one pair), with confidence, evidence, whether outputs are comparable,
   and reasons for everything left unpaired.

Must not import paddle or torch (a test checks it in a fresh interpreter).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping

import networkx as nx

from padiff.graph.align import align, order_key, pair_score, refine
from padiff.graph.blocks import rematch_crossed
from padiff.graph.free_blocks import crossed_free_pairs
from padiff.graph.fused import extend
from padiff.graph.identity_affine import identity_affine_pairs
from padiff.graph.proposal import Left, MatchResult, ProposedPair
from padiff.graph.raw_params import param_pairs
from padiff.graph.units import LayerInfo, Unit, UnitGraph, build_units, optional_affine_kinds
from padiff.names import class_key, show

__all__ = ["LayerInfo", "Left", "MatchResult", "ProposedPair", "Unit", "align", "build_units", "match_graphs",
           "match_sides", "order_key", "pair_score"]


def match_sides(ps: UnitGraph, ts: UnitGraph, p_layers: Mapping[str, LayerInfo],  # noqa: C901, PLR0915  # the matcher's pipeline, each step a call; splitting scatters its shared state
                t_layers: Mapping[str, LayerInfo], skip_p: frozenset[str] = frozenset(),
                skip_t: frozenset[str] = frozenset()) -> MatchResult:
    """Match two prepared sides (see :func:`match_graphs`); the layers in ``skip_*`` are left out."""
    p_order = sorted((u for u in ps.units if u.layer not in skip_p), key=order_key)
    t_order = sorted((u for u in ts.units if u.layer not in skip_t), key=order_key)
    aligned = [(p_order[i].uid, t_order[j].uid) for i, j in align(p_order, t_order)]
    unit_pairs, unsettled = refine(aligned, ps, ts)
    kept = _drop_stray_free_pairs(unit_pairs, ps, ts)
    misplaced = {(ps.units[a].layer, ts.units[b].layer) for a, b in set(unit_pairs) - set(kept)}
    # a norm holding only its identity scale/bias against the same norm holding none
    unit_pairs = kept + identity_affine_pairs(kept, ps, ts, skip_p, skip_t, _placed)
    mapping = dict(unit_pairs)

    votes: dict[str, Counter[str]] = defaultdict(Counter)
    per_layer: dict[tuple[str, str], list[tuple[Unit, Unit]]] = defaultdict(list)
    for a, b in unit_pairs:
        pu, tu = ps.units[a], ts.units[b]
        votes[pu.layer][tu.layer] += 1
        per_layer[(pu.layer, tu.layer)].append((pu, tu))
    chosen: dict[str, str] = {}
    taken: dict[str, str] = {}
    conflicts = _split_free_layers(votes, ps, ts)
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
        if pu.has_params and tu.has_params:
            evidence.append(f"same parameter shapes {list(pu.shapes)} (layout-free)")
        elif pu.has_params or tu.has_params:
            evidence.append(f"only {'paddle' if pu.has_params else 'torch'} holds parameters, all vectors "
                            f"{list((pu if pu.has_params else tu).shapes)} (a scale/bias the other side leaves out)")
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
        compare = _same_output(p_info, t_info)
        moved = sorted(_moved_ops(pu, tu) | _moved_ops(tu, pu))
        if not compare:
            evidence.append("weight-only pair: the layers' outputs are different tensors")
        absorbed, side, inside = _absorbed(pu, tu, ps, ts, taken), "torch", p_path
        if absorbed is None:
            absorbed, side, inside = _absorbed(tu, pu, ts, ps, chosen, "torch", "paddle"), "paddle", t_path
        if compare and absorbed:
            compare = False
            evidence.append(absorbed[0])
            if absorbed[1]:  # the other side's activation layer: say where its work is done
                conflicts.append(Left(side, absorbed[1], f"its activation is applied inside the other side's "
                                                         f"{show(inside)!r} (paired weight-only)"))
        if compare and moved:  # the general form of the rule above, when it named no activation
            compare = False
            evidence.append(f"weight-only pair: one layer also runs {', '.join(moved)}, which the other side runs "
                            "after its layer, so their outputs are different tensors")
        conf = round(min(1.0, sum(confs) / len(confs)) * (votes[p_path][t_path] / total), 3)
        pairs.append(ProposedPair(p_path, t_path, conf, tuple(evidence), compare, doubt))
    free = {p for p, t in chosen.items() if not per_layer[(p, t)][0][0].has_params}
    for p_path, why in crossed_free_pairs(pairs, free).items():  # neighbours agree, blocks do not
        t_path = chosen.pop(p_path)
        taken.pop(t_path, None)
        pairs = [pr for pr in pairs if pr.paddle_path != p_path]
        conflicts += [Left("paddle", p_path, why), Left("torch", t_path, why)]
    first_op: dict[str, int] = {}
    for u in ps.units:
        first_op[u.layer] = min(first_op.get(u.layer, u.ops[0]), u.ops[0])
    pairs.sort(key=lambda pr: first_op.get(pr.paddle_path, 0))

    paired_p, paired_t = set(chosen), set(taken)
    for p_path, t_path in sorted(misplaced):
        why = ("parameter-free: same op as {} {!r}, but not between the same paired neighbours there "
               "(dataflow does not place them together)")
        if p_path not in paired_p and all(c.path != p_path or c.side != "paddle" for c in conflicts):
            conflicts.append(Left("paddle", p_path, why.format("torch", t_path)))
        if t_path not in paired_t and all(c.path != t_path or c.side != "torch" for c in conflicts):
            conflicts.append(Left("torch", t_path, why.format("paddle", p_path)))
    explained = {(c.side, c.path) for c in conflicts}  # one reason per layer, never two rows
    unpaired = conflicts + [u for u in _explain(ps, ts, p_layers, t_layers, set(chosen), set(taken), "paddle")
                            + _explain(ts, ps, t_layers, p_layers, set(taken), set(chosen), "torch")
                            if (u.side, u.path) not in explained]
    return MatchResult(pairs, unpaired, [(ps.units[a], ts.units[b]) for a, b in unit_pairs])


def _drop_stray_free_pairs(pairs: list[tuple[int, int]], ps: UnitGraph, ts: UnitGraph) -> list[tuple[int, int]]:
    """Keep a parameter-free unit pair only where dataflow places it: between the same paired neighbours.

    A parameter-free unit (activation, pooling) carries no identity of its own, so the
    alignment may put it against any unit of the same op. It stays paired only when,
    on each side that has them, one of its producers maps onto a producer of its
    partner and one of its consumers onto a consumer. Dropping a pair can strand a
    neighbour, so this repeats until nothing changes.
    """
    keep = list(pairs)
    while True:
        mapping = dict(keep)
        out = [(a, b) for a, b in keep if ps.units[a].has_params or _placed(a, b, ps, ts, mapping)]
        if len(out) == len(keep):
            return out
        keep = out


def _placed(a: int, b: int, ps: UnitGraph, ts: UnitGraph, mapping: Mapping[int, int]) -> bool:
    """Do the nearest paired producers and consumers of unit ``a`` map onto those of unit ``b``?

    Unpaired units in between (a pooling layer on one side that is a function on the
    other) are looked through, as glue is.
    """
    images = set(mapping.values())
    for forward in (False, True):
        nbrs = _nearest(ps, a, forward, lambda u: u in mapping)
        t_nbrs = _nearest(ts, b, forward, lambda u: u in images)
        if not nbrs and not t_nbrs:
            continue  # a model input or output on both sides
        if not any(mapping.get(x) in t_nbrs for x in nbrs):
            return False
    return True


def _nearest(side: UnitGraph, start: int, forward: bool, anchor: Callable[[int], bool], hops: int = 4) -> set[int]:
    """The first anchor units met walking the unit graph from ``start`` (through non-anchors)."""
    step = side.graph.successors if forward else side.graph.predecessors
    found: set[int] = set()
    frontier, seen = list(step(start)), {start}
    for _ in range(hops):
        nxt: list[int] = []
        for u in frontier:
            if u in seen:
                continue
            seen.add(u)
            if anchor(u):
                found.add(u)
            else:
                nxt.extend(step(u))
        frontier = nxt
        if not frontier:
            break
    return found


def _split_free_layers(votes: dict[str, Counter[str]], ps: UnitGraph, ts: UnitGraph) -> list[Left]:
    """Leave out parameter-free layers whose calls match several layers on the other side.

    One module called twice on one side against two modules on the other is a normal
    port (a reused ``ReLU`` or ``Dropout``). No one-to-one pair can express it, and a
    pair with one of them would leave the other calls without a partner; the engine
    pairs such calls one by one between their paired neighbours instead. Removes those
    layers from ``votes`` and returns their reasons.
    """
    free_p = {u.layer for u in ps.units if not u.has_params}
    free_t = {u.layer for u in ts.units if not u.has_params}
    t_voters: dict[str, set[str]] = defaultdict(set)
    for p_path, counter in votes.items():
        for t_path in counter:
            t_voters[t_path].add(p_path)
    out: list[Left] = []
    split_p = {p for p, c in votes.items() if p in free_p and len(c) > 1}
    split_t = {t for t, ps_ in t_voters.items() if t in free_t and len(ps_) > 1}
    for p_path in sorted(split_p):
        others = ", ".join(sorted(votes[p_path]))
        out.append(Left("paddle", p_path, f"parameter-free, its calls match several torch layers ({others}): "
                                          "the engine pairs its calls one by one between paired neighbours"))
    for t_path in sorted(split_t):
        others = ", ".join(sorted(t_voters[t_path]))
        out.append(Left("torch", t_path, f"parameter-free, its calls match several paddle layers ({others}): "
                                         "the engine pairs its calls one by one between paired neighbours"))
    for p_path in list(votes):
        if p_path in split_p:
            del votes[p_path]
            continue
        for t_path in [t for t in votes[p_path] if t in split_t]:
            del votes[p_path][t_path]
            out.append(Left("paddle", p_path, f"parameter-free, its calls match torch {t_path!r}, which is called "
                                              "for several paddle layers: the engine pairs the calls one by one"))
        if not votes[p_path]:
            del votes[p_path]
    return out


def _absorbed(mine: Unit, theirs: Unit, me: UnitGraph, other: UnitGraph, other_paired: Mapping[str, str],
              side: str = "paddle", other_side: str = "torch") -> tuple[str, str] | None:
    """Why the pair's outputs differ when ``mine`` also runs an activation ``theirs`` leaves to its own layer.

    paddle's ``BatchNorm(act="relu")`` applies the ReLU inside the layer; torch's ``BatchNorm2d``
    hands its output to a separate ``ReLU``. Such a pair's outputs are different tensors (before
    and after the activation): it is a weight-only pair, and the result is compared at the next
    pair. Told by dataflow: the other unit's consumer is an unpaired parameter-free unit
    computing only ops that ``mine`` has and ``theirs`` lacks, or every path out of ``theirs``
    starts with such an op in the code between layers. Returns the evidence and the other
    side's activation layer (``""`` when it is code), or None when that is not so.
    """
    extra = mine.compute - theirs.compute
    if not mine.has_params or not extra:
        return None
    for v in other.graph.successors(theirs.uid):
        nxt = other.units[v]
        if not nxt.has_params and nxt.layer not in other_paired and nxt.compute <= extra:
            return (f"weight-only pair: the {side} layer also applies {', '.join(sorted(nxt.compute))}, which "
                    f"{other_side} applies in its own layer {show(nxt.layer)!r}, so the outputs differ by it "
                    "(the next pair compares the result)", nxt.layer)
    # or in code between layers (``F.relu(norm5(x))``): every path out of ``theirs`` starts with such an op
    first = {path.split(">")[1].split("@")[0] if ">" in path else "" for path in theirs.down}
    if first and first <= extra:
        return (f"weight-only pair: the {side} layer also applies {', '.join(sorted(first))}, which {other_side} "
                "applies after the layer returns, so the outputs differ by it (the next pair compares the result)", "")
    return None


def _same_output(p: LayerInfo | None, t: LayerInfo | None) -> bool:
    """Do the two layers return the same tensor? Alike in kind: both leaves, both containers, or one class.

    A container holding raw weights (paddle ``create_parameter`` + ``F.linear`` in a
    bigger forward) against a torch leaf ``Linear`` is a weight-only pair; a paddle
    ``LSTM`` (with RNN/cell children) against torch's leaf ``LSTM`` is not.
    """
    if p is None or t is None:
        return False
    # a different op decomposition (an RMSNorm written with pow/mean/rsqrt against one that
    # casts first) still returns the same tensor: its output is compared, or a fault in it
    # would only show at a later layer
    return p.leaf == t.leaf or class_key(p.cls) == class_key(t.cls)


def _moved_ops(a: Unit, b: Unit) -> set[str]:
    """Op kinds ``a`` runs inside its layer that ``b``'s side runs right after ``b`` (glue), not inside.

    A torch router returning softmax scores against a paddle gate Linear returning logits (the
    softmax follows in the block's code): the weights pair, the outputs are different tensors.
    """
    extra = a.compute - b.compute
    if not extra:
        return set()
    after = {step.split("@")[0] for path in b.down for step in path.split(">")}
    return set(extra & after)


def _explain(me: UnitGraph, other: UnitGraph, mine: Mapping[str, LayerInfo], theirs: Mapping[str, LayerInfo],
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
                              f"{list(same_kind[0].shapes)} ({show(same_kind[0].layer)})")
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
            out.append(Left(side, path, reason, "unseen"))
        elif info.leaf and path:
            owner = next((a for a in _ancestors(path) if a in paired), None)
            alike = any(o.leaf and o.path not in other_paired and class_key(o.cls) == class_key(info.cls)
                        for o in theirs.values())
            if owner is not None:
                reason = f"part of paired layer {owner!r} (exported as one op there)"
            elif not alike:
                reason = f"no counterpart: extra {info.cls} (no computation in the exported graph)"
            else:
                reason = (f"{info.cls}: no computation in the exported graph (e.g. Dropout/Identity in eval "
                          "mode), so dataflow cannot place it; not proposed (the engine pairs its calls of "
                          "the same kind between paired neighbours)")
            out.append(Left(side, path, reason))
    return out


def _ancestors(path: str) -> list[str]:
    """``a.b.c`` → ``["a.b", "a"]`` (the root is left out: it pairs whole models)."""
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _in_control(path: str, side: UnitGraph) -> bool:
    return path in side.control_layers


def match_graphs(pg: nx.DiGraph, tg: nx.DiGraph, p_layers: Mapping[str, LayerInfo],
                 t_layers: Mapping[str, LayerInfo]) -> MatchResult:
    """Pair paddle layers with torch layers from two canonical op graphs.

    One to one first (:func:`match_sides`), then raw parameters against layers
    (:mod:`padiff.graph.raw_params`), then fused-against-split layers and enclosing blocks
    among what is left (:mod:`padiff.graph.fused`). When one-to-one pairs crossed a balanced
    block, once more with those blocks left out (:func:`padiff.graph.blocks.rematch_crossed`).
    """
    ps, ts = build_units(pg, p_layers), build_units(tg, t_layers)
    quiet = optional_affine_kinds(ps, ts)
    if quiet:  # norms with a scale/bias on one side and none on the other: depths without them
        ps, ts = build_units(pg, p_layers, quiet), build_units(tg, t_layers, quiet)

    def one_to_one(skip_p: frozenset[str], skip_t: frozenset[str]) -> MatchResult:
        return param_pairs(pg, tg, match_sides(ps, ts, p_layers, t_layers, skip_p, skip_t), p_layers, t_layers)

    base = one_to_one(frozenset(), frozenset())
    return rematch_crossed(base, extend(base, ps, ts, p_layers, t_layers),
                           lambda sp, st: extend(one_to_one(sp, st), ps, ts, p_layers, t_layers), p_layers, t_layers)
