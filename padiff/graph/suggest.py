"""``suggest_layer_map``: propose a ``LayerMap`` for a paddle model and its torch port.

With an example input, the graph route: export both models to ONNX (torch first; paddle's
converter in a child process), build attributed op graphs,
canonicalise, match (:mod:`padiff.graph.match`), then settle remaining ties by
comparing layer outputs (:mod:`padiff.graph.confirm`). Without one, or when an export
fails, the structure-only route over the module trees (:mod:`padiff.graph.tree`).
Never raises for an export failure and never leaves the models changed; the notes of
the returned map say which route was taken and why.
"""

from __future__ import annotations

import time
from typing import Any

from padiff.adapters import PADDLE, TORCH
from padiff.adapters.attrs import attributes_kept
from padiff.checks import check_example_inp, check_models
from padiff.errors import ExportError
from padiff.graph.confirm import confirm_ties
from padiff.graph.from_graphs import baseline_pairs, match_attributed, pair_leftovers, proposal_map
from padiff.graph.match import LayerInfo, MatchResult, ProposedPair
from padiff.graph.special_units import pair_special_units
from padiff.graph.tree import match_trees
from padiff.layer_map import LayerMap
from padiff.weights.special_init import is_unit, lookup


def layer_infos(side: Any, root: Any) -> dict[str, LayerInfo]:
    """``{path: LayerInfo}`` in definition order, with each layer's own tensor shapes."""
    owned = side.owned_state(root)
    out: dict[str, LayerInfo] = {}
    for path, obj in side.named_layers(root):
        if path in out:
            continue
        shapes = tuple(side.shape(e.tensor) for e in owned.get(path, []))
        out[path] = LayerInfo(path, type(obj).__name__, not side.children(obj), shapes)
    return out


def _graph_route(layer: Any, module: Any, p_in: dict[str, Any], t_in: dict[str, Any],
                 p_layers: dict[str, LayerInfo], t_layers: dict[str, LayerInfo],
                 timeout: float, timings: dict[str, float], notes: list[str]) -> MatchResult:
    from padiff.graph import build
    from padiff.graph.export_paddle import start_export
    from padiff.graph.export_torch import export_torch

    start = time.perf_counter()
    try:
        # torch first: when it cannot export, paddle's trace (the costlier one: seconds of CPU at real
        # sizes) is never made; the two graphs are recorded eagerly instead
        tx = export_torch(module, t_in)
        pending = start_export(layer, p_in)
        px = pending.result(timeout - (time.perf_counter() - start))
    except ExportError as exc:
        # another view of the dataflow: the ops one eager forward of each model runs
        t0 = time.perf_counter()
        try:
            pg, tg = _eager_graphs(layer, module, p_in, t_in)
        except ExportError as again:
            raise ExportError(f"{exc}\nand recording an eager forward instead failed too: {again}") from again
        timings["eager_record"] = time.perf_counter() - t0
        notes.append(f"export failed, so the dataflow was recorded from one eager forward of each model instead: "
                     f"{exc}")
    else:
        timings.update(px.seconds)
        timings.update(tx.seconds)
        timings["export"] = time.perf_counter() - start
        t0 = time.perf_counter()
        pg = build.build_graph(build.load(px.model), px.owner, build.paddle_scope(px.stamps), px.shapes)
        tg = build.build_graph(build.load(tx.model), tx.owner, tx.scope(), tx.shapes)
        if tx.note:
            notes.append(tx.note)
        timings["build"] = time.perf_counter() - t0
    return match_attributed(pg, tg, p_layers, t_layers, timings)


