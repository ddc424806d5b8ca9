"""Enclosing blocks on plain data: placed by the pairs around them, crossed blocks found, parents compared.

No frameworks, no graphs beyond hand-built units: milliseconds.
"""

from __future__ import annotations

from padiff.graph.blocks import compared_parents, crossed_blocks, enclosing_blocks
from padiff.graph.match import _moved_ops
from padiff.graph.proposal import Left, MatchResult, ProposedPair
from padiff.graph.units import LayerInfo, Unit


def _layers(side_experts: str, n_layers: int = 2) -> dict[str, LayerInfo]:
    """Decoder layers ``l.i`` each with a router ``l.i.moe.gate`` and an expert block ``l.i.moe.experts``."""
    out = {"": LayerInfo("", "Net", False)}
    for i in range(n_layers):
        out[f"l.{i}.moe.gate"] = LayerInfo(f"l.{i}.moe.gate", "Linear", True, ((8, 4),))
        if side_experts == "list":
            for e in range(2):
                out[f"l.{i}.moe.experts.{e}.fc"] = LayerInfo(f"l.{i}.moe.experts.{e}.fc", "Linear", True, ((8, 8),))
        else:
            out[f"l.{i}.moe.experts"] = LayerInfo(f"l.{i}.moe.experts", "Stack", True, ((2, 8, 8),))
    return out


P_LAYERS, T_LAYERS = _layers("list"), _layers("stack")
P_LEFT = {p for p in P_LAYERS if ".experts." in p}
T_LEFT = {t for t in T_LAYERS if t.endswith("experts")}


def test_equal_expert_blocks_of_two_layers_are_placed_by_the_pairs_around_them() -> None:
    routers = [(f"l.{i}.moe.gate", f"l.{i}.moe.gate") for i in range(2)]
    blocks = enclosing_blocks(P_LEFT, T_LEFT, routers, P_LAYERS, T_LAYERS)
    assert sorted((b.paddle_path, b.torch_path) for b in blocks) == [
        ("l.0.moe.experts", "l.0.moe.experts"), ("l.1.moe.experts", "l.1.moe.experts")]


def test_equal_blocks_nothing_tells_apart_are_not_guessed() -> None:
    assert enclosing_blocks(P_LEFT, T_LEFT, [], P_LAYERS, T_LAYERS) == []


def _result(pairs: list[tuple[str, str]], p_left: set[str], t_left: set[str]) -> MatchResult:
    return MatchResult([ProposedPair(p, t, 0.8, ()) for p, t in pairs],
                       [Left("paddle", p, "same kind, different shapes") for p in sorted(p_left)]
                       + [Left("torch", t, "no counterpart") for t in sorted(t_left)])


def test_a_block_a_pair_crosses_is_found_and_one_no_pair_crosses_is_left_to_the_usual_pass() -> None:
    p_layers = {**_layers("list", 1), "l.0.moe.shared": LayerInfo("l.0.moe.shared", "Linear", True, ((8, 8),))}
    t_layers = {**_layers("stack", 1), "l.0.moe.shared": LayerInfo("l.0.moe.shared", "Linear", True, ((8, 8),))}
    # the match paired one paddle expert with the torch shared expert (equal shapes): it crosses the expert block
    crossed = _result([("l.0.moe.gate", "l.0.moe.gate"), ("l.0.moe.experts.1.fc", "l.0.moe.shared")],
                      {"l.0.moe.experts.0.fc", "l.0.moe.shared"}, {"l.0.moe.experts"})
    assert [(b.paddle_path, b.torch_path) for b in crossed_blocks(crossed, p_layers, t_layers)] == [
        ("l.0.moe.experts", "l.0.moe.experts")]
    clean = _result([("l.0.moe.gate", "l.0.moe.gate"), ("l.0.moe.shared", "l.0.moe.shared")],
                    {"l.0.moe.experts.0.fc", "l.0.moe.experts.1.fc"}, {"l.0.moe.experts"})
    assert crossed_blocks(clean, p_layers, t_layers) == []


def test_a_block_whose_top_never_runs_gets_its_enclosing_pair_compared() -> None:
    pairs = [ProposedPair("l.0.moe.gate", "l.0.moe.gate", 0.9, ()),
             ProposedPair("l.0.moe.experts", "l.0.moe.experts", 0.5, (), opaque=True)]
    p_layers, t_layers = _layers("list", 1), _layers("stack", 1)
    own_t = {"l.0.moe.gate", "l.0.moe.experts"}
    parents = compared_parents(pairs, {"l.0.moe.gate", "l.0.moe.experts.0.fc"}, own_t, p_layers, t_layers)
    assert [(pr.paddle_path, pr.torch_path, pr.compare_output, pr.opaque) for pr in parents] == [
        ("l.0.moe", "l.0.moe", True, False)]
    assert "never called" in parents[0].evidence[0]
    # both tops run: the block pair is compared itself, nothing is added
    assert compared_parents(pairs, {"l.0.moe.gate", "l.0.moe.experts"}, own_t, p_layers, t_layers) == []


