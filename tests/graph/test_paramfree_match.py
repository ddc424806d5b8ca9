"""Parameter-free units are paired only where dataflow places them: hand-built graphs, no frameworks."""

from __future__ import annotations

from test_match import G, infos, lin_info, pairs_of

from padiff.graph.canonical import canonicalize
from padiff.graph.match import match_graphs


def _conv(b: G, layer: str, x: int | None, c_in: int, c_out: int) -> int:
    args = () if x is None else (x,)
    return b.op("Conv", layer, *args, params=((f"{layer}.w", (c_out, c_in, 3, 3)),))


def _conv_info(path: str, c_in: int, c_out: int) -> tuple[str, str, bool, tuple]:
    return path, "Conv2D", True, ((c_out, c_in, 3, 3),)


def _two_branches(b: G, pool_after: str) -> None:
    a = _conv(b, "c1", None, 3, 4)
    c = _conv(b, "c2", None, 3, 5)
    if pool_after == "c1":
        a = b.op("MaxPool", "pool", a)
    else:
        c = b.op("MaxPool", "pool", c)
    _conv(b, "c3", b.op("Concat", "", a, c), 9, 2)


def test_a_pool_on_another_branch_is_not_paired() -> None:
    # paddle pools c1's branch, torch c2's: same op, same depth, same consumer (c3), so the
    # alignment puts them together, but the producers differ: not the same layer
    p, t = G(), G()
    _two_branches(p, "c1")
    _two_branches(t, "c2")
    layers = infos(("", "N", False, ()), _conv_info("c1", 3, 4), _conv_info("c2", 3, 5),
                   ("pool", "MaxPool2D", True, ()), _conv_info("c3", 9, 2))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), layers, layers)
    assert pairs_of(res) == {"c1": "c1", "c2": "c2", "c3": "c3"}
    reasons = {(u.side, u.path): u.reason for u in res.unpaired}
    assert "not between the same paired neighbours" in reasons[("paddle", "pool")]
    assert "not between the same paired neighbours" in reasons[("torch", "pool")]


def test_an_activation_before_a_pool_that_is_a_function_on_the_other_side_is_paired() -> None:
    # the paddle ReLU's consumer is a pooling layer, the torch one's a functional pool: the
    # unpaired pooling unit is looked through to the paired fc behind it
    p, t = G(), G()
    h = p.op("Relu", "act", _conv(p, "c1", None, 3, 4))
    p.linear("fc", p.op("GlobalAveragePool", "pool", h), 4, 2)
    k = t.op("Relu", "relu", _conv(t, "c1", None, 3, 4))
    t.linear("fc", t.op("GlobalAveragePool", "", k), 4, 2, gemm=True)
    p_l = infos(("", "N", False, ()), _conv_info("c1", 3, 4), ("act", "ReLU", True, ()),
                ("pool", "AdaptiveAvgPool2D", True, ()), lin_info("fc", 4, 2, False))
    t_l = infos(("", "N", False, ()), _conv_info("c1", 3, 4), ("relu", "ReLU", True, ()), lin_info("fc", 4, 2, True))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    assert pairs_of(res) == {"c1": "c1", "act": "relu", "fc": "fc"}


def test_a_pool_between_the_same_paired_neighbours_is_paired() -> None:
    p, t = G(), G()
    h = _conv(p, "c1", None, 3, 4)
    h = p.op("MaxPool", "pool", h)
    _conv(p, "c2", h, 4, 5)
    k = _conv(t, "a", None, 3, 4)
    k = t.op("MaxPool", "mp", k)
    _conv(t, "b", k, 4, 5)
    p_l = infos(("", "N", False, ()), _conv_info("c1", 3, 4), ("pool", "MaxPool2D", True, ()),
                _conv_info("c2", 4, 5))
    t_l = infos(("", "N", False, ()), _conv_info("a", 3, 4), ("mp", "MaxPool2d", True, ()), _conv_info("b", 4, 5))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    assert pairs_of(res) == {"c1": "a", "pool": "mp", "c2": "b"}


def test_one_relu_called_twice_against_two_relus_is_left_to_the_engine_once_each() -> None:
    p, t = G(), G()
    x = p.op("Tanh", "pre")
    h = p.linear("fc1", x, 4, 8)
    h = p.op("Relu", "act", h, call=0)
    h = p.linear("fc2", h, 8, 6)
    p.op("Relu", "act", h, call=1)
    y = t.op("Tanh", "pre")
    k = t.linear("fc1", y, 4, 8, gemm=True)
    k = t.op("Relu", "relu1", k)
    k = t.linear("fc2", k, 8, 6, gemm=True)
    t.op("Relu", "relu2", k)
    p_l = infos(("", "N", False, ()), ("pre", "Tanh", True, ()), lin_info("fc1", 4, 8, False),
                ("act", "ReLU", True, ()), lin_info("fc2", 8, 6, False))
    t_l = infos(("", "N", False, ()), ("pre", "Tanh", True, ()), lin_info("fc1", 4, 8, True),
                ("relu1", "ReLU", True, ()), lin_info("fc2", 8, 6, True), ("relu2", "ReLU", True, ()))
    res = match_graphs(canonicalize(p.g), canonicalize(t.g), p_l, t_l)
    assert pairs_of(res) == {"pre": "pre", "fc1": "fc1", "fc2": "fc2"}
    listed = [(u.side, u.path) for u in res.unpaired]
    assert len(listed) == len(set(listed))  # no layer listed twice
    reasons = dict(zip(listed, (u.reason for u in res.unpaired)))
    assert "several torch layers" in reasons[("paddle", "act")]
    assert "engine pairs its calls" in reasons[("paddle", "act")]
    assert {("torch", "relu1"), ("torch", "relu2")} <= set(listed)


def test_structure_route_keeps_a_dropout_only_between_the_same_paired_layers() -> None:
    from padiff.graph.tree import match_trees

    p_l = infos(("", "N", False, ()), lin_info("embed", 8, 16, False), ("pos_drop", "Dropout", True, ()),
                lin_info("fc", 16, 32, False), ("drop", "Dropout", True, ()), ("act", "GELU", True, ()),
                lin_info("head", 32, 4, False))
    # torch defines pos_drop last: class and definition order alone pair it with paddle's drop
    t_l = infos(("", "N", False, ()), lin_info("embed", 8, 16, True), lin_info("fc", 16, 32, True),
                ("drop_a", "Dropout", True, ()), ("gelu", "GELU", True, ()), lin_info("head", 32, 4, True),
                ("pos_drop", "Dropout", True, ()))
    res = match_trees(p_l, t_l)
    pairs = pairs_of(res)
    assert pairs["fc"] == "fc" and pairs["head"] == "head"
    assert "pos_drop" not in pairs and "pos_drop" not in pairs.values()
    assert pairs["drop"] == "drop_a" and pairs["act"] == "gelu"  # between fc and head on both sides
    reasons = {(u.side, u.path): u.reason for u in res.unpaired}
    assert "same paired neighbours" in reasons[("paddle", "pos_drop")]
    assert "same paired neighbours" in reasons[("torch", "pos_drop")]
