"""Matcher unit tests on hand-built graphs: no frameworks, milliseconds each."""

from __future__ import annotations

import networkx as nx
import pytest

from padiff.graph.canonical import canonicalize, compute_kind, shape_key
from padiff.graph.match import LayerInfo, Unit, align, build_units, match_graphs


class G:
    """Tiny builder for attributed op graphs (the shape build.py produces)."""

    def __init__(self) -> None:
        self.g = nx.DiGraph()
        self.n = 0

    def op(self, op: str, layer: str = "", *inputs: int | tuple[int, int], params: tuple = (), call: int = 0,
           data_in: int | None = None) -> int:
        idx = self.n
        self.n += 1
        self.g.add_node(idx, op=op, index=idx, params=tuple(params), layer=layer, call=call,
                        data_in=len(inputs) if data_in is None else data_in)
        for slot, src in enumerate(inputs):
            s = slot
            if isinstance(src, tuple):
                src, s = src
            self.g.add_edge(src, idx, slot=0 if op in ("Add", "Mul") else s)
        return idx

    def linear(self, layer: str, x: int, d_in: int, d_out: int, gemm: bool = False, call: int = 0) -> int:
        if gemm:
            return self.op("Gemm", layer, x, params=((f"{layer}.w", (d_out, d_in)), (f"{layer}.b", (d_out,))),
                           call=call)
        m = self.op("MatMul", layer, x, params=((f"{layer}.w", (d_in, d_out)),), call=call)
        return self.op("Add", layer, m, params=((f"{layer}.b", (d_out,)),), call=call, data_in=1)


def infos(*items: tuple[str, str, bool, tuple]) -> dict[str, LayerInfo]:
    return {p: LayerInfo(p, c, leaf, shapes) for p, c, leaf, shapes in items}


def lin_info(path: str, d_in: int, d_out: int, torch: bool) -> tuple[str, str, bool, tuple]:
    return path, "Linear", True, (((d_out, d_in) if torch else (d_in, d_out)), (d_out,))


def pairs_of(result) -> dict[str, str]:
    return {p.paddle_path: p.torch_path for p in result.pairs}


def test_canonical_shape_key_is_layout_free() -> None:
    assert shape_key((8, 16)) == shape_key((16, 8))
    assert shape_key((1, 64)) == shape_key((64,))
    assert compute_kind(["Div", "Erf", "Add", "Mul"]) == "Gelu"


def test_noise_and_constant_scaling_are_contracted_keeping_slots() -> None:
    b = G()
    x = b.op("Relu", "a")
    r = b.op("Reshape", "", x)
    s = b.op("Mul", "", r, data_in=1)  # x * 0.5
    y = b.op("Relu", "b")
    out = b.op("Sub", "", (s, 0), (y, 1))
    h = canonicalize(b.g)
    assert set(h.nodes) == {x, y, out}
    assert h.edges[x, out]["slot"] == 0 and h.edges[y, out]["slot"] == 1


def test_renamed_reordered_chain_gemm_vs_matmul_add() -> None:
    p, t = G(), G()
    x = p.op("Relu", "inp")
    h = p.linear("fc_a", x, 4, 8)
    h = p.op("Relu", "act", h)
    p.linear("fc_b", h, 8, 3)
    y = t.op("Relu", "first")
    k = t.linear("lin1", y, 4, 8, gemm=True)
    k = t.op("Relu", "relu", k)
    t.linear("lin2", k, 8, 3, gemm=True)
    p_l = infos(("", "Net", False, ()), ("inp", "ReLU", True, ()), lin_info("fc_a", 4, 8, False),
                ("act", "ReLU", True, ()), lin_info("fc_b", 8, 3, False))
    t_l = infos(("", "Net", False, ()), ("first", "ReLU", True, ()), lin_info("lin2", 8, 3, True),
                ("relu", "ReLU", True, ()), lin_info("lin1", 4, 8, True))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    assert pairs_of(res) == {"inp": "first", "fc_a": "lin1", "act": "relu", "fc_b": "lin2"}
    assert all(0.0 <= pr.confidence <= 1.0 and pr.evidence for pr in res.pairs)
    assert res.unpaired == []