def _unit(uid: int, compute: set[str], down: tuple[str, ...]) -> Unit:
    return Unit(uid, "gate", 0, [uid], "MatMul", ((8, 4),), True, frozenset(compute), down=down)


def test_ops_one_layer_runs_inside_and_the_other_side_runs_after_it_make_a_weight_only_pair() -> None:
    router = _unit(0, {"MatMul", "Softmax", "Topk"}, ("@0>U:MatMul",))
    gate = _unit(1, {"MatMul"}, ("@0>Softmax@0>Topk@0>U:MatMul",))
    assert _moved_ops(router, gate) == {"Softmax", "Topk"}
    assert _moved_ops(gate, router) == set()
    # a different decomposition whose extra ops the other side does not run after it: outputs still compared
    norm_a = _unit(2, {"Mul", "Rsqrt", "AvgPool", "Pow"}, ("@0>U:MatMul",))
    norm_b = _unit(3, {"Mul", "Rsqrt", "AvgPool"}, ("@0>U:MatMul",))
    assert _moved_ops(norm_a, norm_b) == set()



def test_a_crossed_block_is_found_past_leaves_as_large_as_unrelated_leftovers_elsewhere() -> None:
    """Qwen3-MoE's shape: no shared expert, and the next layer's key/value projections hold as many elements as
    an expert's ``down``. The match paired one paddle expert ``down`` with the next layer's torch ``k``; the other
    experts' ``down`` Linears then fit the leftover torch ``v`` of both layers by size alone, which no pair around
    reaches: that must not stop the climb to the expert block the pair crosses."""
    p_layers: dict[str, LayerInfo] = {"": LayerInfo("", "Net", False)}
    t_layers: dict[str, LayerInfo] = {"": LayerInfo("", "Net", False)}
    for i in range(2):
        for table in (p_layers, t_layers):
            table[f"l.{i}.moe.gate"] = LayerInfo(f"l.{i}.moe.gate", "Linear", True, ((8, 2),))
        for e in range(2):
            for name, shape in (("up", (8, 16)), ("down", (16, 8))):
                path = f"l.{i}.moe.experts.{e}.{name}"
                p_layers[path] = LayerInfo(path, "Linear", True, (shape,))
        t_layers[f"l.{i}.moe.experts"] = LayerInfo(f"l.{i}.moe.experts", "Stack", True, ((2, 16, 8), (2, 8, 16)))
        for name, shape in (("q", (8, 8)), ("k", (16, 8)), ("v", (16, 8))):  # paddle fuses them: not in its table
            t_layers[f"l.{i}.attn.{name}"] = LayerInfo(f"l.{i}.attn.{name}", "Linear", True, (shape,))
    pairs = [("l.0.moe.gate", "l.0.moe.gate"), ("l.1.moe.gate", "l.1.moe.gate"),
             ("l.0.moe.experts.1.down", "l.1.attn.k")]
    p_left = {p for p in p_layers if ".experts." in p} - {"l.0.moe.experts.1.down"}
    t_left = {t for t in t_layers if t.endswith(("experts", "attn.q", "attn.k", "attn.v"))} - {"l.1.attn.k"}
    result = _result(pairs, p_left, t_left)
    assert [(b.paddle_path, b.torch_path) for b in crossed_blocks(result, p_layers, t_layers)] == [
        ("l.0.moe.experts", "l.0.moe.experts")]


def test_subtree_sizes_gives_every_subtree_numel_of_the_table_in_one_walk() -> None:
    from padiff.graph.blocks import _ancestors_or_self, numel, subtree_numel, subtree_sizes

    for layers in (P_LAYERS, T_LAYERS, _layers("list", 3)):
        sizes = subtree_sizes(layers)
        tops = {a for path in layers for a in _ancestors_or_self(path)}
        assert tops <= set(sizes)
        for top in tops | {"l.9", "l.0.moe.nothing"}:  # paths holding no layer hold 0 elements
            assert sizes.get(top, 0) == subtree_numel(layers, top), top
        assert sizes[""] == sum(numel(s) for info in layers.values() for s in info.shapes)
