"""Layout conversions inferred from shapes, and the PairPlan the engine reuses for grads."""

from __future__ import annotations

import itertools

import numpy as np
import paddle
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from models.special_pairs import (
    PaddleAttnWrap,
    PaddlePackedQKV,
    PaddleRawReshape,
    TorchAttnWrap,
    TorchPackedQKV,
    TorchRawReshape,
    TorchSplitQKVProj,
    rand,
    run_and_check,
)

import padiff
from padiff.adapters import PADDLE, TORCH, subtree_state
from padiff.errors import WeightAssignError
from padiff.layer_map import LayerMap
from padiff.weights.assign import copy_weights
from padiff.weights.assign_plan import plan_weights
from padiff.weights.layout_infer import Tensor, infer_links, is_refinement, link_one
from padiff.weights.pair_plan import plan_pair


def T(name, *shape, owner=""):
    return Tensor(name, tuple(shape), owner)


# --- unit rules ------------------------------------------------------------------------------------
def test_linear_weight_is_transposed_as_a_known_layout():
    link = link_one(T("weight", 4, 8, owner="Linear"), T("weight", 8, 4, owner="Linear"))
    assert link.conversion == "transpose (Linear layout)"
    w = rand(8, 4)
    np.testing.assert_array_equal(link.fn([w]), w.T)


def test_square_linear_weight_is_still_transposed():
    link = link_one(T("weight", 4, 4, owner="Linear"), T("weight", 4, 4, owner="Linear"))
    assert link.conversion.startswith("transpose")


def test_square_non_linear_weight_is_copied():
    assert link_one(T("weight", 4, 4, owner="Embedding"), T("weight", 4, 4, owner="Embedding")).conversion == "copy"


def test_non_linear_transpose_is_inferred_and_said_so():
    link = link_one(T("w", 3, 5), T("w", 5, 3))
    assert link.conversion == "inferred transpose [5, 3] -> [3, 5]"


@pytest.mark.parametrize(("a", "b", "ok"), [
    ((5, 3, 2), (5, 6), True), ((5, 6), (30,), True), ((1, 6, 1), (6,), True),
    ((2, 6), (3, 4), False), ((4, 6), (6, 4), False), ((2, 3), (2, 4), False),
])
def test_reshape_only_when_axes_merge_or_split(a, b, ok):
    assert is_refinement(a, b) is ok


def test_reshape_is_inferred_and_said_so():
    link = link_one(T("k", 5, 3, 2), T("k", 5, 6))
    assert link.conversion == "inferred reshape [5, 6] -> [5, 3, 2]"
    w = rand(5, 6)
    np.testing.assert_array_equal(link.fn([w]), w.reshape(5, 3, 2))


def test_incompatible_shapes_give_no_link():
    assert link_one(T("w", 2, 6), T("w", 3, 4)) is None


def test_packed_qkv_split_is_inferred():
    ps = [T(f"{n}.{k}", *s, owner="Linear") for n in "qkv" for k, s in (("weight", (6, 6)), ("bias", (6,)))]
    ts = [T("qkv.weight", 18, 6, owner="Linear"), T("qkv.bias", 18, owner="Linear")]
    links = infer_links(ps, ts)
    assert [lk.paddle_name for lk in links] == [p.name for p in ps]
    by = {lk.paddle_name: lk for lk in links}
    assert by["k.weight"].conversion == "inferred split: [6:12] of qkv.weight [18, 6] along axis 0, transposed"
    w, b = rand(18, 6), rand(18)
    np.testing.assert_array_equal(by["v.weight"].fn([w]), w[12:18].T)
    np.testing.assert_array_equal(by["k.bias"].fn([b]), b[6:12])


def test_packed_concat_is_inferred():
    ps = [T("qkv.weight", 6, 18, owner="Linear"), T("qkv.bias", 18, owner="Linear")]
    ts = [T(f"{n}.{k}", *s, owner="Linear") for n in "qkv" for k, s in (("weight", (6, 6)), ("bias", (6,)))]
    links = infer_links(ps, ts)
    assert links[0].torch_names == ("q.weight", "k.weight", "v.weight")
    assert links[0].conversion.startswith("inferred concat")
    ws = [rand(6, 6, seed=i) for i in range(3)]
    np.testing.assert_array_equal(links[0].fn(ws), np.concatenate(ws, 0).T)


