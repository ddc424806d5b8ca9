"""Fused against split layers, and enclosing blocks: what the one-to-one match left over.

Real ports fuse what the other side splits (paddle ``qkv_proj`` against torch
``q_proj``/``k_proj``/``v_proj``, ``up_gate_proj`` against ``gate_proj``/``up_proj``,
GPT-2's ``Conv1D`` against three Linears). The one-to-one alignment leaves such layers
unpaired ("same kind, different shapes"). Two passes over its result, pure Python over
the unit graphs:

1. **Fused pairs.** One leftover layer on one side and two or more leftover layers on the
   other form a fused pair when the dataflow says they do the same job: the same op kind,
   the same (already paired) producers feeding them, paired consumers that together are
   the fused layer's (each part feeds some of them: ``gate`` the activation, ``up`` the
   product), and together exactly the parameters of the single layer (element counts per
   tensor rank). The order of the parts is not read from definition order: the
   pair is marked ``uncertain`` and :mod:`padiff.graph.confirm` settles it numerically.
2. **Opaque blocks** for what is still left (:mod:`padiff.graph.blocks`), and for an
   opaque block whose top has no op of its own, the closest enclosing pair compared at its outputs.

Must not import paddle or torch.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence

import networkx as nx

from padiff.graph.blocks import compared_parents, enclosing_blocks, numel
from padiff.graph.proposal import MatchResult, ProposedPair
from padiff.graph.units import LayerInfo, Unit, UnitGraph
from padiff.names import is_within as _within

MAX_PARTS = 8  # subsets of at most this many layers are tried for one fused layer
MAX_GROUPS = 64  # at most this many interleaved runs are tried for the parts of a fused pair
MAX_SUBSETS = 20000  # beyond this many candidate subsets the fused layer is left unpaired


def _budget(info: LayerInfo) -> Counter[int]:
    """Parameter elements per tensor rank (weights and biases must add up separately)."""
    out: Counter[int] = Counter()
    for s in info.shapes:
        out[len(s)] += numel(s)
    return out


def _first_units(side: UnitGraph, paths: set[str]) -> dict[str, Unit]:
    out: dict[str, Unit] = {}
    for u in side.units:
        if u.layer in paths and u.has_params and u.layer not in out:
            out[u.layer] = u
    return out


def _layers_of(side: UnitGraph, uids: set[int]) -> frozenset[str]:
    return frozenset(side.units[x].layer for x in uids)


def _around(side: UnitGraph, u: Unit, mapping: Mapping[int, int],
            other: UnitGraph) -> tuple[frozenset[str], frozenset[str]]:
    """Producers and consumers of ``u`` that are already paired, as the other side's layer paths."""
    preds = {mapping[x] for x in side.graph.predecessors(u.uid) if x in mapping}
    succs = {mapping[x] for x in side.graph.successors(u.uid) if x in mapping}
    return _layers_of(other, preds), _layers_of(other, succs)


def _own_around(side: UnitGraph, u: Unit, paired: set[int]) -> tuple[frozenset[str], frozenset[str]]:
    preds = {x for x in side.graph.predecessors(u.uid) if x in paired}
    succs = {x for x in side.graph.successors(u.uid) if x in paired}
    return _layers_of(side, preds), _layers_of(side, succs)


def fused_pairs(single: UnitGraph, split: UnitGraph, mapping: Mapping[int, int], single_left: set[str],
                split_left: set[str], single_layers: Mapping[str, LayerInfo],
                split_layers: Mapping[str, LayerInfo]) -> list[tuple[str, tuple[str, ...], str]]:
    """``(single path, split paths, evidence)`` for every fused layer found, split paths in graph order.

    ``mapping`` maps paired unit ids of ``single`` to those of ``split``. A split layer joins
    at most one fused layer; a fused layer needs one subset of the candidates to match its
    parameters exactly (an ambiguous subset gives no pair).
    """
    s_units = _first_units(single, single_left)
    t_units = _first_units(split, split_left)
    paired_split = set(mapping.values())
    used: set[str] = set()
    out = []
    for s_path, su in s_units.items():
        want = _budget(single_layers[s_path])
        preds, succs = _around(single, su, mapping, split)
        cands = []
        feeds: dict[str, frozenset[str]] = {}
        for t_path, tu in t_units.items():
            if t_path in used or tu.kind != su.kind:
                continue
            t_preds, t_succs = _own_around(split, tu, paired_split)
            # each part reads what the fused layer reads and feeds some of what it feeds: the
            # pieces of a split output often go different ways (gate -> act_fn, up -> the product)
            if t_preds == preds and t_succs <= succs and (t_succs or not succs):
                cands.append(t_path)
                feeds[t_path] = t_succs
        found = []
        if sum(math.comb(len(cands), k) for k in range(2, min(len(cands), MAX_PARTS) + 1)) > MAX_SUBSETS:
            continue  # too many look-alike candidates to tell the parts apart by their budget
        for k in range(2, min(len(cands), MAX_PARTS) + 1):
            for combo in itertools.combinations(cands, k):
                if not _parallel(split, [t_units[c] for c in combo]):
                    continue  # parts run side by side; a chain of layers is not a split of one
                if frozenset().union(*(feeds[c] for c in combo)) != succs:
                    continue  # together the parts feed everything the fused output feeds
                got: Counter[int] = Counter()
                for t_path in combo:
                    got.update(_budget(split_layers[t_path]))
                if got == want:
                    found.append(combo)
            if found:
                break
        if len(found) != 1:
            continue
        parts = tuple(sorted(found[0], key=lambda p: t_units[p].fine))
        used.update(parts)
        where = ", ".join(sorted(p or "<root>" for p in preds)) or "the model input"
        after = ", ".join(sorted(p or "<root>" for p in succs)) or "the model output"
        evidence = (f"fused against split: {len(parts)} {su.kind} layers read what {s_path or '<root>'} reads "
                    f"(from {where}) and together feed what it feeds ({after}); their parameters add up to its own")
        out.append((s_path, parts, evidence))
    return out


