"""Parameter-free pairs must sit in corresponding blocks (README "Confidence").

Two blocks of ``fc1 -> act -> fc2`` on each side. The paddle port calls block 1's activation
module inside block 0 and block 0's inside block 1 (equivalent models: both are the same
function). The graph puts paddle ``blocks.1.act`` between the partners of torch block 0's Linears,
where torch ``blocks.0.act`` sits: "2/2 graph neighbours agree", yet the partner is in another
block. Such a pair must not be proposed at confidence >= 0.9.
"""

from __future__ import annotations

import numpy as np
import paddle
import torch

import padiff
from padiff.graph.free_blocks import crossed_free_pairs
from padiff.graph.proposal import ProposedPair

TOL = {"atol": 1e-5, "rtol": 1e-4}
D = 6


class PBlock(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = paddle.nn.Linear(D, 2 * D), paddle.nn.ReLU(), paddle.nn.Linear(2 * D, D)

    def forward(self, x, act):
        return x + self.fc2(act(self.fc1(x)))


class PNet(paddle.nn.Layer):
    """Each block applies the other block's activation layer (``crossed``), or its own."""

    def __init__(self, crossed: bool = True) -> None:
        super().__init__()
        self.blocks = paddle.nn.LayerList([PBlock() for _ in range(2)])
        self.crossed = crossed

    def forward(self, x):
        for i, b in enumerate(self.blocks):
            x = b(x, self.blocks[1 - i].act if self.crossed else b.act)
        return x


class TBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = torch.nn.Linear(D, 2 * D), torch.nn.ReLU(), torch.nn.Linear(2 * D, D)

    def forward(self, x, act):
        return x + self.fc2(act(self.fc1(x)))


class TNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([TBlock() for _ in range(2)])

    def forward(self, x):
        for b in self.blocks:
            x = b(x, b.act)
        return x


def _inputs() -> tuple[dict, dict]:
    x = np.random.default_rng(0).standard_normal((3, D)).astype("float32")
    return {"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)}


def _act_pairs(lm: padiff.LayerMap) -> list[padiff.LayerPair]:
    return [p for p in lm.pairs if p.paddle_path.endswith("act") or p.torch_path.endswith("act")]


def test_an_activation_whose_partner_is_in_another_block_is_not_paired_with_confidence():
    lm = padiff.suggest_layer_map(PNet(), TNet(), _inputs())
    crossed = [p for p in _act_pairs(lm) if p.paddle_path.split(".")[1] != p.torch_path.split(".")[1]]
    assert not [p for p in crossed if p.confidence >= 0.9], crossed
    assert padiff.auto_diff(PNet(), TNet(), _inputs(), auto_weights=True, layer_map="auto", options=TOL) is True


def test_activations_in_their_own_blocks_are_still_paired():
    lm = padiff.suggest_layer_map(PNet(crossed=False), TNet(), _inputs())
    pairs = {(p.paddle_path, p.torch_path) for p in _act_pairs(lm) if p.confidence >= 0.9}
    assert pairs == {("blocks.0.act", "blocks.0.act"), ("blocks.1.act", "blocks.1.act")}, _act_pairs(lm)


def _pair(p: str, t: str) -> ProposedPair:
    return ProposedPair(p, t, 1.0, ("x",), True)


def test_the_block_rule_on_hand_made_pairs():
    anchors = [_pair("layers.0.mlp.fc1", "h.0.mlp.c_fc"), _pair("layers.0.mlp.fc2", "h.0.mlp.c_proj"),
               _pair("layers.1.mlp.fc1", "h.1.mlp.c_fc"), _pair("layers.1.mlp.fc2", "h.1.mlp.c_proj")]
    across = _pair("layers.0.mlp.act", "h.1.mlp.act")
    higher = _pair("layers.0.mlp.act", "h.0.act")  # the torch port keeps it one level up: not flagged
    assert set(crossed_free_pairs([*anchors, across], {"layers.0.mlp.act"})) == {"layers.0.mlp.act"}
    assert crossed_free_pairs([*anchors, higher], {"layers.0.mlp.act"}) == {}
    assert crossed_free_pairs([across], {"layers.0.mlp.act"}) == {}  # nothing around it: no verdict
