"""``compare_runs``: compare a recorded paddle run with a recorded torch run, no framework needed.

The result is the same :class:`~padiff.report.records.DiffReport` ``compare`` returns, built
from the same :func:`~padiff.compare.arrays.compare_arrays` and read by the same renderers
and first-difference rule. Layers are paired by a layer map (a ``LayerMap``, a map file, a
``{paddle_path: torch_path}`` dict), by ``"auto"`` (the module-tree matcher of
:mod:`padiff.graph.tree` over the recorded skeletons), or by default by the order in which
parameter-holding and leaf layers were first called. Ranks are paired by number and every
record carries its rank; steps or ranks present on one side only are reported as warnings.
At level ``stats`` the recorded statistics vectors are compared element by element instead
of the tensors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from padiff.compare.arrays import compare_arrays
from padiff.compare.conventions import BATCHNORM_VARIANCE_NOTE
from padiff.errors import InputError, MappingError, OptionsError
from padiff.graph.match import LayerInfo
from padiff.layer_map import LayerMap, LayerPair
from padiff.offline import fmt
from padiff.offline.capture import UNBIASED_VARIANCE
from padiff.offline.reader import RankRun, read_run
from padiff.offline.shards import ShardGroup, group_ranks
from padiff.options import DiffOptions
from padiff.report.records import Comparison, DiffReport, Stats
from padiff.weights.layout_infer import NAME_ALIASES, Tensor, link_one

_STAGE_OF = {"forward": "forward", "loss": "loss", "backward": "backward", "grad": "grad", "weight": "weight"}


def skeleton_infos(run: RankRun) -> dict[str, LayerInfo]:
    """``{path: LayerInfo}`` from a recorded skeleton (what the tree matcher needs)."""
    out = {}
    for lay in run.skeleton.get("layers", []):
        shapes = tuple(tuple(int(x) for x in s["shape"]) for s in lay.get("state", []))
        out[lay["path"]] = LayerInfo(lay["path"], lay["cls"], bool(lay["leaf"]), shapes)
    return out


def _tree(run: RankRun) -> list[tuple[str, str, int]]:
    return [(lay["path"], lay["cls"], int(lay.get("depth", 0))) for lay in run.skeleton.get("layers", [])]


def resolve_pairs(pd: RankRun, pt: RankRun, layer_map: Any) -> tuple[list[LayerPair], str, list[str]]:
    """The layer pairs to compare, the route that made them, and notes for the report."""
    p_inf, t_inf = skeleton_infos(pd), skeleton_infos(pt)
    notes: list[str] = []
    root = LayerPair("", "", pd.skeleton.get("root_class", ""), pt.skeleton.get("root_class", ""))
    if isinstance(layer_map, str) and layer_map == "auto":
        res, route = _auto_match(pd, pt, p_inf, t_inf, notes)
        pairs = [LayerPair(pr.paddle_path, pr.torch_path, p_inf[pr.paddle_path].cls, t_inf[pr.torch_path].cls,
                           p_inf[pr.paddle_path].shapes, t_inf[pr.torch_path].shapes, float(pr.confidence),
                           tuple(pr.evidence), compare_output=pr.compare_output, opaque=pr.opaque,
                           paddle_parts=pr.paddle_parts, torch_parts=pr.torch_parts) for pr in res.pairs
                 if pr.paddle_path in p_inf and pr.torch_path in t_inf]
        notes += [f"unpaired {u.side} {u.path}: {u.reason}" for u in res.unpaired]
    elif layer_map is None or (isinstance(layer_map, Mapping) and not layer_map):
        pairs, route = _call_order_pairs(pd, pt, p_inf, t_inf, notes), "call order"
    else:
        if isinstance(layer_map, (str, os.PathLike)):
            layer_map = LayerMap.load(os.fspath(layer_map))
        if isinstance(layer_map, LayerMap):
            if layer_map.map:
                raise MappingError("an offline comparison needs a map of layer paths (a map file or LayerMap.pairs); "
                                   "a LayerMap holding live layer objects (.map) cannot be used across processes.")
            pairs, route = list(layer_map.pairs), "layer map"
        elif isinstance(layer_map, Mapping):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in layer_map.items()):
                raise MappingError("an offline layer_map dict must map paddle layer paths to torch layer paths "
                                   "(strings such as {'fc1': 'first'}).")
            pairs = [LayerPair(k, v, p_inf.get(k, LayerInfo(k, "", True)).cls, t_inf.get(v, LayerInfo(v, "", True)).cls)
                     for k, v in layer_map.items()]
            route = "layer map"
        else:
            raise MappingError("layer_map must be 'auto', a map file path, a LayerMap or a {paddle_path: torch_path} "
                               f"dict, got {type(layer_map).__name__}.")
        for pr in pairs:
            if pr.paddle_path not in p_inf or pr.torch_path not in t_inf:
                raise MappingError(f"the layer map pairs {pr.paddle_path!r} <-> {pr.torch_path!r}, but the paddle run "
                                   "or the torch run has no such layer; check the map against the recorded models.")
    if not any(p.paddle_path == "" and p.torch_path == "" for p in pairs):
        pairs.insert(0, root)
    return pairs, route, notes


def _auto_match(pd: RankRun, pt: RankRun, p_inf: Mapping[str, LayerInfo], t_inf: Mapping[str, LayerInfo],
                notes: list[str]) -> tuple[Any, str]:
    """The graph matcher over the graphs both runs exported, else the module-tree matcher (with the reason)."""
    from padiff.graph.tree import match_trees
    from padiff.offline.graph_io import read_graph

    (pg, p_why), (tg, t_why) = read_graph(pd.root), read_graph(pt.root)
    if pg is not None and tg is not None:
        from padiff.graph import canonical, match
        from padiff.graph.suggest import pair_leftovers

        try:
            res = pair_leftovers(match.match_graphs(canonical.canonicalize(pg), canonical.canonicalize(tg),
                                                    p_inf, t_inf), p_inf, t_inf)
        except Exception as exc:  # noqa: BLE001 - a matcher bug must not cost the comparison
            notes.append(f"auto map: graph matching failed ({type(exc).__name__}: {exc}); module trees used.")
        else:
            if res.params:
                notes.append(f"auto map: {len(res.params)} parameter-level pair(s) proposed by the graphs are not "
                             "compared offline; pass a map file with those layers paired.")
            return res, "auto (graphs exported where each run was recorded)"
    else:
        why = "; ".join(f"{side}: {w}" for side, w in (("paddle", p_why), ("torch", t_why)) if w)
        notes.append(f"auto map: module trees only, no graph on both sides ({why}).")
    return match_trees(p_inf, t_inf), "auto (module trees recorded in the runs)"


def _call_order_pairs(pd: RankRun, pt: RankRun, p_inf: Mapping[str, LayerInfo], t_inf: Mapping[str, LayerInfo],
                      notes: list[str]) -> list[LayerPair]:
    def order(run: RankRun, inf: Mapping[str, LayerInfo]) -> list[str]:
        if not run.steps:
            return [p for p, i in inf.items() if p and (i.shapes or i.leaf)]
        first = run.steps[min(run.steps)]
        return [p for p in first.get("call_order", []) if p and p in inf and (inf[p].shapes or inf[p].leaf)]

    po, to = order(pd, p_inf), order(pt, t_inf)
    if len(po) != len(to):
        notes.append(f"call order pairing: paddle called {len(po)} layers, torch {len(to)}; the first "
                     f"{min(len(po), len(to))} were paired in order. Pass layer_map='auto' or a map file.")
    return [LayerPair(a, b, p_inf[a].cls, t_inf[b].cls, p_inf[a].shapes, t_inf[b].shapes, 0.5, ("call order",))
            for a, b in zip(po, to)]


def _param_links(pair: LayerPair, pd: RankRun, pt: RankRun) -> dict[str, tuple[str, Any]]:
    """``{paddle param name: (torch param name, conversion fn or None)}`` for one pair's own state."""
    def state(run: RankRun, path: str) -> tuple[str, list[dict[str, Any]]]:
        for lay in run.skeleton.get("layers", []):
            if lay["path"] == path:
                return lay["cls"], list(lay.get("state", []))
        return "", []

    pc, ps = state(pd, pair.paddle_path)
    tc, ts = state(pt, pair.torch_path)
    out: dict[str, tuple[str, Any]] = {}
    if len(ps) != len(ts):
        return out
    t_by = {t["name"]: t for t in ts}
    pairs = ([(p, t_by[NAME_ALIASES.get(p["name"], p["name"])]) for p in ps]
             if all(NAME_ALIASES.get(p["name"], p["name"]) in t_by for p in ps) else list(zip(ps, ts)))
    for p, t in pairs:
        link = link_one(Tensor(p["name"], tuple(p["shape"]), pc), Tensor(t["name"], tuple(t["shape"]), tc))
        # a recorded item names a buffer "buffer:<name>"; paddle keeps BatchNorm statistics as
        # non-trainable parameters where torch has buffers, so each side's own kind is used
        out[_item(p)] = (_item(t), None if link is None else link.fn)
    return out