def layout_groups(pair: ProposedPair, p_layers: Mapping[str, LayerInfo],
                  t_layers: Mapping[str, LayerInfo]) -> list[int]:
    """How many interleaved runs the parts of a fused pair could form: 1 (one after another) first.

    A grouped-query ``qkv_proj`` cuts its output per key-value head (``[q_0, k_0, v_0, q_1, ...]``),
    so the candidates are the common divisors (up to ``MAX_GROUPS``) of the parts' tensor sizes;
    which one holds is for the numbers (:mod:`padiff.graph.confirm`) to say.
    """
    parts, layers = (pair.torch_parts, t_layers) if pair.torch_parts else (pair.paddle_parts, p_layers)
    common = 0
    for path in parts:
        for shape in layers[path].shapes if path in layers else ():
            common = math.gcd(common, numel(shape))
    return [g for g in range(1, min(common, MAX_GROUPS) + 1) if common % g == 0] or [1]


def _parallel(side: UnitGraph, units: Sequence[Unit]) -> bool:
    """No data flows from one of ``units`` to another (they are the pieces of one step, not a chain)."""
    uids = {u.uid for u in units}
    return all(not uids & (nx.descendants(side.graph, u.uid) - {u.uid}) for u in units)


def extend(result: MatchResult, ps: UnitGraph, ts: UnitGraph, p_layers: Mapping[str, LayerInfo],
           t_layers: Mapping[str, LayerInfo]) -> MatchResult:
    """``result`` plus fused pairs (both directions) and opaque block pairs for what is left."""
    def left(side: str, table: Mapping[str, LayerInfo]) -> set[str]:
        return {u.path for u in result.unpaired if u.side == side and u.path in table and table[u.path].shapes}

    left_p, left_t = left("paddle", p_layers), left("torch", t_layers)
    if not left_p or not left_t:
        return result
    mapping = {pu.uid: tu.uid for pu, tu in result.unit_pairs}
    back = {t: p for p, t in mapping.items()}
    pairs = list(result.pairs)
    note = "order of the parts to be settled numerically"
    for single, parts, ev in fused_pairs(ps, ts, mapping, left_p, left_t, p_layers, t_layers):
        pairs.append(ProposedPair(single, parts[0], 0.6, (ev, note), True, uncertain=True, torch_parts=parts))
        left_p.discard(single)
        left_t.difference_update(parts)
    for single, parts, ev in fused_pairs(ts, ps, back, left_t, left_p, t_layers, p_layers):
        pairs.append(ProposedPair(parts[0], single, 0.6, (ev, note), True, uncertain=True, paddle_parts=parts))
        left_t.discard(single)
        left_p.difference_update(parts)
    plain = [(pr.paddle_path, pr.torch_path) for pr in pairs if not (pr.paddle_parts or pr.torch_parts)]
    seen = {(u.side, u.path) for u in result.unpaired if u.kind != "unseen"}
    # blocks only for layers the graphs saw and could not pair (not for control flow / not executed)
    for b in enclosing_blocks({p for p in left_p if ("paddle", p) in seen}, {t for t in left_t if ("torch", t) in seen},
                              plain, p_layers, t_layers):
        pairs = [pr for pr in pairs
                 if not (_within(pr.paddle_path, b.paddle_path) and _within(pr.torch_path, b.torch_path))]
        pairs.append(ProposedPair(b.paddle_path, b.torch_path, 0.5, (b.evidence,), True, opaque=True))
        left_p = {x for x in left_p if not _within(x, b.paddle_path)}
        left_t = {x for x in left_t if not _within(x, b.torch_path)}
    covered = {("paddle", path) for pr in pairs for path in (pr.paddle_parts or (pr.paddle_path,))}
    covered |= {("torch", path) for pr in pairs for path in (pr.torch_parts or (pr.torch_path,))}
    blocks = [(pr.paddle_path, pr.torch_path) for pr in pairs if pr.opaque]
    unpaired = [u for u in result.unpaired if (u.side, u.path) not in covered
                and not any(_within(u.path, top[0] if u.side == "paddle" else top[1]) for top in blocks)]
    pairs += compared_parents(pairs, {u.layer for u in ps.units}, {u.layer for u in ts.units}, p_layers, t_layers)
    return MatchResult(pairs, unpaired, result.unit_pairs, result.params)


__all__ = ["extend", "fused_pairs", "layout_groups"]