def test_split_that_does_not_add_up_is_refused():
    ps = [T("a.weight", 6, 6, owner="Linear"), T("b.weight", 6, 5, owner="Linear")]
    assert infer_links(ps, [T("ab.weight", 18, 6, owner="Linear")]) is None


def test_inconsistent_sources_are_refused():
    # by rank, a.weight would come from x but a.bias from y: not an unambiguous reading
    ps = [T("a.weight", 2, 3), T("a.bias", 3), T("b.weight", 2, 3), T("b.bias", 3)]
    ts = [T("x.weight", 2, 3), T("y.weight", 2, 3), T("y.bias", 3), T("x.bias", 3)]
    assert infer_links(ps, ts) is None
    ts_ok = [T("x.weight", 2, 3), T("y.weight", 2, 3), T("x.bias", 3), T("y.bias", 3)]
    assert [lk.torch_names[0] for lk in infer_links(ps, ts_ok)] == ["x.weight", "x.bias", "y.weight", "y.bias"]


# --- through plan_pair / assign on real models ---------------------------------------------------------
def _plan(p, t):
    return plan_pair("", p, subtree_state(PADDLE.owned_state(p), ""), "", t, subtree_state(TORCH.owned_state(t), ""))


def test_plan_convert_turns_torch_grads_into_paddle_layout():
    p, t = paddle.nn.Linear(3, 5), torch.nn.Linear(3, 5)
    plan = _plan(p, t)
    g = rand(5, 3)
    out = plan.convert({"weight": g, "bias": rand(5)})
    np.testing.assert_array_equal(out["weight"], g.T)
    assert plan.conversions == ["weight <- weight: transpose (Linear layout)"]


def test_batchnorm_statistics_pair_by_alias():
    plan = _plan(paddle.nn.BatchNorm2D(3), torch.nn.BatchNorm2d(3))
    assert {(lk.paddle_name, lk.torch_names[0]) for lk in plan.links} >= {("_mean", "running_mean"),
                                                                           ("_variance", "running_var")}


def test_plan_pair_failure_names_add_special_init_and_shapes():
    with pytest.raises(WeightAssignError) as info:
        _plan(paddle.nn.Linear(3, 5), torch.nn.Linear(3, 6))
    msg = str(info.value)
    assert "add_special_init" in msg and "weight[3, 5]" in msg and "weight[6, 3]" in msg
    assert info.value.paddle_class == "Linear"


def test_inferred_split_on_real_models_outputs_and_grads():
    layer, module = PaddleAttnWrap(), TorchAttnWrap()
    lm = {layer.attn: module.attention}
    assert padiff.assign_weight(layer, module, lm)
    run_and_check(layer, module, [rand(2, 4, 6)], layer_map=lm)


def test_inferred_split_is_reported():
    layer, module = PaddleAttnWrap(), TorchAttnWrap()
    resolved = LayerMap.coerce({layer.attn: module.attention}).resolve(layer, module)
    done = copy_weights(layer, module, plan_weights(layer, module, resolved))
    assert any("q.weight <- qkv.weight: inferred split: [0:6]" in c for c in done)
    assert any("k.bias <- qkv.bias: inferred split: [6:12]" in c for c in done)
    assert not any("o.weight" in c for c in done)  # the Linear transpose is a known layout, not inferred


def test_inferred_split_without_a_map_at_the_pair_level():
    """The packed torch Linear is one layer, paddle has three: default pairing cannot; a map on the block can."""
    layer, module = PaddleAttnWrap(), TorchAttnWrap()
    assert padiff.assign_weight(layer, module) is False


def test_inferred_concat_on_real_models():
    layer, module = PaddlePackedQKV(), TorchSplitQKVProj()
    assert padiff.assign_weight(layer, module, {layer: module})
    run_and_check(layer, module, [rand(2, 6)], layer_map={layer: module})


