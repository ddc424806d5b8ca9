"""Parameter-level pairs: raw parameters that stand for several layers on the other side.

X2Paddle writes every Linear of a model as ``create_parameter`` on the root layer and calls
``paddle.matmul``; its torch original has one ``Linear`` per step. No layer pairs with a
layer there, but the op graphs still say which operation consumes which parameter. A layer
whose own weights feed two or more separate operations is *raw*; its operations, in
dataflow order, are matched one by one with the operations of the other side's unpaired
layers (same op kind and layout-free weight shape, in the same order); the parameters of
matched operations pair by shape (weight with weight, bias with the bias added right after).
When the operations do not line up, the raw layer stays unpaired with a reason that says so.

Pure Python over networkx: no paddle or torch import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from padiff.graph.canonical import canonical_kind, shape_key
from padiff.graph.proposal import Left, MatchResult, ProposedPair
from padiff.graph.units import LayerInfo
from padiff.names import is_strictly_within, show

BIAS_HOPS = 2  # a bias is read by an op at most this many steps after its weight op


@dataclass(frozen=True)
class ParamProposal:
    """A proposed parameter pair: full parameter paths on both sides, confidence, evidence."""

    paddle_param: str
    torch_param: str
    confidence: float
    evidence: tuple[str, ...]
    conversion: str = "auto"  # "copy" / "transpose" when both graphs say how the op reads the weight


@dataclass(frozen=True)
class _Op:
    """One weight-consuming op of a layer and the parameters it stands for (weight first)."""

    node: int
    kind: str
    params: tuple[tuple[str, tuple[int, ...]], ...]  # (full parameter path, shape)
    read_t: bool | None = None  # the op reads its weight transposed (stored [out, in]); None: unknown

    @property
    def label(self) -> tuple[str, tuple[int, ...]]:
        return self.kind, shape_key(self.params[0][1])


def _param_path(owner: Mapping[str, tuple[str, str]], tensor: str) -> str | None:
    if tensor not in owner:
        return None
    layer, attr = owner[tensor]
    return f"{layer}.{attr}" if layer else attr


def weight_nodes(g: nx.DiGraph) -> dict[str, list[int]]:
    """``{layer: nodes}``: the ops reading a weight (2-D or more) each layer owns, in graph order.

    One walk of the graph for :func:`weight_ops` over many layers: walking every node once per
    layer cost seconds for a 24-layer decoder's few thousand ops.
    """
    owner: Mapping[str, tuple[str, str]] = g.graph.get("owner", {})
    out: dict[str, list[int]] = {}
    for n in sorted(g.nodes):
        layers = {owner[t][0] for t, s in g.nodes[n]["params"] if t in owner and len(s) >= 2}
        for lay in layers:
            out.setdefault(lay, []).append(n)
    return out


def weight_ops(g: nx.DiGraph, layer: str, nodes: Mapping[str, list[int]] | None = None) -> list[_Op]:
    """The ops reading a weight (2-D or more) that ``layer`` owns, in graph order, each with its bias.

    ``nodes``: :func:`weight_nodes` of ``g``, when asked for many layers.
    """
    owner: Mapping[str, tuple[str, str]] = g.graph.get("owner", {})
    mine = {t for t, (lay, _) in owner.items() if lay == layer}
    ops: list[_Op] = []
    taken: set[str] = set()
    for n in (sorted(g.nodes) if nodes is None else nodes.get(layer, [])):
        weights = [(t, s) for t, s in g.nodes[n]["params"] if t in mine and len(s) >= 2]
        if not weights:
            continue
        group = sorted(((t, s) for t, s in g.nodes[n]["params"] if t in mine), key=lambda p: (-len(p[1]), p[0]))
        near = nx.single_source_shortest_path_length(g, n, cutoff=BIAS_HOPS)
        for m in sorted(near):
            if m != n:
                group += [(t, s) for t, s in g.nodes[m]["params"] if t in mine and len(s) == 1
                          and all(t != x for x, _ in group)]
        group = [(t, s) for t, s in group if t not in taken]
        taken.update(t for t, _ in group)
        paths = tuple((p, s) for t, s in group if (p := _param_path(owner, t)) is not None)
        if paths:
            read_t = g.nodes[n].get("weight_t", {}).get(group[0][0]) if group else None
            ops.append(_Op(n, canonical_kind(g.nodes[n]["op"]), paths, read_t))
    return ops


def _pair_params(a: _Op, b: _Op) -> list[tuple[str, str]] | None:
    """Parameters of two matched ops, paired in order (weight, then biases); None if shapes differ."""
    if len(a.params) != len(b.params):
        return None
    out = []
    for (pa, sa), (pb, sb) in zip(a.params, b.params):
        if shape_key(sa) != shape_key(sb):
            return None
        out.append((pa, pb))
    return out


def _raw_layers(g: nx.DiGraph, candidates: set[str], containers: set[str] = frozenset()) -> dict[str, list[_Op]]:
    """Layers among ``candidates`` whose own weights feed two or more separate ops (one, for ``containers``)."""
    out = {}
    nodes = weight_nodes(g)
    for path in candidates:
        ops = weight_ops(g, path, nodes)
        if len(ops) >= (1 if path in containers else 2):
            out[path] = ops
    return out


def holds_inner_params(path: str, layers: Mapping[str, LayerInfo]) -> bool:
    """Whether a layer strictly inside ``path`` holds tensors of its own."""
    return any(info.shapes and is_strictly_within(p, path) for p, info in layers.items())


def raw_container(path: str, layers: Mapping[str, LayerInfo]) -> bool:
    """A layer with weights (2-D or more) of its own and parameter-holding sublayers (X2Paddle's root)."""
    info = layers.get(path)
    return (info is not None and any(len(s) >= 2 for s in info.shapes)
            and holds_inner_params(path, layers))


def _mixed_pairs(result: MatchResult, p_layers: Mapping[str, LayerInfo],
                 t_layers: Mapping[str, LayerInfo]) -> list[ProposedPair]:
    """Layer pairs joining a raw container on one side to a layer with no parameter-holding sublayers."""
    out = []
    for pr in result.pairs:
        if pr.opaque or pr.paddle_parts or pr.torch_parts:
            continue
        p_raw, t_raw = raw_container(pr.paddle_path, p_layers), raw_container(pr.torch_path, t_layers)
        if (p_raw and not holds_inner_params(pr.torch_path, t_layers)) or \
                (t_raw and not holds_inner_params(pr.paddle_path, p_layers)):
            out.append(pr)
    return out


def _one_side(raw_g: nx.DiGraph, other_g: nx.DiGraph, raw_side: str, result: MatchResult,
              raw_layers: Mapping[str, LayerInfo], other_layers: Mapping[str, LayerInfo],
              containers: set[str] = frozenset()) -> tuple[list[ParamProposal], set[str], set[str], dict[str, str]]:
    other_side = "torch" if raw_side == "paddle" else "paddle"
    left_raw = {u.path for u in result.unpaired if u.side == raw_side}
    left_other = {u.path for u in result.unpaired if u.side == other_side and other_layers.get(u.path)
                  and other_layers[u.path].shapes}
    proposals: list[ParamProposal] = []
    done_raw: set[str] = set()
    done_other: set[str] = set()
    reasons: dict[str, str] = {}
    other_nodes = weight_nodes(other_g)
    other_ops = sorted((op for path in left_other for op in weight_ops(other_g, path, other_nodes)),
                       key=lambda o: o.node)
    for path, ops in sorted(_raw_layers(raw_g, left_raw, containers).items()):
        free = [o for o in other_ops if _owner_layer(o) not in done_other]
        labels = [o.label for o in ops]
        pos = _find(labels, [o.label for o in free])
        if pos is None:
            kinds = ", ".join(sorted({o.kind for o in ops}))
            reasons[path] = (f"holds raw parameters used by {len(ops)} separate ops ({kinds}); the unpaired "
                             f"{other_side} layers' ops do not line up with them one by one (kinds and weight "
                             "shapes in dataflow order)")
            continue
        matched = free[pos:pos + len(ops)]
        pairs = [_pair_params(a, b) for a, b in zip(ops, matched)]
        if any(p is None for p in pairs):
            reasons[path] = (f"holds raw parameters used by {len(ops)} separate ops; their biases do not match the "
                             f"{other_side} layers' biases")
            continue
        for k, (a, b, got) in enumerate(zip(ops, matched, pairs)):
            for j, (pa, pb) in enumerate(got or []):
                p_par, t_par = (pa, pb) if raw_side == "paddle" else (pb, pa)
                conv, how = _conversion(a, b) if j == 0 else ("auto", "")
                proposals.append(ParamProposal(p_par, t_par, 0.9, (
                    f"parameter-level pair: op {k + 1} of {len(ops)} that read {show(path)}'s raw parameters "
                    f"({a.kind} {list(shape_key(a.params[0][1]))}) matches the {other_side} op of "
                    f"{show(_owner_layer(b))} in dataflow order", *((how,) if how else ())), conv))
            done_other.add(_owner_layer(b))
        done_raw.add(path)
    return proposals, done_raw, done_other, reasons




def _conversion(a: _Op, b: _Op) -> tuple[str, str]:
    """How the weight of op ``a`` takes the weight of op ``b``, from how each op reads it, with the evidence.

    X2Paddle keeps torch's ``[out, in]`` layout and calls ``matmul(..., transpose_y=True)``, so
    a square weight cannot tell from its shape whether it must be transposed; the ops can.
    ``("auto", "")`` when either side's reading is unknown or the shapes rule the answer out.
    """
    (_, sa), (_, sb) = a.params[0], b.params[0]
    if a.read_t is None or b.read_t is None or len(sa) != 2 or len(sb) != 2:
        return "auto", ""
    conv = "copy" if a.read_t == b.read_t else "transpose"
    if tuple(sa) != (tuple(sb) if conv == "copy" else tuple(sb)[::-1]):
        return "auto", ""
    side = {True: "transposed ([out, in])", False: "as stored ([in, out])"}
    return conv, f"weight layout: both ops read it {side[a.read_t]}, so it is copied" if conv == "copy" else \
        f"weight layout: one op reads it {side[a.read_t]}, the other {side[b.read_t]}, so it is transposed"


def _owner_layer(op: _Op) -> str:
    return op.params[0][0].rpartition(".")[0]


def _find(needle: list, hay: list) -> int | None:
    """The only position where ``needle`` occurs as a contiguous run of ``hay``, else None."""
    hits = [i for i in range(len(hay) - len(needle) + 1) if hay[i:i + len(needle)] == needle]
    return hits[0] if len(hits) == 1 else None


def param_pairs(pg: nx.DiGraph, tg: nx.DiGraph, result: MatchResult, p_layers: Mapping[str, LayerInfo],
                t_layers: Mapping[str, LayerInfo]) -> MatchResult:
    """``result`` with parameter pairs for raw layers on either side; the layers they cover leave its unpaired.

    A layer pair joining a raw container to a plain layer (see :func:`raw_container`) is taken
    apart first and its two layers matched at parameter level; when that fails it is put back.
    """
    mixed = _mixed_pairs(result, p_layers, t_layers)
    if mixed:
        loose = [Left(side, path, "", "loose") for pr in mixed
                 for side, path in (("paddle", pr.paddle_path), ("torch", pr.torch_path))]
        work = MatchResult([pr for pr in result.pairs if pr not in mixed], [*result.unpaired, *loose],
                           result.unit_pairs, result.params)
    else:
        work = result
    p_cont = {pr.paddle_path for pr in mixed if raw_container(pr.paddle_path, p_layers)}
    t_cont = {pr.torch_path for pr in mixed if raw_container(pr.torch_path, t_layers)}
    props, raw_p, other_t, why_p = _one_side(pg, tg, "paddle", work, p_layers, t_layers, p_cont)
    props_t, raw_t, other_p, why_t = _one_side(tg, pg, "torch", work, t_layers, p_layers, t_cont)
    props += props_t
    done = {("paddle", p) for p in raw_p | other_p} | {("torch", t) for t in raw_t | other_t}
    # a mixed pair whose raw container found no parameter pairs is kept as it was
    back = [pr for pr in mixed if ("paddle", pr.paddle_path) not in done and ("torch", pr.torch_path) not in done]
    kept = {("paddle", pr.paddle_path) for pr in back} | {("torch", pr.torch_path) for pr in back}
    unpaired: list[Left] = []
    for u in work.unpaired:
        if (u.side, u.path) in done or (u.kind == "loose" and (u.side, u.path) in kept):
            continue
        why = (why_p if u.side == "paddle" else why_t).get(u.path) or u.reason or (
            "its layer pair with a layer holding raw parameters was replaced by parameter pairs, and no op of "
            "the other side's raw parameters lines up with its own")
        unpaired.append(Left(u.side, u.path, why, "unmatched" if u.kind == "loose" else u.kind))
    pairs = [pr for pr in result.pairs if pr not in mixed or pr in back]
    return MatchResult(pairs, unpaired, result.unit_pairs, [*result.params, *props])
