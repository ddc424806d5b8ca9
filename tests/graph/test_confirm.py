"""Numeric confirmation of ties: settles what the structure cannot, restores the weights."""

from __future__ import annotations

import numpy as np
import pytest
from models import aligner_pairs as ap
from models.basic import mlp_pair
from test_suggest import assert_unchanged, precision_recall, snapshot

import padiff
from padiff.adapters import PADDLE, TORCH
from padiff.graph.confirm import confirm_ties
from padiff.graph.match import MatchResult, ProposedPair
from padiff.graph.suggest import layer_infos, suggest_layer_map
from padiff.layer_map import LayerMap
from padiff.maps.notes import MapNote, note_kind, notes_of


@pytest.fixture(scope="module")
def einsum_case() -> tuple[ap.Case, object, dict, dict]:
    case = ap.attention_einsum()
    before = snapshot(case.paddle, case.torch)
    lm = suggest_layer_map(case.paddle, case.torch, case.inputs)
    return case, lm, before, snapshot(case.paddle, case.torch)


def test_ties_from_different_decompositions_are_settled_numerically(einsum_case: tuple) -> None:
    case, lm, before, after = einsum_case
    assert lm.route == "graph"
    assert precision_recall(lm, case) == (1.0, 1.0)
    settled = {p.paddle_path for p in lm.pairs if any("settled numerically" in e for e in p.evidence)}
    assert {"q", "k"} <= settled
    assert any(n.startswith("settled numerically") for n in lm.notes)
    assert_unchanged(before, after)  # weights copied for the trial runs are restored exactly


def test_the_confirmations_notes_are_numeric_and_the_routes_are_not(einsum_case: tuple) -> None:
    _case, lm, _before, _after = einsum_case
    numeric = notes_of(lm.notes, "numeric")
    assert any(n.startswith("settled numerically") for n in numeric)
    assert all(note_kind(n) == "general" for n in lm.notes if n.startswith(("route:", "timings:")))


def test_the_report_lists_the_numeric_notes_by_kind_not_by_wording() -> None:
    layer, module, inp = mlp_pair()
    lm = LayerMap(notes=["route: manual (ids are numeric)", MapNote.numeric("order of the parts of a kept")])
    rep = padiff.compare(layer, module, inp, layer_map=lm, auto_weights=True)
    assert rep.settled_numerically == ["order of the parts of a kept"]


def test_a_wrong_structural_guess_is_re_paired_and_weights_restored() -> None:
    case = ap.attention()
    p_layers, t_layers = layer_infos(PADDLE, case.paddle), layer_infos(TORCH, case.torch)
    truth = dict(case.truth)
    wrong = dict(truth, q="key", k="query")  # a swap the structure might have made
    pairs = [ProposedPair(p, t, 0.4, ("tie: equal candidates",), True, uncertain=p in ("q", "k", "v"))
             for p, t in wrong.items()]
    case.paddle.train()
    before = snapshot(case.paddle, case.torch)
    result, notes = confirm_ties(case.paddle, case.torch, case.inputs, MatchResult(pairs, []), p_layers, t_layers)
    assert {p.paddle_path: p.torch_path for p in result.pairs} == truth
    assert any("re-paired" in n for n in notes), notes
    fixed = {p.paddle_path: p for p in result.pairs}
    assert not fixed["q"].uncertain and fixed["q"].confidence >= 0.9
    assert_unchanged(before, snapshot(case.paddle, case.torch))