def _attention(b: G, names: tuple[str, str, str, str], order: tuple[int, int, int], gemm: bool) -> None:
    x = b.op("Relu", "pre")
    outs = {}
    for i in order:
        outs[i] = b.linear(names[i], x, 16, 16, gemm=gemm)
    kt = b.op("Transpose", "", outs[1])
    s = b.op("MatMul", "", (outs[0], 0), (kt, 1))
    a = b.op("Softmax", "", s)
    o = b.op("MatMul", "", (a, 0), (outs[2], 1))
    b.linear(names[3], o, 16, 16, gemm=gemm)


def test_qkv_of_equal_shapes_are_told_apart_by_consumer_slots() -> None:
    p, t = G(), G()
    _attention(p, ("q", "k", "v", "o"), (0, 1, 2), gemm=False)
    _attention(t, ("query", "key", "value", "proj"), (2, 1, 0), gemm=True)
    p_l = infos(("", "Att", False, ()), ("pre", "ReLU", True, ()),
                *(lin_info(n, 16, 16, False) for n in ("q", "k", "v", "o")))
    t_l = infos(("", "Att", False, ()), ("pre", "ReLU", True, ()),
                *(lin_info(n, 16, 16, True) for n in ("value", "key", "query", "proj")))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    assert pairs_of(res) == {"pre": "pre", "q": "query", "k": "key", "v": "value", "o": "proj"}
    assert not any(pr.uncertain for pr in res.pairs)


def _branches(b: G, first: str, second: str, swap: bool) -> None:
    x = b.op("Relu", "pre")
    ends = {}
    for name in ((second, first) if swap else (first, second)):
        h = b.linear(f"{name}.0", x, 8, 8)
        h = b.op("Relu", f"{name}.1", h)
        ends[name] = b.linear(f"{name}.2", h, 8, 8)
    b.op("Sub", "", (ends[first], 0), (ends[second], 1))


def test_mirrored_branches_evaluated_in_opposite_order() -> None:
    p, t = G(), G()
    _branches(p, "left", "right", swap=False)
    _branches(t, "a", "b", swap=True)
    p_l = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), ("left", "Seq", False, ()),
                ("right", "Seq", False, ()),
                *(lin_info(f"{s}.{k}", 8, 8, False) for s in ("left", "right") for k in (0, 2)),
                ("left.1", "ReLU", True, ()), ("right.1", "ReLU", True, ()))
    t_l = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), ("a", "Seq", False, ()), ("b", "Seq", False, ()),
                *(lin_info(f"{s}.{k}", 8, 8, True) for s in ("a", "b") for k in (0, 2)),
                ("a.1", "ReLU", True, ()), ("b.1", "ReLU", True, ()))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    got = pairs_of(res)
    for k in ("0", "1", "2"):
        assert got[f"left.{k}"] == f"a.{k}"
        assert got[f"right.{k}"] == f"b.{k}"


def test_truly_symmetric_branches_are_flagged_uncertain() -> None:
    p, t = G(), G()
    for b in (p, t):
        x = b.op("Relu", "pre")
        y1 = b.linear("one", x, 8, 8)
        y2 = b.linear("two", x, 8, 8)
        b.op("Add", "", y1, y2)
    lay = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), lin_info("one", 8, 8, False),
                lin_info("two", 8, 8, False))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), lay, lay)
    assert {pr.paddle_path for pr in res.pairs if pr.uncertain} == {"one", "two"}
    assert all("tie" in " ".join(pr.evidence) for pr in res.pairs if pr.uncertain)


def test_reused_layer_gives_one_pair_and_functional_relu_is_explained() -> None:
    p, t = G(), G()
    x = p.op("Relu", "pre")
    h = p.linear("shared", x, 8, 8, call=0)
    h = p.op("Relu", "act", h)  # a layer here ...
    p.linear("shared", h, 8, 8, call=1)
    y = t.op("Relu", "pre")
    k = t.linear("mid", y, 8, 8, gemm=True, call=0)
    k = t.op("Relu", "", k)  # ... F.relu there
    t.linear("mid", k, 8, 8, gemm=True, call=1)
    p_l = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), lin_info("shared", 8, 8, False),
                ("act", "ReLU", True, ()))
    t_l = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), lin_info("mid", 8, 8, True))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    assert pairs_of(res) == {"pre": "pre", "shared": "mid"}
    shared = next(pr for pr in res.pairs if pr.paddle_path == "shared")
    assert any("2 calls" in e for e in shared.evidence)
    reasons = {u.path: u.reason for u in res.unpaired}
    assert "functional on the other side" in reasons["act"]


