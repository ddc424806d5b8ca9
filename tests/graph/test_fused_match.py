"""The fused/split, enclosing-block and raw-parameter passes on hand-built graphs: no frameworks, milliseconds."""

from __future__ import annotations

from test_match import G, infos, lin_info

from padiff.graph.canonical import canonicalize
from padiff.graph.match import match_graphs


def _fused_side(b: G) -> None:
    x = b.op("Relu", "pre")
    qkv = b.linear("qkv", x, 8, 24)
    s = b.op("Split", "", qkv)
    a = b.op("Softmax", "", b.op("MatMul", "", (s, 0), (s, 1)))
    b.linear("out", b.op("MatMul", "", (a, 0), (s, 1)), 8, 8)


def _split_side(b: G, chain: bool = False) -> None:
    x = b.op("Relu", "pre")
    if chain:  # three Linears one after another: not a split of one
        q = b.linear("q", x, 8, 8, gemm=True)
        k = b.linear("k", q, 8, 8, gemm=True)
        v = b.linear("v", k, 8, 8, gemm=True)
        b.linear("o", v, 8, 8, gemm=True)
        return
    q, k, v = (b.linear(n, x, 8, 8, gemm=True) for n in ("v", "k", "q"))  # graph order differs from names
    a = b.op("Softmax", "", b.op("MatMul", "", (q, 0), (k, 1)))
    b.linear("o", b.op("MatMul", "", (a, 0), (v, 1)), 8, 8, gemm=True)


def _tables(chain: bool = False) -> tuple[dict, dict]:
    p_l = infos(("", "Net", False, ()), ("pre", "ReLU", True, ()), lin_info("qkv", 8, 24, False),
                lin_info("out", 8, 8, False))
    t_l = infos(("", "Net", False, ()), ("pre", "ReLU", True, ()),
                *(lin_info(n, 8, 8, True) for n in ("q", "k", "v", "o")))
    return p_l, t_l


def test_a_fused_layer_pairs_with_the_parallel_layers_that_share_its_neighbours() -> None:
    p, t = G(), G()
    _fused_side(p)
    _split_side(t)
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), *_tables())
    fused = [pr for pr in res.pairs if pr.torch_parts]
    assert [(pr.paddle_path, set(pr.torch_parts), pr.uncertain) for pr in fused] == [("qkv", {"q", "k", "v"}, True)]
    assert "fused against split" in fused[0].evidence[0]
    assert not [u for u in res.unpaired if u.path in ("qkv", "q", "k", "v")]


def test_the_reverse_direction_pairs_several_paddle_layers_with_one_torch_layer() -> None:
    p, t = G(), G()
    _split_side(p)
    _fused_side(t)
    t_l, p_l = _tables()
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    assert [(pr.torch_path, set(pr.paddle_parts)) for pr in res.pairs if pr.paddle_parts] == [("qkv", {"q", "k", "v"})]


def test_a_chain_of_layers_is_not_taken_for_the_parts_of_a_fused_one() -> None:
    p, t = G(), G()
    _fused_side(p)
    _split_side(t, chain=True)
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), *_tables())
    assert not [pr for pr in res.pairs if pr.torch_parts]


def test_raw_parameters_pair_with_the_ops_of_the_other_side_in_dataflow_order() -> None:
    p, t = G(), G()
    x = p.op("Relu", "pre")
    h = x
    for k, (i, o) in enumerate(((4, 8), (8, 8), (8, 3))):  # root-level raw weights, X2Paddle style
        m = p.op("MatMul", "", h, params=((f"w{k}", (i, o)),))
        h = p.op("Relu", "", p.op("Add", "", m, params=((f"b{k}", (o,)),), data_in=1))
    y = t.op("Relu", "pre")
    for name, (i, o) in (("c", (4, 8)), ("a", (8, 8)), ("b", (8, 3))):
        y = t.op("Relu", "", t.linear(name, y, i, o, gemm=True))
    pg, tg = canonicalize(p.g), canonicalize(t.g)
    pg.graph["owner"] = {f"{n}{k}": ("", f"{n}{k}") for k in range(3) for n in "wb"}
    tg.graph["owner"] = {f"{n}.{a}": (n, "weight" if a == "w" else "bias") for n in "abc" for a in "wb"}
    p_l = infos(("", "Raw", False, ((4, 8), (8,), (8, 8), (8,), (8, 3), (3,))), ("pre", "ReLU", True, ()))
    t_l = infos(("", "Net", False, ()), ("pre", "ReLU", True, ()), lin_info("c", 4, 8, True),
                lin_info("a", 8, 8, True), lin_info("b", 8, 3, True))
    res = match_graphs(pg, tg, p_l, t_l)
    assert {pp.paddle_param: pp.torch_param for pp in res.params} == {
        "w0": "c.weight", "b0": "c.bias", "w1": "a.weight", "b1": "a.bias", "w2": "b.weight", "b2": "b.bias"}
    assert not [u for u in res.unpaired if u.path in ("", "a", "b", "c")]