def test_layers_and_blocks_called_with_keyword_tensors_only_are_settled_too() -> None:
    import paddle
    import torch

    class PBlock(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.one, self.two = paddle.nn.Linear(4, 4), paddle.nn.Linear(4, 4)

        def forward(self, x):
            return self.two(input=paddle.tanh(self.one(input=x)))

    class P(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.blk = PBlock()

        def forward(self, x):
            return self.blk(x=x)

    class TBlock(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.b(input=torch.tanh(self.a(input=x)))

    class T(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blk = TBlock()

        def forward(self, x):
            return self.blk(x=x)

    torch.manual_seed(0)
    p, t = P(), T()
    x = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    inputs = ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)})
    wrong = [ProposedPair("blk", "blk", 1.0, ("same class",), True),
             ProposedPair("blk.one", "blk.b", 0.4, ("tie: x",), True, True),
             ProposedPair("blk.two", "blk.a", 0.4, ("tie: x",), True, True)]
    result, notes = confirm_ties(p, t, inputs, MatchResult(wrong, []), layer_infos(PADDLE, p), layer_infos(TORCH, t))
    assert not any("not done" in n for n in notes), notes
    assert {pr.paddle_path: pr.torch_path for pr in result.pairs} == {"blk": "blk", "blk.one": "blk.a",
                                                                      "blk.two": "blk.b"}
    assert not any(pr.uncertain for pr in result.pairs)


def test_truly_symmetric_ties_are_reported_as_interchangeable() -> None:
    import paddle
    import torch

    class P(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.one = paddle.nn.Linear(4, 4)
            self.two = paddle.nn.Linear(4, 4)

        def forward(self, x):
            return self.one(x) + self.two(x)

    class T(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(4, 4)
            self.b = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x) + self.b(x)

    p, t = P(), T()
    inputs = ({"x": paddle.ones([2, 4])}, {"x": torch.ones(2, 4)})
    pairs = [ProposedPair("one", "a", 0.4, ("tie: x",), True, True), ProposedPair("two", "b", 0.4, ("tie: x",),
                                                                                  True, True)]
    result, notes = confirm_ties(p, t, inputs, MatchResult(pairs, []), layer_infos(PADDLE, p), layer_infos(TORCH, t))
    assert any("interchangeable" in n for n in notes), notes
    assert all(pr.uncertain for pr in result.pairs)


def _blocks_pair() -> tuple[object, object, dict, list[ProposedPair]]:
    """Two blocks (norm + fc) per side; the paddle port wires block 1's fc before block 0's (a bug)."""
    import paddle
    import torch

    class PB(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.norm = paddle.nn.LayerNorm(4)
            self.fc = paddle.nn.Linear(4, 4)

    class P(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = paddle.nn.LayerList([PB(), PB()])

        def forward(self, x):
            b0, b1 = self.blocks
            return b0.fc(b1.norm(b1.fc(b0.norm(x))))

    class TB(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = torch.nn.LayerNorm(4)
            self.fc = torch.nn.Linear(4, 4)

    class T(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleList([TB(), TB()])

        def forward(self, x):
            b0, b1 = self.blocks
            return b1.fc(b1.norm(b0.fc(b0.norm(x))))

    inputs = ({"x": paddle.ones([2, 4]) * paddle.arange(4, dtype="float32")},
              {"x": torch.ones(2, 4) * torch.arange(4, dtype=torch.float32)})
    pairs = [ProposedPair(f"blocks.{i}.norm", f"blocks.{i}.norm", 0.95, ("same op kind",), True) for i in (0, 1)]
    pairs += [ProposedPair(f"blocks.{i}.fc", f"blocks.{i}.fc", 0.4, ("tie: x",), True, True) for i in (0, 1)]
    return P(), T(), inputs, pairs


def test_numbers_do_not_move_a_layer_across_blocks_the_structure_separates() -> None:
    p, t, inputs, pairs = _blocks_pair()
    before = snapshot(p, t)
    result, notes = confirm_ties(p, t, inputs, MatchResult(pairs, []), layer_infos(PADDLE, p), layer_infos(TORCH, t))
    got = {pr.paddle_path: pr for pr in result.pairs}
    assert got["blocks.0.fc"].torch_path == "blocks.0.fc" and got["blocks.1.fc"].torch_path == "blocks.1.fc"
    assert got["blocks.0.fc"].uncertain and got["blocks.0.fc"].confidence < 0.8
    assert any("another block" in e for e in got["blocks.0.fc"].evidence)
    assert any("refused" in n for n in notes), notes
    assert_unchanged(before, snapshot(p, t))


def test_without_anchors_a_cross_block_re_pairing_is_low_confidence_and_says_why() -> None:
    p, t, inputs, pairs = _blocks_pair()
    pairs = [pr for pr in pairs if pr.paddle_path.endswith(".fc")]  # nothing confident around the fcs
    result, _ = confirm_ties(p, t, inputs, MatchResult(pairs, []), layer_infos(PADDLE, p), layer_infos(TORCH, t))
    got = {pr.paddle_path: pr for pr in result.pairs}
    assert got["blocks.1.fc"].torch_path == "blocks.0.fc"  # the numbers' choice, but flagged
    assert got["blocks.1.fc"].uncertain and got["blocks.1.fc"].confidence < 0.8
    assert any("no confidently paired neighbour" in e for e in got["blocks.1.fc"].evidence)


def test_confirmation_distance_compares_outputs_of_different_arity_on_their_common_prefix() -> None:
    """A block returning (hidden, router_logits) on one side and hidden on the other must still
    rank candidates by the hidden state (the eager comparison pairs the common prefix too);
    an inf here made every layout of a fused pair look equivalent."""
    import numpy as np

    from padiff.graph.confirm_local import distance

    h = np.ones((2, 3), np.float32)
    assert distance([[h, np.zeros(4, np.float32)]], [[h]]) == 0.0
    assert distance([[h * 2]], [[h, np.zeros(4, np.float32)]]) == pytest.approx(1.0)
    assert distance([[h]], [[np.ones((3, 2), np.float32)]]) == float("inf")