def test_same_kind_different_shapes_and_not_executed_are_explained() -> None:
    p, t = G(), G()
    x = p.op("Relu", "pre")
    p.linear("fc", x, 4, 8)
    y = t.op("Relu", "pre")
    t.linear("fc", y, 4, 9, gemm=True)
    p_l = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), lin_info("fc", 4, 8, False),
                lin_info("unused", 3, 3, False))
    t_l = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), lin_info("fc", 4, 9, True))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    reasons = {(u.side, u.path): u.reason for u in res.unpaired}
    assert reasons[("paddle", "fc")].startswith("same kind, different shapes")
    assert reasons[("torch", "fc")].startswith("same kind, different shapes")
    assert reasons[("paddle", "unused")] == "not executed for this input"
    kinds = {(u.side, u.path): u.kind for u in res.unpaired}  # code reads the kind, never the reason's words
    assert kinds[("paddle", "unused")] == "unseen" and kinds[("paddle", "fc")] == "unmatched"


def test_weight_only_pair_when_one_side_is_a_block_with_raw_parameters() -> None:
    p, t = G(), G()
    x = p.op("Relu", "pre")
    m = p.op("MatMul", "block", x, params=(("block.w", (8, 16)),))
    p.op("Tanh", "block.act", m)
    y = t.op("Relu", "pre")
    g = t.op("Gemm", "block.proj", y, params=(("block.proj.weight", (16, 8)),))
    t.op("Tanh", "block.act", g)
    p_l = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), ("block", "Blk", False, ((8, 16),)),
                ("block.act", "Tanh", True, ()))
    t_l = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), ("block", "Blk", False, ()),
                ("block.proj", "Linear", True, ((16, 8),)), ("block.act", "Tanh", True, ()))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    pair = next(pr for pr in res.pairs if pr.paddle_path == "block")
    assert pair.torch_path == "block.proj" and pair.compare_output is False
    assert next(pr for pr in res.pairs if pr.paddle_path == "block.act").compare_output is True


def _chain_units(n: int, offset: int = 0) -> list[Unit]:
    return [Unit(i, f"l{i}", 0, [i], "MatMul", ((8, 8),), True, depth=i + offset) for i in range(n)]


def test_banded_alignment_matches_exact_on_a_long_chain_with_an_extra_unit() -> None:
    p = _chain_units(600)
    t = _chain_units(600)
    t.insert(300, Unit(999, "extra", 0, [999], "Conv", ((3, 3),), True, depth=300))
    pairs = align(p, t)  # 600 x 601 cells > exact limit: banded
    assert len(pairs) == 600
    assert all(t[j].layer == p[i].layer for i, j in pairs)


@pytest.mark.parametrize("n", [1, 3])
def test_build_units_splits_a_layer_called_n_times(n: int) -> None:
    b = G()
    x = b.op("Relu", "pre")
    for call in range(n):
        x = b.linear("fc", x, 8, 8, call=call)
    side = build_units(canonicalize(b.g), infos(("", "N", False, ()), ("pre", "ReLU", True, ()),
                                                lin_info("fc", 8, 8, False)))
    assert sum(1 for u in side.units if u.layer == "fc") == n


def test_container_of_the_same_class_still_compares_outputs() -> None:
    # paddle LSTM has RNN/cell children, torch LSTM is a leaf: same layer, same output
    p, t = G(), G()
    for b, name in ((p, "rnn"), (t, "lstm")):
        x = b.op("Relu", "pre")
        b.op("LSTM", name, x, params=((f"{name}.w", (48, 8)), (f"{name}.r", (48, 12))))
    p_l = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), ("rnn", "LSTM", False, ((48, 8), (48, 12))),
                ("rnn.0", "RNN", False, ()), ("rnn.0.cell", "LSTMCell", True, ()))
    t_l = infos(("", "N", False, ()), ("pre", "ReLU", True, ()), ("lstm", "LSTM", True, ((48, 8), (48, 12))))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    pair = next(pr for pr in res.pairs if pr.paddle_path == "rnn")
    assert pair.torch_path == "lstm" and pair.compare_output is True
    assert "part of paired layer 'rnn'" in {u.path: u.reason for u in res.unpaired}["rnn.0.cell"]
