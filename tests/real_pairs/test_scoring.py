"""The real-pairs referee itself (fast, default suite): scoring rules and the reorder helper."""

from __future__ import annotations

from .handcopy import Entry, reverse_definition_order, truth_pairs
from .score import pair_is_correct, score_pairs

TRUTH = truth_pairs([
    Entry("attn.q_proj.weight", ("attn.in_proj_weight",)),
    Entry("attn.k_proj.weight", ("attn.in_proj_weight",)),
    Entry("attn.out_proj.weight", ("attn.out_proj.weight",)),
    Entry("fc1.weight", ("lin_a.weight",)),
    Entry("fc2.weight", ("lin_b.weight",)),
])


def test_truth_is_the_owners_of_the_copied_tensors() -> None:
    assert ("attn.q_proj", "attn") in TRUTH and ("fc1", "lin_a") in TRUTH and len(TRUTH) == 5


def test_a_fused_side_and_an_opaque_top_are_right_a_swap_is_wrong() -> None:
    assert pair_is_correct("attn.q_proj", "attn", TRUTH)
    assert pair_is_correct("attn", "attn", TRUTH)
    assert not pair_is_correct("fc1", "lin_b", TRUTH)
    assert not pair_is_correct("attn.q_proj", "attn.out_proj", TRUTH)


def test_scores_count_leaf_pairs_recall_and_wrong_parameter_free_pairs() -> None:
    s = score_pairs([("fc1", "lin_a", False), ("fc2", "lin_a", False), ("drop1", "drop2", False),
                     ("drop2", "drop2", False), ("", "", False)], TRUTH, lambda p: p)
    assert (s.considered, s.correct, s.free_pairs, s.free_wrong) == (2, 1, 2, 1)
    assert s.recall == 1 / 5 and s.precision == 0.5


def test_reverse_definition_order_keeps_forward_and_sequential_order() -> None:
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(3, 4)
            self.b = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    net = Net()
    x = torch.randn(2, 3)
    before = net(x)
    reverse_definition_order(net)
    assert list(net._modules) == ["b", "a"] and list(net.b._modules) == ["0", "1"]
    assert torch.equal(net(x), before)


def test_parameter_pairs_count_as_leaf_pairs_right_only_for_the_copied_tensor() -> None:
    truth = truth_pairs([Entry("conv0.weight", ("conv1.weight",)), Entry("fc_weight", ("fc.weight",)),
                         Entry("fc_bias", ("fc.bias",))])
    params = {("fc_weight", "fc.weight"), ("fc_bias", "fc.bias")}
    s = score_pairs([("conv0", "conv1", False)], truth, lambda p: p, [("fc_weight", "fc.weight")], params)
    assert (s.considered, s.correct, s.recall) == (2, 2, 1.0)
    s = score_pairs([("conv0", "conv1", False)], truth, lambda p: p, [("fc_weight", "fc.bias")], params)
    assert (s.considered, s.correct, s.recall) == (2, 1, 0.5) and s.wrong == ("param fc_weight <-> fc.bias",)


def test_a_fused_pair_is_scored_by_all_its_parts() -> None:
    truth = truth_pairs([Entry("qkv.weight", ("q.weight", "k.weight", "v.weight")), Entry("o.weight", ("o.weight",))])
    s = score_pairs([("qkv", ("q", "k", "v"), False), ("o", "o", False)], truth, lambda p: p)
    assert (s.considered, s.correct, s.recall) == (2, 2, 1.0)
    assert pair_is_correct("qkv", ("q", "k", "v"), truth) and not pair_is_correct("qkv", "q", truth)
    assert not pair_is_correct("qkv", ("q", "k", "o"), truth)