def _eager_graphs(layer: Any, module: Any, p_in: dict[str, Any], t_in: dict[str, Any]) -> tuple[Any, Any]:
    """Both models' attributed op graphs from one recorded eager forward each (:mod:`padiff.graph.eager`)."""
    from padiff.adapters import PADDLE, TORCH
    from padiff.graph.eager import build_eager_graph
    from padiff.graph.eager_record import record_dataflow

    graphs = []
    for side, root, inp in ((PADDLE, layer, p_in), (TORCH, module, t_in)):
        try:
            ops, inputs, params, returns = record_dataflow(side, root, inp)
        except Exception as exc:
            raise ExportError(f"the {side.name} model raised in the eager forward recorded instead of an export: "
                              f"{type(exc).__name__}: {exc}") from exc
        graphs.append(build_eager_graph(ops, inputs, params, returns))
    return graphs[0], graphs[1]


def _special_units(result: MatchResult, layer: Any, module: Any) -> MatchResult:
    """Pair the special-init units (MHA, LSTM ...) as wholes, by the pairs inside them (see special_units)."""
    p_objs, t_objs = dict(PADDLE.named_layers(layer)), dict(TORCH.named_layers(module))

    def compatible(p: str, t: str) -> bool:
        spec = lookup(p_objs[p], t_objs[t])
        return spec is not None and spec.auto

    return pair_special_units(result, [p for p, o in p_objs.items() if is_unit(o, 0)],
                              [t for t, o in t_objs.items() if is_unit(o, 1)], compatible)


def suggest_layer_map(layer: Any, module: Any, example_inp: Any = None, *, timeout: float = 120.0) -> LayerMap:
    """Propose which paddle sublayer corresponds to which torch submodule.

    ``example_inp`` = ``(paddle_kwargs, torch_kwargs)`` selects the graph route; without
    it (or when an export fails) the module trees are matched instead. The result's
    ``route`` is ``"graph"`` or ``"structure"``, ``notes`` say why, ``pairs`` carry
    confidence and evidence, ``unpaired`` the layers left out with reasons and
    ``baseline`` the plain definition-order pairing for review.
    """
    check_models(layer, module, call="suggest_layer_map")
    # a proposal never changes a model: what any forward it runs caches in attributes is put back
    with attributes_kept(PADDLE, layer), attributes_kept(TORCH, module):
        return _suggest(layer, module, example_inp, timeout)


def _suggest(layer: Any, module: Any, example_inp: Any, timeout: float) -> LayerMap:
    p_layers, t_layers = layer_infos(PADDLE, layer), layer_infos(TORCH, module)
    notes: list[str] = []
    timings: dict[str, float] = {}
    result: MatchResult | None = None
    route = "structure"
    if example_inp is None:
        notes.append("route: structure only (module trees: classes, parameter shapes, order) "
                     "because no example input was given; pass example_inp for the graph route.")
    else:
        p_in, t_in = check_example_inp(example_inp, layer, module)
        try:
            route_notes: list[str] = []
            result = _graph_route(layer, module, p_in, t_in, p_layers, t_layers, timeout, timings, route_notes)
            route = "graph"
            how = "recorded eager forwards" if "eager_record" in timings else "both models exported to ONNX"
            notes.append(f"route: graph ({how}, matched by dataflow).")
            notes.extend(route_notes)
        except ExportError as exc:
            notes.append(f"route: structure only, because export failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - a matcher bug must not cost the user the proposal
            notes.append(f"route: structure only, because graph matching failed: {type(exc).__name__}: {exc}")
    graph_result = result is not None
    result = _special_units(result if result is not None else match_trees(p_layers, t_layers), layer, module)
    if graph_result and any(pr.uncertain for pr in result.pairs):
        t0 = time.perf_counter()
        result, confirm_notes = confirm_ties(layer, module, example_inp, result, p_layers, t_layers)
        notes.extend(confirm_notes)
        timings["confirm"] = time.perf_counter() - t0
    lm = proposal_map(result, p_layers, t_layers, route, notes)
    if timings:
        lm.notes.append("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    return lm


__all__ = ["ProposedPair", "baseline_pairs", "pair_leftovers", "suggest_layer_map"]
