"""``assign_weight``: success, failure without side effects, messages, and classic porting cases."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch
from models.special_pairs import (
    PaddleAttnBlock,
    PaddleConvBN,
    PaddleEmbLSTM,
    PaddleSeqLN,
    PaddleWithNop,
    TorchAttnBlock,
    TorchConvBN,
    TorchEmbLSTM,
    TorchFlatLN,
    TorchNoNop,
    paddle_values,
    perturb_paddle,
    rand,
    run_and_check,
)

import padiff
from padiff.errors import InputError, MappingError, WeightAssignError
from padiff.layer_map import LayerMap
from padiff.weights.assign import copy_weights
from padiff.weights.assign_plan import plan_weights
from padiff.weights.special_init import add_special_init, unregister


def _unchanged(before, layer):
    after = paddle_values(layer)
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)


# --- success -----------------------------------------------------------------------------------------
def test_success_makes_outputs_equal():
    layer, module = PaddleWithNop(), TorchNoNop()
    x = rand(3, 4)
    assert not np.allclose(layer(paddle.to_tensor(x)).numpy(), module(torch.tensor(x)).detach().numpy())
    assert padiff.assign_weight(layer, module) is True
    run_and_check(layer, module, [x])


def test_sequential_linear_layernorm_linear_vs_flat():
    layer, module = PaddleSeqLN(), TorchFlatLN()
    assert padiff.assign_weight(layer, module)
    run_and_check(layer, module, [rand(2, 6)])


def test_embedding_lstm_with_a_dict_map_on_the_lstm():
    layer, module = PaddleEmbLSTM(bidirect=True, layers=2), TorchEmbLSTM(bidirect=True, layers=2)
    lm = {layer.lstm: module.lstm}
    assert padiff.assign_weight(layer, module, layer_map=lm)
    ids = np.random.default_rng(0).integers(0, 20, (2, 7))
    po = layer(paddle.to_tensor(ids)).numpy()
    to = module(torch.tensor(ids)).detach().numpy()
    np.testing.assert_allclose(po, to, atol=1e-5)
    # embedding weights were copied as they are, not transposed
    np.testing.assert_array_equal(layer.emb.weight.numpy(), module.emb.weight.detach().numpy())


def test_mha_with_a_layermap_object():
    layer, module = PaddleAttnBlock(), TorchAttnBlock()
    lm = LayerMap()
    lm.map = {layer.attn: module.attn}
    assert padiff.assign_weight(layer, module, lm)
    run_and_check(layer, module, [rand(2, 5, 8, seed=1), rand(2, 5, 8, seed=2), rand(2, 5, 8, seed=3)],
                  layer_map=lm)


def test_mha_without_a_map_pairs_as_one_unit():
    """A layer with a special init is one unit in definition order: no map needed for MHA."""
    layer, module = PaddleAttnBlock(), TorchAttnBlock()
    assert padiff.assign_weight(layer, module)
    plans = plan_weights(layer, module, LayerMap().resolve(layer, module))
    assert [(p.paddle_path, p.torch_path) for p in plans] == [("inp", "inp"), ("attn", "attn"), ("out", "out")]
    run_and_check(layer, module, [rand(2, 5, 8, seed=1)] * 3, layer_map=LayerMap().auto(layer, module))


def test_lstm_with_projection_inside_a_model_without_a_map():
    """paddle keeps some proj-LSTM tensors in its cells: the LSTM unit still covers them all."""
    layer, module = PaddleEmbLSTM(), TorchEmbLSTM()
    layer.lstm = paddle.nn.LSTM(6, 7, num_layers=2, proj_size=5)
    module.lstm = torch.nn.LSTM(6, 7, num_layers=2, proj_size=5, batch_first=True)
    assert padiff.assign_weight(layer, module)
    ids = np.random.default_rng(0).integers(0, 20, (2, 7))
    np.testing.assert_allclose(layer(paddle.to_tensor(ids)).numpy(), module(torch.tensor(ids)).detach().numpy(),
                               atol=1e-5)


def test_nop_layer_is_passed_over():
    layer, module = PaddleWithNop(), TorchNoNop()
    plans = plan_weights(layer, module, LayerMap().resolve(layer, module))
    assert [(p.paddle_path, p.torch_path) for p in plans] == [("fc1", "fc1"), ("fc2", "fc2")]


def test_conv_bn_eval_with_a_map_on_the_bn():
    layer, module = PaddleConvBN(), TorchConvBN()
    layer.eval()
    module.eval()
    assert padiff.assign_weight(layer, module, {layer.bn: module.norm})
    np.testing.assert_array_equal(layer.bn._variance.numpy(), module.norm.running_var.numpy())
    run_and_check(layer, module, [rand(2, 3, 5, 5)], layer_map={layer.bn: module.norm}, atol=1e-4)


def test_layer_map_auto_string_uses_the_structural_proposal():
    layer, module = PaddleSeqLN(), TorchFlatLN()
    assert padiff.assign_weight(layer, module, layer_map="auto")
    run_and_check(layer, module, [rand(2, 6)])


def test_ignored_layer_is_not_written():
    layer, module = PaddleWithNop(), TorchNoNop()
    extra = paddle.nn.Linear(2, 2)
    layer.add_sublayer("extra", extra)
    before = extra.weight.numpy().copy()
    assert padiff.assign_weight(layer, module) is False  # extra has no counterpart
    lm = LayerMap()
    lm.ignore(layer.extra)
    assert padiff.assign_weight(layer, module, lm)
    np.testing.assert_array_equal(extra.weight.numpy(), before)


# --- failure -----------------------------------------------------------------------------------------
def test_failure_returns_false_leaves_paddle_unchanged_and_explains(capsys):
    layer, module = PaddleWithNop(), TorchNoNop(hidden=7)
    before = paddle_values(layer)
    assert padiff.assign_weight(layer, module) is False
    _unchanged(before, layer)
    err = capsys.readouterr().err
    assert "paddle: fc1 (Linear)  weight[4, 6], bias[6]" in err
    assert "torch : fc1 (Linear)  weight[7, 4], bias[7]" in err
    assert "PaddleWithNop" in err and "TorchNoNop" in err  # both trees, root class shown
    assert "fc1 (Linear)  <--- *** HERE ***" in err
    assert "nop (Nop)  (skip)" in err
    assert "definition order" in err and "add_special_init" in err and 'layer_map="auto"' in err


def test_failure_is_structured():
    layer, module = PaddleWithNop(), TorchNoNop(hidden=7)
    with pytest.raises(WeightAssignError) as info:
        plan_weights(layer, module, LayerMap().resolve(layer, module))
    e = info.value
    assert (e.paddle_path, e.torch_path, e.paddle_class, e.torch_class) == ("fc1", "fc1", "Linear", "Linear")
    assert e.paddle_shapes == {"weight": (4, 6), "bias": (6,)}
    assert e.torch_shapes == {"weight": (7, 4), "bias": (7,)}
    assert "<--- *** HERE ***" in e.paddle_tree and e.hints


def test_failure_on_a_later_layer_marks_earlier_pairs(capsys):
    layer, module = PaddleWithNop(), TorchNoNop()
    module.fc2 = torch.nn.Linear(6, 3)
    before = paddle_values(layer)
    assert padiff.assign_weight(layer, module) is False
    _unchanged(before, layer)
    err = capsys.readouterr().err
    assert "fc1 (Linear)  [paired with fc1]" in err and "fc2 (Linear)  <--- *** HERE ***" in err


def test_count_mismatch_says_which_layer_has_no_counterpart(capsys):
    layer, module = PaddleSeqLN(), TorchFlatLN()
    module.extra = torch.nn.Linear(3, 3)
    assert padiff.assign_weight(layer, module) is False
    err = capsys.readouterr().err
    assert "torch extra (Linear) has no paddle counterpart" in err
    assert "paddle: (no layer left to pair)" in err


def test_copy_failure_midway_restores_everything():
    """A special init that raises after earlier pairs were written: all paddle tensors come back."""
    layer, module = PaddleWithNop(), TorchNoNop()
    perturb_paddle(layer)
    before = paddle_values(layer)

    def broken(p_layer, t_layer):
        p_layer.weight.set_value(np.zeros(p_layer.weight.shape, dtype="float32"))
        raise RuntimeError("boom")

    class Boom(paddle.nn.Linear):
        pass

    layer.fc2.__class__ = Boom
    add_special_init(paddle_name="Boom", torch_name="Linear", func=broken)
    try:
        resolved = LayerMap().resolve(layer, module)
        plans = plan_weights(layer, module, resolved)
        with pytest.raises(WeightAssignError, match="boom") as info:
            copy_weights(layer, module, plans)
        assert info.value.paddle_path == "fc2"
        _unchanged(before, layer)
        assert padiff.assign_weight(layer, module) is False
        _unchanged(before, layer)
    finally:
        unregister("Boom", "Linear")


def test_mapped_pair_without_special_init_or_fit_names_add_special_init(capsys):
    layer, module = PaddleWithNop(), TorchNoNop()
    lm = {layer.fc1: module.fc2}
    assert padiff.assign_weight(layer, module, lm) is False
    assert "add_special_init(paddle_name='Linear', torch_name='Linear'" in capsys.readouterr().err


# --- misuse ------------------------------------------------------------------------------------------
def test_swapped_models_raise_input_error():
    layer, module = PaddleWithNop(), TorchNoNop()
    with pytest.raises(InputError, match="swapped"):
        padiff.assign_weight(module, layer)


def test_non_models_raise_input_error():
    with pytest.raises(InputError):
        padiff.assign_weight(object(), TorchNoNop())


def test_map_entry_outside_the_models_is_a_mapping_error():
    layer, module = PaddleWithNop(), TorchNoNop()
    with pytest.raises(MappingError):
        padiff.assign_weight(layer, module, {paddle.nn.Linear(2, 2): module.fc1})


def test_bad_layer_map_string():
    layer, module = PaddleWithNop(), TorchNoNop()
    with pytest.raises(InputError, match="auto"):
        padiff.assign_weight(layer, module, "automatic")


# --- the classic cases through the engine (auto_diff / compare with auto_weights) ----------------------
def _inp(keys, *arrays):
    return ({k: paddle.to_tensor(a) for k, a in zip(keys, arrays)},
            {k: torch.tensor(a) for k, a in zip(keys, arrays)})


TOL = {"atol": 1e-5, "rtol": 1e-4}


def test_auto_diff_sequential_vs_flat():
    layer, module = PaddleSeqLN(), TorchFlatLN()
    assert padiff.auto_diff(layer, module, _inp(["x"], rand(2, 6)), auto_weights=True, options=TOL)


def test_auto_diff_nop_layer_passed_over():
    layer, module = PaddleWithNop(), TorchNoNop()
    assert padiff.auto_diff(layer, module, _inp(["x"], rand(2, 4)), auto_weights=True, options=TOL)


def test_auto_diff_mha_with_a_layermap_object():
    layer, module = PaddleAttnBlock(), TorchAttnBlock()
    lm = LayerMap()
    lm.map = {layer.attn: module.attn}
    rep = padiff.compare(layer, module, _inp(["x", "k", "v"], *(rand(2, 5, 8, seed=s) for s in (1, 2, 3))),
                         auto_weights=True, layer_map=lm, options=TOL)
    assert rep, rep.first_diff
    assert any("special init MultiHeadAttention<->MultiheadAttention" in c for c in rep.conversions)
    assert {r.stage for r in rep.records if r.paddle_path == "attn"} >= {"forward", "grad"}


def test_auto_diff_conv_bn_eval_with_a_map_on_the_bn():
    layer, module = PaddleConvBN(), TorchConvBN()
    layer.eval()
    module.eval()
    rep = padiff.compare(layer, module, _inp(["x"], rand(2, 3, 5, 5)), auto_weights=True,
                         layer_map={layer.bn: module.norm}, options={"atol": 1e-4, "rtol": 1e-4})
    assert rep, rep.first_diff


def test_compare_reports_the_inferred_split():
    from models.special_pairs import PaddleAttnWrap, TorchAttnWrap

    layer, module = PaddleAttnWrap(), TorchAttnWrap()
    rep = padiff.compare(layer, module, _inp(["x"], rand(2, 4, 6)), auto_weights=True,
                         layer_map={layer.attn: module.attention}, options=TOL)
    assert rep, rep.first_diff
    assert any("inferred split" in c for c in rep.conversions)


def test_auto_diff_embedding_lstm_with_a_dict_map():
    layer, module = PaddleEmbLSTM(), TorchEmbLSTM()
    ids = np.random.default_rng(0).integers(0, 20, (2, 7))
    rep = padiff.compare(layer, module, _inp(["ids"], ids), auto_weights=True,
                         layer_map={layer.lstm: module.lstm}, options=TOL)
    assert rep, rep.first_diff


def test_failure_next_to_a_special_layer_points_at_its_special_init(capsys):
    from models.special_pairs import TorchPackedQKV

    layer, module = PaddleAttnBlock(), TorchAttnBlock()
    module.attn = TorchPackedQKV(8)  # a hand-written attention instead of nn.MultiheadAttention
    assert padiff.assign_weight(layer, module) is False
    err = capsys.readouterr().err
    assert "paddle MultiHeadAttention has a special init with torch MultiheadAttention" in err
    assert "attn (MultiHeadAttention)  <--- *** HERE ***" in err


def test_auto_string_keeps_special_pairs_whole():
    """The structural proposal may split an attention layer; the special-init pair wins."""
    from padiff.assign import with_special_pairs

    layer, module = PaddleAttnBlock(), TorchAttnBlock()
    assert padiff.assign_weight(layer, module, layer_map="auto")
    run_and_check(layer, module, [rand(2, 5, 8, seed=1)] * 3, layer_map=LayerMap().auto(layer, module))
    proposal = LayerMap([padiff.LayerPair("attn.v_proj", "inp"), padiff.LayerPair("out", "out")])
    merged = with_special_pairs(proposal, layer, module)
    assert [(p.paddle_path, p.torch_path) for p in merged.pairs] == [("out", "out")]
    assert merged.map == {layer.attn: module.attn} and proposal.map == {}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_paddle_model_is_assigned_and_restored_exactly(dtype):
    layer, module = PaddleWithNop(), TorchNoNop()
    layer.to(dtype=dtype)
    assert padiff.assign_weight(layer, module)
    got = layer.fc1.weight.astype("float32").numpy()
    np.testing.assert_allclose(got, module.fc1.weight.detach().numpy().T, atol=1e-2)

    class Boom(paddle.nn.Linear):
        pass

    def broken(p_layer, t_layer):
        raise RuntimeError("boom")

    perturb_paddle(layer)
    before = {n: p.astype("float32").numpy() for n, p in layer.named_parameters()}
    layer.fc2.__class__ = Boom
    add_special_init(paddle_name="Boom", torch_name="Linear", func=broken)
    try:
        assert padiff.assign_weight(layer, module) is False
    finally:
        unregister("Boom", "Linear")
    for n, p in layer.named_parameters():
        assert str(p.dtype).endswith(dtype)
        np.testing.assert_array_equal(before[n], p.astype("float32").numpy(), err_msg=n)


def test_machine_pairs_cutting_into_a_special_layer_are_replaced_by_the_unit():
    """Call-order discovery may pair paddle attn.q_proj with torch attn; the MHA unit wins."""
    from padiff.layer_map import LayerPair, ResolvedMap

    layer, module = PaddleAttnBlock(), TorchAttnBlock()
    resolved = ResolvedMap(pairs=(LayerPair("inp", "inp"), LayerPair("attn.q_proj", "attn"),
                                  LayerPair("attn.k_proj", "out")))
    plans = plan_weights(layer, module, resolved)
    assert sorted((p.paddle_path, p.torch_path) for p in plans) == [("attn", "attn"), ("inp", "inp"), ("out", "out")]
    copy_weights(layer, module, plans)
    run_and_check(layer, module, [rand(2, 5, 8, seed=1)] * 3, layer_map=LayerMap().auto(layer, module))


def test_user_opaque_pairs_are_never_dropped(capsys):
    layer, module = PaddleAttnBlock(), TorchAttnBlock()
    assert padiff.assign_weight(layer, module, {layer.attn.q_proj: module.attn}) is False
    assert "attn.q_proj (Linear)" in capsys.readouterr().err


class TorchTiedLM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4)
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight  # tied


class PaddleUntiedLM(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.emb = paddle.nn.Embedding(10, 4)
        self.head = paddle.nn.Linear(4, 10, bias_attr=False)


def test_tied_weights_are_named_when_counts_differ(capsys):
    assert padiff.assign_weight(PaddleUntiedLM(), TorchTiedLM()) is False
    err = capsys.readouterr().err
    assert "paddle head (Linear) has no torch counterpart" in err
    assert "torch head.weight is the same tensor as emb.weight" in err


def test_special_unit_without_a_counterpart_is_reported():
    layer, module = PaddleAttnBlock(), TorchAttnBlock()
    layer.extra = paddle.nn.MultiHeadAttention(8, 2)  # owns nothing itself: all in q/k/v/out_proj
    with pytest.raises(WeightAssignError) as info:
        plan_weights(layer, module, LayerMap().resolve(layer, module))
    assert info.value.paddle_path == "extra"
    assert "q_proj.weight" in str(info.value) and "has no torch counterpart" in str(info.value)


def test_long_trees_are_cut_around_the_failing_layer():
    layer = paddle.nn.Sequential(*[paddle.nn.Linear(3, 3) for _ in range(200)])
    module = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(150)], torch.nn.Linear(3, 4),
                                 *[torch.nn.Linear(3, 3) for _ in range(49)])
    with pytest.raises(WeightAssignError) as info:
        plan_weights(layer, module, LayerMap().resolve(layer, module))
    tree = info.value.torch_tree
    assert "150 (Linear)  <--- *** HERE ***" in tree and "..." in tree
    assert len(tree.splitlines()) < 70
    assert tree.splitlines()[0].strip() == "Sequential"


def test_extra_torch_block_ignored_recursively_and_classes_ignored():
    layer, module = PaddleWithNop(), TorchNoNop()
    module.aux = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.LayerNorm(2))
    assert padiff.assign_weight(layer, module) is False
    lm = LayerMap()
    lm.ignore_recursively(module.aux)
    assert padiff.assign_weight(layer, module, lm)
    lm = LayerMap()
    lm.ignore_class(module, (torch.nn.LayerNorm,))
    lm.ignore(module.aux[0])
    assert padiff.assign_weight(layer, module, lm)
    run_and_check(layer, module, [rand(2, 4)], layer_map=lm)


def test_failure_marks_ignored_layers_in_the_tree(capsys):
    layer, module = PaddleWithNop(), TorchNoNop(hidden=7)
    lm = LayerMap()
    lm.ignore(layer.nop)
    assert padiff.assign_weight(layer, module, lm) is False
    assert "nop (Nop)  (skip) ignored by the layer map" in capsys.readouterr().err
