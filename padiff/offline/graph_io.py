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
    out = {"version": GRAPH_VERSION, "seconds": round(time.perf_counter() - t0, 3), **graph_to_data(g)}
    # the other run's export may fail: suggest_layer_map then matches two eager graphs, never an export with
    # an eager graph, so the eager graph is kept too (:func:`read_graphs` takes it when the other side has no export)
    eager = _eager_instead(side_name, model, inputs, "", time.perf_counter())
    out["eager"] = {k: v for k, v in eager.items() if k not in ("version", "route", "export_error")}
    return out


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


def read_graphs(pd_root: str, pt_root: str) -> tuple[tuple[nx.DiGraph | None, str], tuple[nx.DiGraph | None, str],
                                                      str]:
    """Both runs' graphs as ``suggest_layer_map`` would match them, and a note when that changed which.

    Live, when either model cannot be exported, both dataflows are recorded from one eager forward
    each: an exported graph is never matched against an eager one (their ops differ: ``Sigmoid`` and
    ``Mul`` in one, ``Silu`` in the other). So when one run holds only an eager graph, the other run's
    eager graph (kept beside its export) is taken.
    """
    datas = [_graph_data(pd_root), _graph_data(pt_root)]
    eager = [isinstance(d, dict) and d.get("route") == "eager" for d in datas]
    note = ""
    if eager[0] != eager[1] and all(isinstance(d, dict) and not d.get("error") for d in datas):
        k = 1 if eager[0] else 0  # the side that exported
        alt = datas[k].get("eager")  # type: ignore[union-attr]
        if isinstance(alt, dict) and not alt.get("error"):
            datas[k] = {"version": GRAPH_VERSION, "route": "eager", **alt}
            note = (f"auto map: the {'torch' if k == 0 else 'paddle'} export failed where it was recorded, so both "
                    "runs' eager dataflow graphs are matched, as suggest_layer_map does.")
        else:
            note = ("auto map: one run's graph is an export and the other's an eager dataflow (its export failed); "
                    "suggest_layer_map would match two eager graphs: record again with this padiff for the same "
                    "proposal.")
    roots = (pd_root, pt_root)
    return _graph_of(datas[0], roots[0]), _graph_of(datas[1], roots[1]), note


def _graph_data(root: str) -> dict[str, Any] | str:
    """One rank folder's graph JSON data, or why there is none."""
    path = os.path.join(root, fmt.GRAPH_FILE)
    if not os.path.isfile(path):
        return f"{path} is missing (recorded with graph=False, or no step was recorded)"
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path} is not valid JSON ({exc}); the run folder is damaged.") from None
    if not isinstance(data, dict) or data.get("version") != GRAPH_VERSION:
        raise RunFolderError(f"{path} is not a graph of version {GRAPH_VERSION}; re-record with this padiff.")
    return data


def _graph_of(data: dict[str, Any] | str, root: str) -> tuple[nx.DiGraph | None, str]:
    if isinstance(data, str):
        return None, data
    if data.get("error"):
        return None, f"the export failed where the run was recorded: {data['error']}"
    try:
        return data_to_graph(data), ""
    except (KeyError, TypeError, ValueError) as exc:
        path = os.path.join(root, fmt.GRAPH_FILE)
        raise RunFolderError(f"{path} does not hold a valid graph ({exc}); the run folder is damaged.") from None


def read_graph(root: str) -> tuple[nx.DiGraph | None, str]:
    """One rank folder's graph, or ``(None, why there is none)``."""
    return _graph_of(_graph_data(root), root)