def _item(state: Mapping[str, Any]) -> str:
    """The item under which the recorder stored one state entry's value."""
    return ("buffer:" if state.get("buffer") and not state.get("trainable") else "") + str(state["name"])


def compare_runs(paddle_run: str | os.PathLike[str], torch_run: str | os.PathLike[str], layer_map: Any = None,
                 options: Mapping[str, Any] | None = None, *, conventions: bool = True) -> DiffReport:
    """Compare two recorded runs (paddle first) and return the ``DiffReport`` (truthy when they agree).

    ``layer_map``: ``None`` (call order), ``"auto"``, a map file, a ``LayerMap`` or a path dict.
    ``options``: the ``compare`` options (``atol``, ``rtol``, ``compare_mode``, ``mismatch_ratio``,
    ``diff_phase``). ``conventions``: reconcile known framework conventions as ``compare`` does
    (:mod:`padiff.compare.conventions`: paddle's BatchNorm running variance is compared as torch's
    unbiased update gives it, and the record says so); ``False`` compares the raw values.
    """
    opts = DiffOptions.from_mapping(options)
    if opts.compare_mode == "calibrated":
        raise OptionsError("compare_runs cannot use compare_mode='calibrated' yet: recorded runs hold no float64 "
                           "reference. Use compare_mode='mean', or compare the models live with padiff.compare.")
    pd_ranks, pt_ranks = read_run(paddle_run), read_run(torch_run)
    pd_ranks, pd_notes = group_ranks(pd_ranks, pt_ranks)
    pt_ranks, pt_notes = group_ranks(pt_ranks, pd_ranks)
    for ranks, want, arg in ((pd_ranks, "paddle", "paddle_run"), (pt_ranks, "torch", "torch_run")):
        got = {r.framework for r in ranks.values()}
        if got != {want}:
            where = os.fspath(paddle_run if want == "paddle" else torch_run)
            raise InputError(f"{arg} must be a {want} recording, but {where} "
                             f"holds {sorted(got)}; pass the paddle run first and the torch run second.")
    rep = DiffReport(options=opts.to_dict())
    rep.warnings += [f"paddle run: {n}" for n in pd_notes] + [f"torch run: {n}" for n in pt_notes]
    for side, ranks in (("paddle", pd_ranks), ("torch", pt_ranks)):
        for r in ranks.values():
            rep.warnings += [f"{side} rank {r.meta.get('rank')}: {w}" for w in r.warnings]
    for r in sorted(set(pd_ranks) ^ set(pt_ranks)):
        side = "paddle" if r in pd_ranks else "torch"
        rep.warnings.append(f"rank {r} was recorded by the {side} run only; it is not compared.")
    common = sorted(set(pd_ranks) & set(pt_ranks))
    if not common:
        raise InputError("the two runs share no rank: nothing to compare.")
    first_pd, first_pt = pd_ranks[common[0]], pt_ranks[common[0]]
    pairs, route, notes = resolve_pairs(first_pd, first_pt, layer_map)
    rep.mapping_route, rep.mapping = route, [p.to_dict() for p in pairs]
    rep.warnings += notes
    rep.paddle_tree, rep.torch_tree = _tree(first_pd), _tree(first_pt)
    rep.paddle_root_class = str(first_pd.skeleton.get("root_class", ""))
    rep.torch_root_class = str(first_pt.skeleton.get("root_class", ""))
    steps_seen: set[int] = set()
    stages: set[str] = set()
    for r in common:
        pd, pt = pd_ranks[r], pt_ranks[r]
        if pd.meta.get("level") != pt.meta.get("level"):
            rep.warnings.append(f"rank {r}: levels differ (paddle {pd.meta.get('level')}, torch "
                                f"{pt.meta.get('level')}); statistics are compared.")
        for s in sorted(set(pd.steps) ^ set(pt.steps)):
            side = "paddle" if s in pd.steps else "torch"
            rep.warnings.append(f"rank {r}: step {s} was recorded by the {side} run only; it is not compared.")
        for s in sorted(set(pd.steps) & set(pt.steps)):
            steps_seen.add(s)
            stages |= _compare_step(rep, r, s, pd, pt, pairs, opts, multi=len(common) > 1 or r != 0,
                                    conventions=conventions)
    rep.steps = len(steps_seen)
    rep.stages = [s for s in fmt.STAGES if s in stages]
    return rep


