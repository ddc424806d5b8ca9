"""The real-pairs referee itself (fast, default suite): scoring rules and the reorder helper."""

from __future__ import annotations

from .handcopy import Entry, reverse_definition_order, truth_pairs
from .pairs_convert import finish_by_hand
from .score import attribute_state, attributes_changed, pair_is_correct, score_pairs

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


def test_attribute_check_sees_an_added_a_rebound_and_a_changed_value() -> None:
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    before = attribute_state(net)
    assert attributes_changed(before, attribute_state(net), "torch") == ""
    net[1].eps = 0.5
    assert attributes_changed(before, attribute_state(net), "torch") == "torch 1.eps: changed"
    net[1].eps = 1e-5
    net[0].cache = 1
    assert attributes_changed(before, attribute_state(net), "torch") == "torch 0.cache: added"
    del net[0].cache
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert attributes_changed(before, attribute_state(net), "torch") == "torch 0.<value weight>: changed"


def test_finishing_a_conversion_fixes_hints_and_dropped_imports_but_keeps_real_work_marked() -> None:
    text = ("try:\n    pass\nexcept ImportError:\n\n    def f(c, m):\n        assert c, m\n"
            "try:\n    pass\nexcept ImportError:\nx = 1\n"
            ">>>>>>    fused: torch.jit.Final[bool]\n"
            ">>>>>>        self.bn = torch.nn.BatchNorm2d(c, **dd)\n"
            "ok = hasattr(torch.nn.functional, 'silu')\n"
            "kw = {**dd, **kw or {}}\n")
    out = finish_by_hand(text)
    assert "if True:" in out and "    def f(c, m):" in out  # the fallback is defined
    assert "pass  # the converter dropped a torch import and its torch fallback\nx = 1" in out
    assert "    fused: bool" in out
    assert ">>>>>>        self.bn = torch.nn.BatchNorm2d(c, **dd)" in out  # real work stays marked
    assert "hasattr(paddle.nn.functional, 'silu')" in out and "**(kw or {})" in out
