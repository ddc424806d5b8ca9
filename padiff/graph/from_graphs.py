"""From two attributed op graphs to a proposed ``LayerMap``: the framework-free half of ``suggest_layer_map``.

``suggest_layer_map`` exports (or records) both live models and hands the graphs here;
``compare_runs(layer_map="auto")`` reads the graphs each run stored and hands them here too,
so the two make the same proposal for the same models (canonicalise, match by dataflow,
pair the leftovers by the module trees, mark pairs whose returns cannot correspond as
weights-only, then the same ``LayerMap`` with pairs, parameter pairs, unpaired layers and the
definition-order baseline). Only the numerical settling of ties needs the models; that
stays in :mod:`padiff.graph.suggest`. No paddle or torch import.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, cast

import networkx as nx

from padiff.graph.match import LayerInfo, Left, MatchResult, ProposedPair
from padiff.graph.returns import weights_only_by_returns
from padiff.graph.tree import match_trees
from padiff.graph.units import leaves_by_calls
from padiff.layer_map import LayerMap, LayerPair, ParamPair, Unpaired
from padiff.names import SideName, is_within


def match_attributed(pg: nx.DiGraph, tg: nx.DiGraph, p_layers: Mapping[str, LayerInfo],
                     t_layers: Mapping[str, LayerInfo], timings: dict[str, float] | None = None) -> MatchResult:
    """Match two attributed op graphs (as built, not yet canonical) into pairs, parameter pairs and leftovers."""
    from padiff.graph import canonical, match

    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    pg, tg = canonical.canonicalize(pg), canonical.canonicalize(tg)
    timings["canonicalize"] = time.perf_counter() - t0
    # a tensor-holding layer whose parameter-free children run no op in its graph is compared as a leaf
    p_layers = leaves_by_calls(p_layers, {d["layer"] for _, d in pg.nodes(data=True) if d["layer"] is not None})
    t_layers = leaves_by_calls(t_layers, {d["layer"] for _, d in tg.nodes(data=True) if d["layer"] is not None})
    t0 = time.perf_counter()
    result = pair_leftovers(match.match_graphs(pg, tg, p_layers, t_layers), p_layers, t_layers)
    result = weights_only_by_returns(result, pg.graph.get("returns"), tg.graph.get("returns"))
    timings["match"] = time.perf_counter() - t0
    return result


def proposal_map(result: MatchResult, p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo],
                 route: str, notes: list[str]) -> LayerMap:
    """The ``LayerMap`` of a match result: pairs with shapes, parameter pairs, unpaired layers, baseline."""
    lm = LayerMap(_to_pairs(result, p_layers, t_layers), route=route, notes=notes,
                  unpaired=_unpaired(result, p_layers, t_layers))
    lm.params = [ParamPair(pp.paddle_param, pp.torch_param, pp.conversion, pp.confidence, pp.evidence)
                 for pp in result.params]
    lm.baseline = baseline_pairs(p_layers, t_layers)
    return lm


def baseline_pairs(p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> list[LayerPair]:
    """Plain definition-order pairing of parameter-holding layers (what a default would do)."""
    p = [i for i in p_layers.values() if i.shapes]
    t = [i for i in t_layers.values() if i.shapes]
    return [LayerPair(a.path, b.path, a.cls, b.cls, a.shapes, b.shapes, 0.0, ("definition order",))
            for a, b in zip(p, t)]


def pair_leftovers(result: MatchResult, p_layers: Mapping[str, LayerInfo],
                   t_layers: Mapping[str, LayerInfo]) -> MatchResult:
    """Pair parameter layers the graphs could not place by the module trees, with low confidence.

    Parameter layers inside control flow or not executed have no dataflow evidence;
    the trees still say something (class, shapes, order), so they are paired with a
    low confidence and the evidence says so. Parameter-free leaves with no computation
    in either graph (Dropout/Identity in eval mode) are not: class and definition order
    alone pair them wrongly (a ``pos_drop`` with a block's ``proj_drop``), so they stay
    unpaired with the reason, and the engine pairs their calls between paired neighbours.
    """
    def wanted(u: Any, table: Mapping[str, LayerInfo]) -> bool:
        info = table.get(u.path)
        return info is not None and bool(info.shapes)

    left_p = {u.path: p_layers[u.path] for u in result.unpaired if u.side == "paddle" and wanted(u, p_layers)}
    left_t = {u.path: t_layers[u.path] for u in result.unpaired if u.side == "torch" and wanted(u, t_layers)}
    if not left_p or not left_t:
        return result
    extra = match_trees(left_p, left_t)
    if not extra.pairs:
        return result
    reasons = {(u.side, u.path): u.reason for u in result.unpaired}

    def why(pr: ProposedPair) -> str:
        p_why, t_why = reasons[("paddle", pr.paddle_path)], reasons[("torch", pr.torch_path)]
        return f"not matched in the graphs (paddle: {p_why}; torch: {t_why})"

    added = [ProposedPair(pr.paddle_path, pr.torch_path, min(pr.confidence, 0.4), (why(pr), *pr.evidence),
                          pr.compare_output, uncertain=True) for pr in extra.pairs]
    done = {("paddle", pr.paddle_path) for pr in added} | {("torch", pr.torch_path) for pr in added}
    unpaired: list[Left] = [u for u in result.unpaired if (u.side, u.path) not in done]
    return MatchResult(result.pairs + added, unpaired, result.unit_pairs, result.params)


def _to_pairs(result: MatchResult, p_layers: Mapping[str, LayerInfo],
              t_layers: Mapping[str, LayerInfo]) -> list[LayerPair]:
    out = []
    for pr in result.pairs:
        p, t = p_layers[pr.paddle_path], t_layers[pr.torch_path]
        p_shapes = _shapes(p_layers, pr.paddle_parts, pr.paddle_path, pr.opaque)
        t_shapes = _shapes(t_layers, pr.torch_parts, pr.torch_path, pr.opaque)
        out.append(LayerPair(pr.paddle_path, pr.torch_path, p.cls, t.cls, p_shapes, t_shapes,
                             float(pr.confidence), pr.evidence, compare_output=pr.compare_output, opaque=pr.opaque,
                             paddle_parts=pr.paddle_parts, torch_parts=pr.torch_parts, groups=pr.groups))
    return out


def _shapes(layers: Mapping[str, LayerInfo], parts: tuple[str, ...], path: str,
            subtree: bool) -> tuple[tuple[int, ...], ...]:
    """Tensor shapes one side of a pair exchanges: its parts', its subtree's (opaque) or its own."""
    if parts:
        return tuple(s for part in parts for s in layers[part].shapes)
    if subtree:
        return tuple(s for p, info in layers.items() if is_within(p, path)
                     for s in info.shapes)
    return layers[path].shapes


def _unpaired(result: MatchResult, p_layers: Mapping[str, LayerInfo],
              t_layers: Mapping[str, LayerInfo]) -> list[Unpaired]:
    out = []
    for left in result.unpaired:
        table = p_layers if left.side == "paddle" else t_layers
        cls = table[left.path].cls if left.path in table else ""
        out.append(Unpaired(cast(SideName, left.side), left.path, cls, left.reason))
    return out


__all__ = ["baseline_pairs", "match_attributed", "pair_leftovers", "proposal_map"]
