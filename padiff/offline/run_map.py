"""Which layers of two recorded runs to compare: the same ``LayerMap`` types the live path resolves.

A map file, a ``LayerMap`` or a ``{paddle_path: torch_path}`` dict is read through the one
map parser (:mod:`padiff.layer_map`): fused pairs keep their parts, axis and groups, parameter
pairs and opaque pairs are kept. ``"auto"`` makes the proposal ``suggest_layer_map`` makes
(:mod:`padiff.graph.from_graphs`) from the graphs each run stored (exported, or one eager
forward's dataflow when the export failed), else from the module trees; the proposal is a
``LayerMap`` a person can save, review and pass back. ``None``: call order of the first step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from padiff.errors import MappingError
from padiff.graph.match import LayerInfo
from padiff.layer_map import LayerMap, LayerPair, ParamPair
from padiff.names import is_within, show
from padiff.offline.reader import RankRun


@dataclass
class RunMap:
    """The resolved pairing of two runs: layer pairs, parameter pairs, the route and notes for the report."""

    pairs: list[LayerPair]
    params: list[ParamPair] = field(default_factory=list)
    route: str = ""
    notes: list[str] = field(default_factory=list)
    proposal: LayerMap | None = None  # what "auto" proposed, for a person to review
    root_added: bool = False  # the root pair was added for its outputs, not given by the map


def skeleton_infos(run: RankRun) -> dict[str, LayerInfo]:
    """``{path: LayerInfo}`` from a recorded skeleton (what the matchers need)."""
    out = {}
    for lay in run.skeleton.get("layers", []):
        shapes = tuple(tuple(int(x) for x in s["shape"]) for s in lay.get("state", []))
        out[lay["path"]] = LayerInfo(lay["path"], lay["cls"], bool(lay["leaf"]), shapes)
    return out


def resolve_map(pd: RankRun, pt: RankRun, layer_map: Any) -> RunMap:
    """The pairs to compare (the root pair first when the map has none), checked against both skeletons."""
    p_inf, t_inf = skeleton_infos(pd), skeleton_infos(pt)
    if isinstance(layer_map, str) and layer_map == "auto":
        rm = _auto(pd, pt, p_inf, t_inf)
    elif layer_map is None or (isinstance(layer_map, Mapping) and not layer_map):
        rm = _call_order(pd, pt, p_inf, t_inf)
    else:
        rm = RunMap(*_given(layer_map, p_inf, t_inf), route="layer map")
    _check(rm, p_inf, t_inf)
    if not any(p.paddle_path == "" and p.torch_path == "" for p in rm.pairs):
        rm.pairs.insert(0, LayerPair("", "", pd.skeleton.get("root_class", ""), pt.skeleton.get("root_class", "")))
        rm.root_added = True
    return rm


def _given(layer_map: Any, p_inf: Mapping[str, LayerInfo],
           t_inf: Mapping[str, LayerInfo]) -> tuple[list[LayerPair], list[ParamPair]]:
    if isinstance(layer_map, (str, os.PathLike)):
        layer_map = LayerMap.load(os.fspath(layer_map))
    if isinstance(layer_map, LayerMap):
        if layer_map.map:
            raise MappingError("an offline comparison needs a map of layer paths (a map file or LayerMap.pairs); "
                               "a LayerMap holding live layer objects (.map) cannot be used across processes.")
        return list(layer_map.pairs), list(layer_map.params)
    if isinstance(layer_map, Mapping):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in layer_map.items()):
            raise MappingError("an offline layer_map dict must map paddle layer paths to torch layer paths "
                               "(strings such as {'fc1': 'first'}).")
        return [LayerPair(k, v, p_inf[k].cls if k in p_inf else "", t_inf[v].cls if v in t_inf else "")
                for k, v in layer_map.items()], []
    raise MappingError("layer_map must be 'auto', a map file path, a LayerMap or a {paddle_path: torch_path} "
                       f"dict, got {type(layer_map).__name__}.")


def _check(rm: RunMap, p_inf: Mapping[str, LayerInfo], t_inf: Mapping[str, LayerInfo]) -> None:
    for pr in rm.pairs:
        missing = [p for p in pr.paddle_paths if p not in p_inf] + [t for t in pr.torch_paths if t not in t_inf]
        if missing:
            names = ", ".join(repr(m) for m in missing)
            raise MappingError(f"the layer map pairs {pr.label('paddle')} <-> {pr.label('torch')}, but the recorded "
                               f"runs have no such layer ({names}); check the map against the recorded models.")
    for pp in rm.params:
        for side, inf in (("paddle", p_inf), ("torch", t_inf)):
            owner = pp.owner(side)[0]  # type: ignore[arg-type]
            if owner not in inf:
                raise MappingError(f"the parameter pair {pp.paddle_param!r} <-> {pp.torch_param!r} names a {side} "
                                   f"layer {owner!r} the {side} run does not have; check the map.")


def _auto(pd: RankRun, pt: RankRun, p_inf: Mapping[str, LayerInfo], t_inf: Mapping[str, LayerInfo]) -> RunMap:
    """The aligner's proposal from the graphs both runs stored, else from the module trees (with the reason)."""
    from padiff.graph.from_graphs import match_attributed, proposal_map
    from padiff.graph.tree import match_trees
    from padiff.offline.graph_io import read_graphs
    from padiff.offline.settle_parts import settle_fused

    notes: list[str] = []
    (pg, p_why), (tg, t_why), which = read_graphs(pd.root, pt.root)
    if which:
        notes.append(which)
    result, route, how = None, "structure", "auto (module trees recorded in the runs)"
    if pg is not None and tg is not None:
        try:
            result = match_attributed(pg, tg, p_inf, t_inf)
        except Exception as exc:  # noqa: BLE001 - a matcher bug must not cost the comparison
            notes.append(f"auto map: graph matching failed ({type(exc).__name__}: {exc}); module trees used.")
        else:
            route, how = "graph", "auto (graphs recorded where each run was recorded)"
            notes.append("route: graph (the graphs each run recorded, matched by dataflow).")
            result = settle_fused(result, pd, pt, p_inf, t_inf, notes)
            if any(pr.uncertain for pr in result.pairs):
                notes.append("auto map: some pairs (or the order of fused parts) are ties the live aligner settles "
                             "by running the models; review the proposal, or pass the map suggest_layer_map saved.")
    else:
        why = "; ".join(f"{side}: {w}" for side, w in (("paddle", p_why), ("torch", t_why)) if w)
        notes.append(f"auto map: module trees only, no graph on both sides ({why}).")
    if result is None:
        result = match_trees(p_inf, t_inf)
    lm = proposal_map(result, p_inf, t_inf, route, list(notes))
    pairs, added = with_recorded_specials(list(lm.pairs), pd, pt)
    if added:
        notes.append("special-init pairs added: " + ", ".join(f"{show(p.paddle_path)}<->{show(p.torch_path)}"
                                                             for p in added))
    return RunMap(pairs, list(lm.params), how, notes + [f"unpaired {u.side} {u.path}: {u.reason}"
                                                       for u in lm.unpaired], lm)


