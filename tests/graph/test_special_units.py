"""Special-init units (MultiHeadAttention, LSTM) are paired by dataflow inside the proposal itself.

So suggest -> save -> load -> run gives what ``layer_map="auto"`` gives, a torch port that
defines its attention layers in another order is not swapped, and only the frameworks' own
classes count as special (another library's class of the same name does not).
"""

from __future__ import annotations

import paddle.nn as pnn
import pytest
import torch.nn as tnn
from models import fused_pairs as fp

import padiff
from padiff.graph.match import Left, MatchResult, ProposedPair
from padiff.graph.special_units import pair_special_units
from padiff.layer_map import LayerMap
from padiff.weights.special_init import is_special, is_unit

TOL = {"atol": 1e-5, "rtol": 1e-4}
UNITS = {("self_attn", "self_attn"), ("cross_attn", "cross_attn"), ("rnn", "lstm")}


@pytest.mark.parametrize("reverse", [False, True])
def test_the_proposal_holds_the_special_units_paired_by_dataflow(reverse: bool) -> None:
    case = fp.decoder(reverse)
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    assert {(p.paddle_path, p.torch_path) for p in lm.pairs if p.opaque} == UNITS
    assert not lm.unpaired


@pytest.mark.parametrize("reverse", [False, True])
def test_correct_decoder_agrees_and_a_fault_is_named_at_its_unit(reverse: bool) -> None:
    case = fp.decoder(reverse)
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is True
    handle = case.torch.self_attn.register_forward_hook(lambda _m, _i, out: (out[0] * 1.05, *out[1:]))
    try:
        rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=TOL)
    finally:
        handle.remove()
    assert not bool(rep)
    assert (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == \
        ("forward", "self_attn", "self_attn")


def test_saved_and_loaded_proposal_equals_auto(tmp_path: object) -> None:
    case = fp.decoder(reverse=True)
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    path = f"{tmp_path}/map.json"
    lm.save(path, case.paddle, case.torch)
    loaded = LayerMap.load(path, case.paddle, case.torch)
    rep_file = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=loaded, options=TOL)
    rep_auto = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=TOL)
    assert bool(rep_file) and bool(rep_auto)
    key = [(r.stage, r.paddle_path, r.torch_path, r.item) for r in rep_file.records]
    assert key == [(r.stage, r.paddle_path, r.torch_path, r.item) for r in rep_auto.records]


def test_a_real_difference_in_a_special_unit_still_fails() -> None:
    case = fp.decoder(lstm_bias=False)  # torch's LSTM has no biases: its tensors differ from paddle's
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is False


def test_units_follow_the_pairs_inside_them_not_definition_order() -> None:
    inside = [ProposedPair("a1.out", "b2.out", 0.9, ()), ProposedPair("a2.out", "b1.out", 0.9, ()),
              ProposedPair("head", "head", 1.0, ())]
    result = MatchResult(inside, [Left("paddle", "a1.q", "x"), Left("paddle", "c", "y")])
    got = pair_special_units(result, ["a1", "a2", "c"], ["b1", "b2", "d"], lambda p, t: True)
    units = {(p.paddle_path, p.torch_path): p for p in got.pairs if p.opaque}
    assert set(units) == {("a1", "b2"), ("a2", "b1"), ("c", "d")}
    assert units[("c", "d")].confidence < 0.5 and "definition order" in units[("c", "d")].evidence[0]
    assert [(p.paddle_path, p.torch_path) for p in got.pairs if not p.opaque] == [("head", "head")]
    assert got.unpaired == []


def test_incompatible_units_are_not_paired() -> None:
    result = MatchResult([ProposedPair("a.out", "b.out", 0.9, ())], [])
    got = pair_special_units(result, ["a"], ["b"], lambda p, t: False)
    assert [(p.paddle_path, p.torch_path, p.opaque) for p in got.pairs] == [("a.out", "b.out", False)]


class MultiHeadAttention(pnn.Layer):  # another library's class with paddle's class name
    def __init__(self) -> None:
        super().__init__()
        self.qkv = pnn.Linear(4, 12)


class MultiheadAttention(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = tnn.Linear(4, 12)


class OwnMHA(pnn.MultiHeadAttention):
    pass


def test_special_inits_are_chosen_by_class_identity_not_name() -> None:
    assert not is_special(MultiHeadAttention(), 0) and not is_unit(MultiHeadAttention(), 0)
    assert not is_special(MultiheadAttention(), 1)
    assert is_unit(pnn.MultiHeadAttention(4, 2), 0) and is_unit(OwnMHA(4, 2), 0)
    assert is_unit(tnn.MultiheadAttention(4, 2), 1)
    # a same-named class pairs its tensors one by one, without the attention special init
    assert padiff.assign_weight(MultiHeadAttention(), MultiheadAttention()) is True
