"""Canonicalise op graphs so the two exporters' decompositions look alike.

- Noise ops (Identity, Reshape, Transpose, Cast, Squeeze, Flatten, Dropout ...) that do
  not read a parameter are contracted: their producer is wired straight to their
  consumers, keeping the consumer's input slot.
- Element-wise Add/Sub/Mul/Div by a constant are contracted too (paddle's ``scale``
  exports as Mul+Add, torch's as Mul; GELU decompositions differ in such steps).
- Op kinds are normalised: ``Gemm`` → ``MatMul`` (paddle ``Linear`` exports as
  MatMul+Add, torch as Gemm), global/mean pooling → ``AvgPool``, and a layer's
  parameter-free decomposition is named by what it computes (Erf ⇒ ``Gelu``, ...).
- Parameter shapes get a layout-free key: dims sorted, so paddle ``[in, out]`` and
  torch ``[out, in]`` Linear weights agree.

Pure Python over networkx: no paddle, torch or onnx import.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

NOISE = frozenset({
    "Identity", "Reshape", "Flatten", "Transpose", "Cast", "CastLike", "Squeeze", "Unsqueeze", "Expand",
    "Dropout", "Shape", "Size", "Contiguous",
})
# element-wise ops with one constant operand (paddle ``scale`` exports as Mul+Add): noise
SCALAR = frozenset({"Add", "Sub", "Mul", "Div"})
KIND = {
    "Gemm": "MatMul", "GlobalAveragePool": "AvgPool", "ReduceMean": "AvgPool", "AveragePool": "AvgPool",
    "GlobalMaxPool": "MaxPool", "MaxPool": "MaxPool", "Sum": "Add",
}


def canonical_kind(op: str) -> str:
    """The op kind used for comparison (``Gemm`` and ``MatMul`` are the same kind)."""
    return KIND.get(op, op)


def shape_key(shape: Iterable[int]) -> tuple[int, ...]:
    """Layout-free key of a parameter shape.

    Up to 2-D (Linear weights ``[in, out]`` in paddle vs ``[out, in]`` in torch, biases
    ``[1, C]`` vs ``[C]``): size-1 dims dropped, dims sorted. 3-D and up (convolution
    kernels, same layout in both frameworks): kept as they are, so a 1x1 conv
    ``[out, in, 1, 1]`` is not confused with one going the other way.
    """
    dims = tuple(int(d) for d in shape)
    if len(dims) >= 3:
        return dims
    return tuple(sorted((d for d in dims if d != 1), reverse=True))


def canonicalize(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of ``g`` with noise ops contracted and a ``kind`` attribute on every node."""
    h = g.copy()
    for n in sorted(h.nodes):
        data = h.nodes[n]
        data["kind"] = canonical_kind(data["op"])
        if data["params"] or not (data["op"] in NOISE or (data["op"] in SCALAR and data.get("data_in", 2) == 1)):
            continue
        preds = [p for p in h.predecessors(n) if h.edges[p, n]["slot"] == 0] or list(h.predecessors(n))
        for s in list(h.successors(n)):
            slot = h.edges[n, s]["slot"]
            for p in preds:
                if h.has_edge(p, s):
                    h.edges[p, s]["slot"] = min(h.edges[p, s]["slot"], slot)
                elif p != s:
                    h.add_edge(p, s, slot=slot)
        h.remove_node(n)
    return h


def compute_kind(kinds: Iterable[str]) -> str:
    """Name a parameter-free op group by what it computes, robust to decompositions."""
    ks = set(kinds)
    if not ks:
        return "Noise"
    if "Erf" in ks or "Gelu" in ks:
        return "Gelu"
    if ks == {"Sigmoid", "Mul"} or "Silu" in ks or "Swish" in ks:
        return "Silu"
    if "Softmax" in ks or "LogSoftmax" in ks:
        return "Softmax"
    if ks & {"Relu", "Clip"} and len(ks) == 1:
        return "Relu"
    return "+".join(sorted(ks))