def _compare_step(rep: DiffReport, rank: int, step: int, pd: RankRun, pt: RankRun, pairs: list[LayerPair],
                  opts: DiffOptions, multi: bool, conventions: bool = True) -> set[str]:
    pl, tl = pd.steps[step], pt.steps[step]
    dp, dt = pl.get("digests", []), tl.get("digests", [])
    if dp != dt:
        rep.warnings.append(f"rank {rank}, step {step}: the two runs were fed different inputs (root input digests "
                            f"{dp} vs {dt}); differences may come from the data, not the models.")
    use_stats = pd.meta.get("level") == "stats" or pt.meta.get("level") == "stats"
    p_ten = {} if use_stats else pd.tensors(step)
    t_ten = {} if use_stats else pt.tensors(step)
    t_entries = {e["key"]: e for e in tl["entries"]}
    by_p = {p.paddle_path: p for p in pairs}
    order_p = {p: i for i, p in enumerate(pl.get("call_order", []))}
    links: dict[str, dict[str, tuple[str, Any]]] = {}
    stages: set[str] = set()
    n_calls = max(len(order_p), 1)
    t_flags = {lay["path"]: set(lay.get("conventions", [])) for lay in pt.skeleton.get("layers", [])}
    one_sided: list[str] = []
    matched_t: set[str] = set()
    for e in pl["entries"]:
        stage = e["stage"]
        if (stage in ("forward", "loss") and not opts.checks_forward) or (
                stage in ("backward", "grad") and not opts.checks_backward):
            continue
        if stage == "loss":
            pair, t_item, fn = LayerPair("", "", "loss", "loss"), e["item"], None
        else:
            pair = by_p.get(e["path"])
            if pair is None or (not pair.compare_output and stage in ("forward", "backward")):
                continue
            t_item, fn = e["item"], None
            if stage in ("grad", "weight"):
                lk = links.setdefault(pair.paddle_path, _param_links(pair, pd, pt))
                if e["item"] not in lk:
                    continue
                t_item, fn = lk[e["item"]]
        tkey = f"{stage}|{pair.torch_path if stage != 'loss' else ''}|{e['call']}|{t_item}|{e['micro']}"
        te = t_entries.get(tkey)
        if te is None:
            one_sided.append(f"{stage} {e['path'] or '<root>'} [{e['item']}]")
            continue
        matched_t.add(tkey)
        shard_note = ""
        fixed = e.get("torch_convention") if conventions and stage == "weight" else None
        if fixed and UNBIASED_VARIANCE in t_flags.get(pair.torch_path, ()):
            stats = replace(_compare_entry({**e, **fixed}, te, p_ten, t_ten, fn, opts, use_stats),
                            reconciled=BATCHNORM_VARIANCE_NOTE)
        elif isinstance(pd, ShardGroup) or isinstance(pt, ShardGroup):
            stats, shard_note = _compare_shards(step, e, te, pd, pt, p_ten, t_ten, fn, opts, use_stats)
        else:
            stats = _compare_entry(e, te, p_ten, t_ten, fn, opts, use_stats)
        pos = order_p.get(e["path"], n_calls)
        order = e["micro"] * 10 * n_calls + (n_calls - pos if stage == "backward" else pos) * 4 + e["call"]
        item = e["item"] + (f", micro-step {e['micro']}" if pl.get("micro_steps", 1) > 1 and stage != "grad"
                            and stage != "weight" else "")
        if shard_note:
            item = f"{item} ({shard_note})"
        if multi:
            item = f"rank {rank}: {item}"
        rep.records.append(Comparison(_STAGE_OF[stage], step, pair.paddle_path, pair.torch_path,
                                      e.get("cls", pair.paddle_class), te.get("cls", pair.torch_class), stats,
                                      call=e["call"], item=item, order=order,
                                      depth=0 if not pair.paddle_path else pair.paddle_path.count(".") + 1,
                                      dtype=e.get("dtype", "")))
        stages.add(stage)
    paired_t = {p.torch_path for p in pairs}
    t_only = [f"{e['stage']} {e['path'] or '<root>'} [{e['item']}]" for e in tl["entries"]
              if e["key"] not in matched_t and e["path"] in paired_t and e["stage"] != "loss"]
    for side, items in (("paddle", one_sided), ("torch", t_only)):
        if items:
            rep.warnings.append(f"rank {rank}, step {step}: {len(items)} tensor(s) of paired layers were recorded by "
                                f"the {side} run only and not compared (a frozen parameter, an output no gradient "
                                f"reached, or a different call count): {', '.join(sorted(set(items))[:6])}"
                                + (" ..." if len(set(items)) > 6 else ""))
    return stages


