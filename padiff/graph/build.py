"""ONNX model → ``networkx.DiGraph`` of ops, each attributed to a layer path and call.

Node attributes: ``op`` (ONNX op type), ``index`` (position in the ONNX node list, a
topological order), ``params`` (tuple of ``(param name, shape)`` the op reads, found by
following parameters through Identity/Reshape/Transpose/... chains), ``layer`` (path
string, ``""`` = root), ``call`` (index of the layer call, or -1 when unknown) and
``weight_t`` (``{param: bool}`` for a weight read as the second operand of ``MatMul``/``Gemm``:
True when the op reads it transposed, i.e. it is stored ``[out, in]``; absent when unknown).
Edge attribute ``slot``: the consumer's input position (0 for commutative ops), so two
branches feeding ``a - b`` or ``concat([a, b])`` stay distinguishable.

Attribution order (GRAPH_NOTES): parameter owner, then scope information (torch node
names / paddle path stamps), then the consumer's layer, then the producer's.
Metadata-only reads (``Shape``, shape operands of ``Reshape``/``Expand``/``Slice``...)
make no edges, and ops not reachable from a graph input are dropped.
Imports onnx and networkx only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import networkx as nx
import onnx

COMMUTATIVE = frozenset({"Add", "Mul", "Sum", "Max", "Min", "Mean", "And", "Or", "Equal"})
# op type -> input slots that carry data (others are shapes, axes, indices of metadata)
DATA_SLOTS: dict[str, tuple[int, ...]] = {
    "Reshape": (0,), "Expand": (0,), "Slice": (0,), "Tile": (0,), "Squeeze": (0,), "Unsqueeze": (0,),
    "ReduceMean": (0,), "ReduceSum": (0,), "ReduceMax": (0,), "ReduceMin": (0,), "Pad": (0,),
    "Resize": (0,), "Split": (0,), "TopK": (0,), "CastLike": (0,), "Clip": (0,), "Dropout": (0,),
    "Shape": (), "Size": (), "ConstantOfShape": (), "Range": (), "EyeLike": (),
}

ScopeFn = Callable[[onnx.NodeProto], "tuple[str, int] | None"]


def load(model: bytes) -> onnx.ModelProto:
    """Parse ONNX bytes (no checker: paddle2onnx output without initializers is valid)."""
    return onnx.load_from_string(model)


def _plumbing_flip(node: onnx.NodeProto, before: bool | None) -> bool | None:
    """Whether a parameter read through ``node`` (one data input) is transposed, or None when unknown."""
    if before is None:
        return None
    if node.op_type in ("Identity", "Cast"):
        return before
    if node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        if perm is None or perm == [1, 0]:
            return not before
    return None


def _weight_layout(node: onnx.NodeProto, param_of: Mapping[str, frozenset[str]],
                   flipped: Mapping[str, bool]) -> dict[str, bool]:
    """``{param: read transposed}`` for the single parameter a MatMul/Gemm takes as its second operand."""
    if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
        return {}
    src = param_of.get(node.input[1], frozenset())
    flip = flipped.get(node.input[1])
    if len(src) != 1 or flip is None:
        return {}
    if node.op_type == "Gemm" and next((a.i for a in node.attribute if a.name == "transB"), 0):
        flip = not flip
    return {next(iter(src)): flip}


def build_graph(model: onnx.ModelProto, owner: Mapping[str, tuple[str, str]], scope: ScopeFn,  # noqa: C901  # one pass over the ONNX nodes, one branch per op kind it attributes
                param_shapes: Mapping[str, tuple[int, ...]] | None = None) -> nx.DiGraph:
    """The attributed op graph of ``model`` (see module docstring).

    ``owner`` maps parameter tensor names to ``(layer path, attribute)``. The models are
    exported without weight values (faster, ~100x smaller for resnet50), so parameters
    may be absent, graph inputs or Constants; ``param_shapes`` (from the live model)
    supplies their shapes.
    """
    graph = model.graph
    shapes: dict[str, tuple[int, ...]] = {i.name: tuple(int(d) for d in i.dims) for i in graph.initializer}
    shapes.update(param_shapes or {})
    static: set[str] = set(shapes) | set(owner)  # tensors not depending on any graph input
    param_of: dict[str, frozenset[str]] = {n: frozenset({n}) for n in owner}
    flipped: dict[str, bool] = {n: False for n in owner}  # a single parameter read through Transpose/Identity
    producer: dict[str, int] = {}
    g = nx.DiGraph()
    control_params: set[str] = set()
    for idx, node in enumerate(graph.node):
        if node.op_type == "Constant":
            for out in node.output:
                static.add(out)
                if out in owner:
                    param_of[out] = frozenset({out})
                    shapes.setdefault(out, _constant_shape(node))
            continue
        data_inputs = [n for n in node.input if n]
        if data_inputs and all(n in static for n in data_inputs) and node.op_type not in ("If", "Loop", "Scan"):
            # parameter plumbing (Reshape(bias), Transpose(weight), Identity aliases): no op
            src = frozenset().union(*(param_of.get(n, frozenset()) for n in data_inputs))
            flip = _plumbing_flip(node, flipped.get(data_inputs[0])) if len(data_inputs) == 1 else None
            for out in node.output:
                if flip is not None and out not in owner:
                    flipped[out] = flip
                static.add(out)
                if out in owner:
                    src = frozenset({out})
                    shapes.setdefault(out, shapes.get(data_inputs[0], ()))
                if src:
                    param_of[out] = src
            continue
        if node.op_type in ("If", "Loop", "Scan"):
            control_params.update(p for p in _subgraph_inputs(node) if p in owner)
        params = sorted({p for n in data_inputs for p in param_of.get(n, frozenset())})
        g.add_node(idx, op=node.op_type, index=idx, params=tuple((p, shapes.get(p, ())) for p in params),
                   layer=None, call=-1, name=node.name, out=tuple(node.output),
                   data_in=sum(1 for n in data_inputs if n not in static),
                   weight_t=_weight_layout(node, param_of, flipped))
        slots = DATA_SLOTS.get(node.op_type)
        inputs_here = list(node.input)
        if node.op_type in ("If", "Loop", "Scan"):  # outer-scope tensors read by the subgraphs
            inputs_here += sorted(t for t in _subgraph_inputs(node) if t in producer and t not in inputs_here)
            slots = None
        for slot, tensor in enumerate(inputs_here):
            if not tensor or tensor not in producer or (slots is not None and slot not in slots):
                continue
            u = producer[tensor]
            s = 0 if node.op_type in COMMUTATIVE else slot
            if g.has_edge(u, idx):
                g.edges[u, idx]["slot"] = min(g.edges[u, idx]["slot"], s)
            else:
                g.add_edge(u, idx, slot=s)
        for out in node.output:
            producer[out] = idx
    inputs = {i.name for i in graph.input} - static
    live: set[int] = set()
    starts = [n for n in g.nodes if any(t in inputs for t in _node_inputs(graph.node[n]))]
    for s in starts:
        live.add(s)
        live.update(nx.descendants(g, s))
    g.remove_nodes_from([n for n in list(g.nodes) if n not in live])
    _attribute(g, graph, owner, scope)
    g.graph["control_layers"] = frozenset(owner[p][0] for p in control_params)
    g.graph["used_params"] = frozenset(p for n in g.nodes for p, _ in g.nodes[n]["params"])
    g.graph["owner"] = dict(owner)  # parameter tensor name -> (layer path, attribute): parameter-level pairs
    return g


def _node_inputs(node: onnx.NodeProto) -> list[str]:
    return [n for n in node.input if n]


def _constant_shape(node: onnx.NodeProto) -> tuple[int, ...]:
    for attr in node.attribute:
        if attr.name == "value":
            return tuple(int(d) for d in attr.t.dims)
        if attr.name in ("value_floats", "value_ints"):
            return (len(attr.floats) or len(attr.ints),)
    return ()


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    names: set[str] = set()
    for attr in node.attribute:
        subs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for sub in subs:
            for n in sub.node:
                names.update(n.input)
                if n.op_type in ("If", "Loop", "Scan"):
                    names.update(_subgraph_inputs(n))
    return names


def _attribute(g: nx.DiGraph, graph: onnx.GraphProto, owner: Mapping[str, tuple[str, str]], scope: ScopeFn) -> None:
    order = sorted(g.nodes)
    for n in order:
        data = g.nodes[n]
        sc = scope(graph.node[n])
        if data["params"]:
            # the largest parameter decides (a weight over a bias)
            name = max(data["params"], key=lambda p: (_numel(p[1]), p[0]))[0]
            data["layer"] = owner[name][0]
            data["call"] = sc[1] if sc is not None and sc[0] == data["layer"] else -1
        elif sc is not None:
            data["layer"], data["call"] = sc
    for _ in range(3):  # a bias Add named by no scope joins the call of its layer's neighbour op
        for n in order:
            data = g.nodes[n]
            if data["layer"] is not None and data["call"] < 0:
                for m in list(g.predecessors(n)) + list(g.successors(n)):
                    other = g.nodes[m]
                    if other["layer"] == data["layer"] and other["call"] >= 0:
                        data["call"] = other["call"]
                        break
    for n in reversed(order):  # inherit from consumers (decomposition tails → their head op)
        data = g.nodes[n]
        if data["layer"] is None:
            succ = {(g.nodes[s]["layer"], g.nodes[s]["call"]) for s in g.successors(n)
                    if g.nodes[s]["layer"] is not None}
            if len(succ) == 1:
                data["layer"], data["call"] = next(iter(succ))
    for n in order:  # then from producers
        data = g.nodes[n]
        if data["layer"] is None:
            pred = {(g.nodes[p]["layer"], g.nodes[p]["call"]) for p in g.predecessors(n)
                    if g.nodes[p]["layer"] is not None}
            data["layer"], data["call"] = next(iter(pred)) if len(pred) == 1 else ("", 0)


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= max(int(d), 1)
    return out


_P2O = re.compile(r"^p2o\.pd_op\.(.+)\.(\d+)\.(\d+)$")


def paddle_scope(stamps: Mapping[tuple[str, int], tuple[str, int]]) -> ScopeFn:
    """Scope function for paddle2onnx output: ``p2o.pd_op.<op>.<k>.<j>`` → stamped path."""

    def scope(node: onnx.NodeProto) -> tuple[str, int] | None:
        for out in node.output:
            m = _P2O.match(out)
            if m:
                hit = stamps.get((m.group(1), int(m.group(2))))
                if hit is not None:
                    return hit
        return None

    return scope


def torch_scope(module_paths: frozenset[str]) -> ScopeFn:
    """Scope function for the TorchScript exporter: module path from the node name."""
    from padiff.graph.export_torch import scope_of

    def scope(node: onnx.NodeProto) -> tuple[str, int] | None:
        return scope_of(node.name, module_paths)

    return scope