def test_inferred_reshape_and_transpose_on_raw_parameters():
    layer, module = PaddleRawReshape(), TorchRawReshape()
    assert padiff.assign_weight(layer, module)
    run_and_check(layer, module, [rand(3, 6)])
    resolved = LayerMap().resolve(layer, module)
    done = copy_weights(layer, module, plan_weights(layer, module, resolved))
    assert any("kernel <- kernel: inferred reshape [5, 6] -> [5, 3, 2]" in c for c in done)
    assert any("mix <- mix: inferred transpose [4, 5] -> [5, 4]" in c for c in done)


def test_packed_qkv_model_without_wrapper_pairs_at_root():
    layer, module = PaddleAttnWrap().attn, TorchPackedQKV()
    assert padiff.assign_weight(layer, module, {layer: module})
    run_and_check(layer, module, [rand(2, 3, 6)], layer_map={layer: module})


# --- properties ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=4), d_in=st.integers(1, 5))
def test_property_packed_split_recovers_every_piece(sizes, d_in):
    """Any packed torch Linear [sum(out_i), in] splits into paddle Linears [in, out_i] exactly."""
    ps = [T(f"p{i}.weight", d_in, n, owner="Linear") for i, n in enumerate(sizes)]
    ts = [T("packed.weight", sum(sizes), d_in, owner="Linear")]
    links = infer_links(ps, ts)
    assert links is not None
    w = np.arange(sum(sizes) * d_in, dtype="float32").reshape(sum(sizes), d_in)
    start = 0
    for lk, n in zip(links, sizes):
        np.testing.assert_array_equal(lk.fn([w]), w[start:start + n].T)
        start += n


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_property_merging_neighbour_axes_is_a_reshape(shape, data):
    cut = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(shape) - 1)), max_size=3))))
    cut = [c for c in cut if 0 < c < len(shape)]
    bounds = [0, *cut, len(shape)]
    merged = tuple(int(np.prod(shape[a:b])) for a, b in itertools.pairwise(bounds))
    assert is_refinement(tuple(shape), merged) and is_refinement(merged, tuple(shape))
    link = link_one(T("w", *shape), T("w", *merged))
    w = np.arange(int(np.prod(merged)), dtype="float32").reshape(merged)
    np.testing.assert_array_equal(link.fn([w]), w.reshape(shape))


def test_linear_against_a_1x1_convolution_is_squeezed_and_transposed():
    """Square case: a plain reshape would fit the shapes but silently skip the transpose."""
    link = link_one(T("weight", 4, 4, owner="Linear"), T("weight", 4, 4, 1, 1, owner="Conv2d"))
    assert link.conversion.startswith("inferred squeeze [4, 4, 1, 1] -> [4, 4] and transpose")
    w = rand(4, 4, 1, 1)
    np.testing.assert_array_equal(link.fn([w]), w[:, :, 0, 0].T)


def test_paddle_1x1_convolution_against_a_torch_linear_is_a_reshape():
    link = link_one(T("weight", 4, 3, 1, 1, owner="Conv2D"), T("weight", 4, 3, owner="Linear"))
    assert link.conversion == "inferred reshape [4, 3] -> [4, 3, 1, 1]"


def test_whole_transformer_encoder_without_a_map():
    layer = paddle.nn.TransformerEncoder(paddle.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2)
    module = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
                                         2, enable_nested_tensor=False)
    assert padiff.assign_weight(layer, module)
    run_and_check(layer, module, [rand(2, 5, 8)], layer_map=LayerMap().auto(layer, module), atol=1e-5)


def test_plan_lists_inferred_conversions_apart_from_known_layouts():
    layer, module = PaddleRawReshape(), TorchRawReshape()
    plan = _plan(layer, module)
    assert plan.inferred == ["kernel <- kernel: inferred reshape [5, 6] -> [5, 3, 2]",
                             "mix <- mix: inferred transpose [4, 5] -> [5, 4]"]
    assert _plan(paddle.nn.Linear(2, 3), torch.nn.Linear(2, 3)).inferred == []