def _compare_shards(step: int, e: dict[str, Any], te: dict[str, Any], pd: Any, pt: Any,
                    p_ten: Mapping[str, np.ndarray], t_ten: Mapping[str, np.ndarray], fn: Any, opts: DiffOptions,
                    use_stats: bool) -> tuple[Stats, str]:
    """Compare one entry after merging the tensor-parallel side's shards; say which shard differs."""
    merged = {}
    for name, run, mine, other, ten in (("paddle", pd, e, te, p_ten), ("torch", pt, te, e, t_ten)):
        if isinstance(run, ShardGroup):
            m = run.merged(step, mine, other["shape"], use_stats)
            merged[name] = (m, run.ranks)
            ten = {m.entry["key"]: m.array} if m.array is not None else {}
            if name == "paddle":
                e, p_ten = m.entry, ten
            else:
                te, t_ten = m.entry, ten
    stats = _compare_entry(e, te, p_ten, t_ten, fn, opts, use_stats)
    notes = []
    for name, (m, ranks) in merged.items():
        if not m.how:
            continue
        text = f"{name} ranks {ranks[0]}-{ranks[-1]} merged, {m.how}"
        if not stats.passed and m.dim >= 0 and m.array is not None:
            bad = _differing_shards(m, name, e["key"], te["key"], p_ten, t_ten, fn, opts, ranks)
            if bad:
                text += f"; differs in the shard of rank {', '.join(str(r) for r in bad)}"
        notes.append(text)
    return stats, "; ".join(notes)