def with_recorded_specials(pairs: list[LayerPair], pd: RankRun, pt: RankRun) -> tuple[list[LayerPair], list[LayerPair]]:
    """``pairs`` plus the special-init pairs the live ``"auto"`` adds (:func:`padiff.assign.with_special_pairs`),
    found from the kinds each skeleton recorded: the k-th paddle layer of a kind with the k-th torch layer of it,
    in tree order, passing over layers inside one already paired; a layer the proposal pairs already is not
    paired again, and the proposal's pairs inside a special pair are dropped (the pair is compared as a whole)."""
    covered = {(side, path) for pr in pairs for side in ("paddle", "torch") for path in pr.paths(side)}
    tops = [(side, path) for pr in pairs if pr.opaque for side in ("paddle", "torch") for path in pr.paths(side)]

    def taken(side: str, path: str) -> bool:
        return (side, path) in covered or any(s == side and is_within(path, top) for s, top in tops)

    def kinds(lay: dict[str, Any]) -> list[tuple[str, str]]:
        return [(str(k[0]), str(k[1])) for k in lay.get("special", [])]

    queues: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for lay in pt.skeleton.get("layers", []):
        for key in kinds(lay):
            queues.setdefault(key, []).append(lay)
    found: list[LayerPair] = []
    done_p: list[str] = []
    done_t: list[str] = []
    for lay in pd.skeleton.get("layers", []):
        if any(is_within(lay["path"], top) and lay["path"] != top for top in done_p):
            continue
        for key in kinds(lay):
            queue = queues.get(key, [])
            while queue and any(is_within(queue[0]["path"], top) for top in done_t):
                queue.pop(0)
            if queue:
                tl = queue.pop(0)
                found.append(LayerPair(lay["path"], tl["path"], lay["cls"], tl["cls"], opaque=True,
                                       evidence=(f"special init {key[0]} <-> {key[1]} (the k-th of its kind)",)))
                done_p.append(lay["path"])
                done_t.append(tl["path"])
                break
    found = [p for p in found if not taken("paddle", p.paddle_path) and not taken("torch", p.torch_path)]
    if not found:
        return pairs, []
    kept = [pr for pr in pairs if not any(is_within(pr.paddle_path, f.paddle_path) for f in found)
            and not any(is_within(pr.torch_path, f.torch_path) for f in found)]
    return kept + found, found


def _call_order(pd: RankRun, pt: RankRun, p_inf: Mapping[str, LayerInfo], t_inf: Mapping[str, LayerInfo]) -> RunMap:
    def order(run: RankRun, inf: Mapping[str, LayerInfo]) -> list[str]:
        if not run.steps:
            return [p for p, i in inf.items() if p and (i.shapes or i.leaf)]
        first = run.steps[min(run.steps)]
        return [p for p in first.get("call_order", []) if p and p in inf and (inf[p].shapes or inf[p].leaf)]

    po, to = order(pd, p_inf), order(pt, t_inf)
    notes = []
    if len(po) != len(to):
        notes.append(f"call order pairing: paddle called {len(po)} layers, torch {len(to)}; the first "
                     f"{min(len(po), len(to))} were paired in order. Pass layer_map='auto' or a map file.")
    pairs = [LayerPair(a, b, p_inf[a].cls, t_inf[b].cls, p_inf[a].shapes, t_inf[b].shapes, 0.5, ("call order",))
             for a, b in zip(po, to)]
    return RunMap(pairs, [], "call order", notes)
