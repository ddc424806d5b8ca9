"""The exported graph in a run's skeleton: made where the model runs, matched where the runs meet.

The recording side exports its own model (paddle: ``jit.save`` + paddle2onnx in a child
process; torch: the TorchScript ONNX exporter; see :mod:`padiff.graph`) on the inputs of the
first recorded call, builds the attributed op graph (:func:`padiff.graph.build.build_graph`)
and stores it as plain JSON (``graph.json``). ``compare_runs(layer_map="auto")`` loads both
graphs and runs the same canonicaliser and matcher as ``suggest_layer_map``, so layers are
paired by dataflow, not only by the module trees. An export that fails stores the reason
instead, and the comparison falls back to the trees and says why.

Only :func:`export_graph` touches a framework (the one of the model it is given).
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import networkx as nx

from padiff.errors import RunFolderError
from padiff.offline import fmt

GRAPH_VERSION = 1


def call_kwargs(model: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The root call's arguments by ``forward``'s parameter names (what the exporters take)."""
    bound = inspect.signature(model.forward).bind_partial(*args, **kwargs)
    return dict(bound.arguments)


def export_graph(side_name: str, model: Any, inputs: Mapping[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """Export ``model`` called as ``model(**inputs)`` and return its attributed graph as JSON data.

    Never raises for an export failure: the result then holds ``"error"`` with the reason.
    """
    from padiff.errors import ExportError
    from padiff.graph import build

    t0 = time.perf_counter()
    try:
        if side_name == "paddle":
            from padiff.graph.export_paddle import export_paddle

            px = export_paddle(model, inputs, timeout=timeout)
            g = build.build_graph(build.load(px.model), px.owner, build.paddle_scope(px.stamps), px.shapes)
        else:
            from padiff.graph.export_torch import export_torch

            tx = export_torch(model, inputs)
            g = build.build_graph(build.load(tx.model), tx.owner, build.torch_scope(tx.module_paths), tx.shapes)
    except Exception as exc:  # noqa: BLE001 - a graph is optional: the run must go on without it
        why = str(exc) if isinstance(exc, ExportError) else f"{type(exc).__name__}: {exc}"
        return _eager_instead(side_name, model, inputs, why, t0)
    return {"version": GRAPH_VERSION, "seconds": round(time.perf_counter() - t0, 3), **graph_to_data(g)}


def _eager_instead(side_name: str, model: Any, inputs: Mapping[str, Any], export_error: str,
                   t0: float) -> dict[str, Any]:
    """The graph of one recorded eager forward (as ``suggest_layer_map`` falls back to), or the reasons there is none.

    The module trees alone cannot see fused pairs or raw parameters; the dataflow of the ops
    one eager forward runs can (:mod:`padiff.graph.eager_record`), so ``"auto"`` offline keeps
    the proposal the live aligner would make when an exporter fails.
    """
    from padiff.adapters import PADDLE, TORCH
    from padiff.graph.eager import build_eager_graph
    from padiff.graph.eager_record import record_dataflow

    side = PADDLE if side_name == "paddle" else TORCH
    try:
        ops, ins, params, returns = record_dataflow(side, model, dict(inputs))
        g = build_eager_graph(ops, ins, params, returns)
    except Exception as exc:  # noqa: BLE001 - a graph is optional: the run must go on without it
        return {"version": GRAPH_VERSION, "seconds": time.perf_counter() - t0,
                "error": f"{export_error}; and recording an eager forward instead failed too: "
                         f"{type(exc).__name__}: {exc}"}
    return {"version": GRAPH_VERSION, "seconds": round(time.perf_counter() - t0, 3), "route": "eager",
            "export_error": export_error, **graph_to_data(g)}


def graph_to_data(g: nx.DiGraph) -> dict[str, Any]:
    """JSON data of an attributed op graph (tuples become lists; :func:`data_to_graph` undoes it)."""
    return {
        "nodes": [[n, _plain(a)] for n, a in g.nodes(data=True)],
        "edges": [[u, v, _plain(a)] for u, v, a in g.edges(data=True)],
        "control_layers": sorted(g.graph.get("control_layers", ())),
        "owner": {k: list(v) for k, v in g.graph.get("owner", {}).items()},
        "returns": {k: list(v) for k, v in (g.graph.get("returns") or {}).items()},
    }


def data_to_graph(data: Mapping[str, Any]) -> nx.DiGraph:
    """The graph :func:`graph_to_data` stored, with the attribute types the matcher expects."""
    g = nx.DiGraph()
    for n, a in data["nodes"]:
        a = dict(a)
        a["params"] = tuple((str(p), tuple(int(x) for x in s)) for p, s in a.get("params", ()))
        if "out" in a:
            a["out"] = tuple(a["out"])
        g.add_node(int(n), **a)
    for u, v, a in data["edges"]:
        g.add_edge(int(u), int(v), **a)
    g.graph["control_layers"] = frozenset(data.get("control_layers", ()))
    g.graph["used_params"] = frozenset(p for n in g.nodes for p, _ in g.nodes[n]["params"])
    g.graph["owner"] = {k: tuple(v) for k, v in data.get("owner", {}).items()}
    if data.get("returns"):
        g.graph["returns"] = {k: tuple(v) for k, v in data["returns"].items()}
    return g


def _plain(obj: Any) -> Any:
    if isinstance(obj, (tuple, list, frozenset, set)):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    return obj


def read_graph(root: str) -> tuple[nx.DiGraph | None, str]:
    """One rank folder's graph, or ``(None, why there is none)``."""
    path = os.path.join(root, fmt.GRAPH_FILE)
    if not os.path.isfile(path):
        return None, f"{path} is missing (recorded with graph=False, or no step was recorded)"
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path} is not valid JSON ({exc}); the run folder is damaged.") from None
    if not isinstance(data, dict) or data.get("version") != GRAPH_VERSION:
        raise RunFolderError(f"{path} is not a graph of version {GRAPH_VERSION}; re-record with this padiff.")
    if data.get("error"):
        return None, f"the export failed where the run was recorded: {data['error']}"
    try:
        return data_to_graph(data), ""
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFolderError(f"{path} does not hold a valid graph ({exc}); the run folder is damaged.") from None