def _differing_shards(m: Any, side: str, p_key: str, t_key: str, p_ten: Mapping[str, np.ndarray],
                      t_ten: Mapping[str, np.ndarray], fn: Any, opts: DiffOptions, ranks: list[int]) -> list[int]:
    """Ranks whose slice of a merged tensor disagrees with the same slice of the other run's tensor."""
    if p_key not in p_ten or t_key not in t_ten:
        return []
    a, b = p_ten[p_key], t_ten[t_key]
    b = fn([b]) if fn is not None else b
    dim = m.dim
    if side == "torch" and fn is not None and b.ndim == 2 and a.shape != t_ten[t_key].shape:
        dim = 1 - dim  # the torch layout was transposed into paddle's
    if a.shape != b.shape or dim >= a.ndim:
        return []
    bad, start = [], 0
    for r, size in zip(ranks, m.sizes):
        sl = tuple(slice(start, start + size) if d == dim else slice(None) for d in range(a.ndim))
        if not compare_arrays(a[sl], b[sl], opts.atol, opts.rtol, opts.compare_mode, opts.mismatch_ratio).passed:
            bad.append(r)
        start += size
    return bad


def _compare_entry(pe: dict[str, Any], te: dict[str, Any], p_ten: Mapping[str, np.ndarray],
                   t_ten: Mapping[str, np.ndarray], fn: Any, opts: DiffOptions, use_stats: bool) -> Stats:
    if use_stats or pe["key"] not in p_ten or te["key"] not in t_ten:
        a = np.asarray(pe["stats"], dtype=np.float64)
        b = np.asarray(te["stats"], dtype=np.float64)
        if int(np.prod(pe["shape"])) != int(np.prod(te["shape"])):
            return compare_arrays(np.zeros(pe["shape"]), np.zeros(te["shape"]), opts.atol, opts.rtol, "strict")
        # min/max are not layout-free only for order; moments are: compare all of them element by element
        return compare_arrays(a, b, opts.atol, opts.rtol, "strict")
    a, b = p_ten[pe["key"]], t_ten[te["key"]]
    if fn is not None:
        b = fn([b])
    return compare_arrays(a, b, opts.atol, opts.rtol, opts.compare_mode, opts.mismatch_ratio,
                          gradient=pe["stage"] in ("backward", "grad"))
