"""A norm holding only its identity scale/bias on one side, the same norm holding none on the other: paired."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

import padiff

E = 8


def _pd_norm(affine: bool) -> paddle.nn.LayerNorm:
    return paddle.nn.LayerNorm(E) if affine else paddle.nn.LayerNorm(E, weight_attr=False, bias_attr=False)


class PdBlock(paddle.nn.Layer):
    def __init__(self, affine: bool) -> None:
        super().__init__()
        self.norm = _pd_norm(affine)
        self.fc1 = paddle.nn.Linear(E, 2 * E)
        self.act = paddle.nn.GELU()
        self.fc2 = paddle.nn.Linear(2 * E, E)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class PdNet(paddle.nn.Layer):
    def __init__(self, affine: bool) -> None:
        super().__init__()
        self.stem = paddle.nn.Linear(E, E)
        self.blocks = paddle.nn.LayerList([PdBlock(affine) for _ in range(2)])
        self.norm = _pd_norm(affine)
        self.head = paddle.nn.Linear(E, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x))


class PtBlock(torch.nn.Module):
    def __init__(self, affine: bool) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(E, elementwise_affine=affine)
        self.fc1 = torch.nn.Linear(E, 2 * E)
        self.act = torch.nn.GELU()
        self.fc2 = torch.nn.Linear(2 * E, E)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class PtNet(torch.nn.Module):
    def __init__(self, affine: bool) -> None:
        super().__init__()
        self.stem = torch.nn.Linear(E, E)
        self.blocks = torch.nn.ModuleList([PtBlock(affine) for _ in range(2)])
        self.norm = torch.nn.LayerNorm(E, elementwise_affine=affine)
        self.head = torch.nn.Linear(E, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x))


def _inputs() -> tuple[dict, dict]:
    x = np.random.default_rng(0).standard_normal((4, E)).astype(np.float32)
    return {"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x.copy())}


NORMS = ["blocks.0.norm", "blocks.1.norm", "norm"]


@pytest.mark.parametrize("paddle_affine", [True, False], ids=["paddle-affine", "torch-affine"])
def test_the_norms_pair_across_the_identity_convention(paddle_affine: bool) -> None:
    layer, module = PdNet(paddle_affine), PtNet(not paddle_affine)
    lm = padiff.suggest_layer_map(layer, module, _inputs())
    pairs = {pr.paddle_path: (pr.torch_path, pr.confidence) for pr in lm.pairs}
    for n in NORMS:
        assert pairs.get(n, ("",))[0] == n, (n, pairs, [(u.side, u.path, u.reason) for u in lm.unpaired])
    # the other pairs stay right, the parameter-free GELUs too
    for p, (t, _) in pairs.items():
        assert p == t, (p, t)
    assert all(f"blocks.{i}.act" in pairs for i in range(2)), pairs
    assert all(pairs[n][1] >= 0.9 for n in NORMS), pairs


@pytest.mark.parametrize("paddle_affine", [True, False], ids=["paddle-affine", "torch-affine"])
def test_auto_diff_compares_the_norms_and_names_one_with_another_epsilon(paddle_affine: bool) -> None:
    layer, module = PdNet(paddle_affine), PtNet(not paddle_affine)
    opts = {"atol": 1e-5, "rtol": 1e-4}
    rep = padiff.compare(layer, module, _inputs(), auto_weights=True, layer_map="auto", options=opts)
    assert rep, rep.first_diff
    assert any(r.stage == "forward" and (r.paddle_path, r.torch_path) == ("blocks.1.norm", "blocks.1.norm")
               for r in rep.records)
    layer, module = PdNet(paddle_affine), PtNet(not paddle_affine)
    module.blocks[1].norm.eps = 1e-1  # a fault in an affine-free or affine norm
    rep = padiff.compare(layer, module, _inputs(), auto_weights=True, layer_map="auto", options=opts)
    assert not rep
    first = rep.first_diff
    assert (first.stage, first.paddle_path, first.torch_path) == ("forward", "blocks.1.norm", "blocks.1.norm"), first


def test_two_vector_parameter_units_of_one_kind_stay_unpaired_when_placement_is_ambiguous() -> None:
    """The rule needs one candidate on each side: a unit graph with two equally placed candidates pairs none."""
    import networkx as nx

    from padiff.graph.identity_affine import identity_affine_pairs
    from padiff.graph.units import Unit, UnitGraph

    def ug(has: bool) -> UnitGraph:
        shapes = ((E,),) if has else ()
        units = [Unit(i, f"n{i}", 0, [i], "LayerNormalization", shapes, has) for i in range(2)]
        g = nx.DiGraph()
        g.add_nodes_from((0, 1))
        return UnitGraph(units, g)

    always = lambda *a: True  # noqa: E731
    assert identity_affine_pairs([], ug(True), ug(False), frozenset(), frozenset(), always) == []
    one_p = UnitGraph(ug(True).units[:1], nx.DiGraph())
    one_p.graph.add_node(0)
    one_t = UnitGraph(ug(False).units[:1], nx.DiGraph())
    one_t.graph.add_node(0)
    assert identity_affine_pairs([], one_p, one_t, frozenset(), frozenset(), always) == [(0, 0)]
    # a matrix-holding unit (a Linear) is never paired this way
    lin = UnitGraph([Unit(0, "n0", 0, [0], "LayerNormalization", ((E, E),), True)], one_p.graph)
    assert identity_affine_pairs([], lin, one_t, frozenset(), frozenset(), always) == []
