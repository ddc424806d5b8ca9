"""An attributed op graph from ops recorded in one eager forward, for when an exporter fails.

Same node and edge attributes as :mod:`padiff.graph.build` produces from ONNX (``op``,
``index``, ``params``, ``layer``, ``call``, ``data_in``; edge ``slot``), so
:mod:`padiff.graph.canonical` and :mod:`padiff.graph.match` consume it unchanged. Op
kinds are the recorders' canonical kinds (the same on both sides) spelled as the ONNX
op they stand for, so the canonicaliser's noise and decomposition rules apply.
Pure Python over networkx: no framework import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

from padiff.graph.build import COMMUTATIVE
from padiff.graph.canonical import NOISE, canonical_kind

ONNX_OP = {
    "linear": "Gemm", "matmul": "MatMul", "conv1d": "Conv", "conv2d": "Conv", "conv3d": "Conv",
    "conv1d_transpose": "ConvTranspose", "conv2d_transpose": "ConvTranspose", "relu": "Relu", "gelu": "Gelu",
    "silu": "Silu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax", "log_softmax": "LogSoftmax",
    "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "reshape": "Reshape", "transpose": "Transpose",
    "cast": "Cast", "getitem": "Slice", "cat": "Concat", "split": "Split", "unsqueeze": "Unsqueeze",
    "squeeze": "Squeeze", "expand": "Expand", "dropout": "Dropout", "layer_norm": "LayerNormalization",
    "batch_norm": "BatchNormalization", "embedding": "Gather", "max_pool2d": "MaxPool", "avg_pool2d": "AvgPool",
    "adaptive_avg_pool2d": "AvgPool", "mean": "ReduceMean", "sum": "ReduceSum", "exp": "Exp", "pow": "Pow",
    "sqrt": "Sqrt", "neg": "Neg", "erf": "Erf", "flatten": "Flatten", "contiguous": "Identity",
    "clone": "Identity", "detach": "Identity", "pad": "Pad",
}


@dataclass(frozen=True)
class EagerOp:
    """One recorded op by tensor identity: what ran, in which layer call, reading and writing which tensors."""

    name: str
    kind: str
    layer: str
    call: int
    inputs: tuple[int, ...]  # identities of the tensors read, in argument order
    outputs: tuple[int, ...]


def onnx_op(kind: str) -> str:
    """The ONNX op type a recorded kind stands for (``linear`` -> ``Gemm``)."""
    return ONNX_OP.get(kind, "".join(p.capitalize() for p in kind.split("_")))


def build_eager_graph(ops: Sequence[EagerOp], graph_inputs: set[int],
                      params: Mapping[int, tuple[str, tuple[int, ...], str]],
                      returns: Mapping[str, Sequence[int]] | None = None) -> nx.DiGraph:
    """The attributed op graph of a recorded forward.

    ``graph_inputs`` are the identities of the model's input tensors; ``params`` maps a
    parameter's (or buffer's) identity to ``(name, shape, owning layer path)``. An op
    reading only parameters and tensors made outside the forward is parameter plumbing
    (``weight.t()``): its outputs stand for the parameters it read, as in ONNX.
    ``returns`` (layer path -> identities of the tensors its first call returned) becomes
    the graph attribute ``returns``: per layer, the kind of op that computed each returned
    tensor, looking through layout ops (``Reshape`` of a ``MatMul`` is a ``MatMul``);
    ``Input`` for a tensor the forward did not compute, ``Param`` for parameter plumbing.
    """
    g = nx.DiGraph()
    producer: dict[int, int] = {}
    made_by: dict[int, str] = {}  # tensor identity -> the kind of op that computed its values
    param_of: dict[int, frozenset[int]] = {k: frozenset({k}) for k in params}
    live = set(graph_inputs)
    for idx, op in enumerate(ops):
        data = [t for t in op.inputs if t in live and t not in param_of]
        read = frozenset().union(*(param_of.get(t, frozenset()) for t in op.inputs))
        if not data:
            for t in op.outputs:
                if read:
                    param_of[t] = read
                    made_by[t] = "Param"
            continue
        used = sorted(read, key=lambda k: params[k][0])
        owner = max(used, key=lambda k: (_numel(params[k][1]), params[k][0])) if used else None
        layer = params[owner][2] if owner is not None else op.layer
        call = op.call if layer == op.layer else 0
        kind = onnx_op(op.kind)
        g.add_node(idx, op=kind, index=idx, params=tuple((params[k][0], params[k][1]) for k in used), layer=layer,
                   call=call, name=op.name, out=(), data_in=len(data))
        for slot, t in enumerate(op.inputs):
            if t in producer and t not in param_of:
                s = 0 if kind in COMMUTATIVE else slot
                u = producer[t]
                if g.has_edge(u, idx):
                    g.edges[u, idx]["slot"] = min(g.edges[u, idx]["slot"], s)
                elif u != idx:
                    g.add_edge(u, idx, slot=s)
        made = made_by.get(data[0], "Input") if kind in NOISE else canonical_kind(kind)
        for t in op.outputs:
            producer[t] = idx
            made_by[t] = made
            live.add(t)
            param_of.pop(t, None)  # an in-place op on a parameter-derived tensor makes it data
    g.graph["returns"] = {path: tuple(made_by.get(t, "Param" if t in params else "Input") for t in ids)
                          for path, ids in (returns or {}).items()}
    g.graph["control_layers"] = frozenset()
    g.graph["used_params"] = frozenset(p for n in g.nodes for p, _ in g.nodes[n]["params"])
    return g


def _numel(shape: Sequence[int]) -> int:
    out = 1
    for d in shape:
        out *= max(int(d), 1)
    return out
