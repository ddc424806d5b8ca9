"""Built-in and user special inits: equal outputs AND equal gradients after assignment."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch
from models.special_pairs import (
    PaddleAttnBlock,
    PaddleEmbLSTM,
    TorchAttnBlock,
    TorchEmbLSTM,
    paddle_values,
    rand,
    rnn_pair,
    run_and_check,
)

import padiff
from padiff.layer_map import LayerMap
from padiff.weights.special_init import (
    add_special_init,
    find_special_pairs,
    lookup,
    registered_names,
    unregister,
)


def _first(out, side):
    return out[0]


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize(("bidirect", "layers"), [(False, 1), (True, 1), (False, 2), (True, 2)])
def test_recurrent_special_init_outputs_and_grads(kind, bidirect, layers):
    layer, module = rnn_pair(kind, bidirect, layers)
    assert padiff.assign_weight(layer, module, {layer: module})
    run_and_check(layer, module, [rand(2, 5, 4)], layer_map={layer: module}, pick=_first)


@pytest.mark.parametrize("bidirect", [False, True])
def test_lstm_with_projection_special_init(bidirect):
    """paddle's top-level names are wrong with proj_size; cells are the source of truth."""
    layer, module = rnn_pair("LSTM", bidirect, layers=2, proj=3)
    assert padiff.assign_weight(layer, module, {layer: module})
    run_and_check(layer, module, [rand(2, 5, 4)], layer_map={layer: module}, pick=_first)


def test_lstm_without_a_map_is_paired_by_default_and_works():
    layer, module = PaddleEmbLSTM(bidirect=True, layers=2), TorchEmbLSTM(bidirect=True, layers=2)
    assert padiff.assign_weight(layer, module)
    ids = np.random.default_rng(0).integers(0, 20, (2, 7))
    po = layer(paddle.to_tensor(ids)).numpy()
    to = module(torch.tensor(ids)).detach().numpy()
    np.testing.assert_allclose(po, to, atol=1e-5)


def test_gru_gate_order_is_the_same_in_both_frameworks():
    """Copying GRU weights as they are gives equal outputs: r, z, n order on both sides."""
    layer, module = rnn_pair("GRU")
    padiff.assign_weight(layer, module, {layer: module})
    x = rand(1, 3, 4)
    np.testing.assert_allclose(layer(paddle.to_tensor(x))[0].numpy(), module(torch.tensor(x))[0].detach().numpy(),
                               atol=1e-6)


@pytest.mark.parametrize(("kdim", "vdim"), [(None, None), (4, 6)])
def test_mha_special_init_outputs_and_grads(kdim, vdim):
    layer, module = PaddleAttnBlock(kdim=kdim, vdim=vdim), TorchAttnBlock(kdim=kdim, vdim=vdim)
    lm = LayerMap()
    lm.map = {layer.attn: module.attn}
    assert padiff.assign_weight(layer, module, lm)
    args = [rand(2, 5, 8, seed=1), rand(2, 5, kdim or 8, seed=2), rand(2, 5, vdim or 8, seed=3)]
    run_and_check(layer, module, args, layer_map=lm)


def test_mha_plan_names_the_packed_rows():
    from padiff.adapters import PADDLE, TORCH, subtree_state
    from padiff.weights.pair_plan import plan_pair

    p, t = paddle.nn.MultiHeadAttention(8, 2), torch.nn.MultiheadAttention(8, 2)
    plan = plan_pair("", p, subtree_state(PADDLE.owned_state(p), ""), "", t, subtree_state(TORCH.owned_state(t), ""))
    assert plan.special == "MultiHeadAttention<->MultiheadAttention"
    by = {lk.paddle_name: lk for lk in plan.links}
    assert by["k_proj.weight"].torch_names == ("in_proj_weight",)
    assert "rows 8:16" in by["k_proj.weight"].conversion
    w = np.arange(24 * 8, dtype="float32").reshape(24, 8)
    got = plan.convert({"in_proj_weight": w})
    np.testing.assert_array_equal(got["v_proj.weight"], w[16:24].T)


def test_mha_with_add_bias_kv_fails_clearly(capsys):
    p, t = paddle.nn.MultiHeadAttention(8, 2), torch.nn.MultiheadAttention(8, 2, add_bias_kv=True)
    before = paddle_values(p)
    assert padiff.assign_weight(p, t, {p: t}) is False
    assert "add_bias_kv" in capsys.readouterr().err
    after = paddle_values(p)
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(("p_cls", "t_cls", "shape"), [
    (paddle.nn.BatchNorm1D, torch.nn.BatchNorm1d, (4, 3, 5)),
    (paddle.nn.BatchNorm2D, torch.nn.BatchNorm2d, (4, 3, 5, 5)),
    (paddle.nn.BatchNorm3D, torch.nn.BatchNorm3d, (2, 3, 3, 4, 4)),
])
@pytest.mark.parametrize("train", [False, True])
def test_batchnorm_special_init_outputs_and_grads(p_cls, t_cls, shape, train):
    layer, module = p_cls(3), t_cls(3)
    with torch.no_grad():
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-1, 1)
        module.running_mean.uniform_(-1, 1)
        module.running_var.uniform_(0.5, 2)
    layer.train() if train else layer.eval()
    module.train(train)
    assert padiff.assign_weight(layer, module, {layer: module})
    np.testing.assert_array_equal(layer._mean.numpy(), module.running_mean.numpy())
    np.testing.assert_array_equal(layer._variance.numpy(), module.running_var.numpy())
    run_and_check(layer, module, [rand(*shape)], layer_map={layer: module}, atol=1e-4)


def test_builtins_are_registered():
    names = registered_names()
    for pair in [("MultiHeadAttention", "MultiheadAttention"), ("LSTM", "LSTM"), ("GRU", "GRU"),
                 ("BatchNorm1D", "BatchNorm1d"), ("BatchNorm2D", "BatchNorm2d"), ("BatchNorm3D", "BatchNorm3d")]:
        assert pair in names


def test_user_special_init_takes_priority_over_the_builtin():
    layer, module = rnn_pair("LSTM")
    calls = []

    def my_init(p_layer, t_layer):
        calls.append((type(p_layer).__name__, type(t_layer).__name__))
        for name, prm in p_layer.named_parameters():
            if "." not in name:
                prm.set_value(np.full(prm.shape, 0.5, dtype="float32"))

    add_special_init(paddle_name="LSTM", torch_name="LSTM", func=my_init)
    try:
        assert lookup(layer, module).func is my_init
        assert padiff.assign_weight(layer, module, {layer: module})
        assert calls == [("LSTM", "LSTM")]
        assert np.all(layer.weight_ih_l0.numpy() == 0.5)
    finally:
        unregister("LSTM", "LSTM")
    assert lookup(layer, module).planner is not None  # the built-in is back


class PaddleScaled(paddle.nn.Layer):
    """Stores log(scale); its torch port stores the scale itself: no shape rule can know that."""

    def __init__(self) -> None:
        super().__init__()
        self.log_scale = self.create_parameter([3])

    def forward(self, x):
        return x * paddle.exp(self.log_scale)


class TorchScaled(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.rand(3) + 0.5)

    def forward(self, x):
        return x * self.scale


def test_user_registered_special_init_for_a_custom_pair():
    def init(p_layer, t_layer):
        p_layer.log_scale.set_value(np.log(t_layer.scale.detach().numpy()))

    add_special_init(paddle_name="PaddleScaled", torch_name="TorchScaled", func=init)
    try:
        layer, module = PaddleScaled(), TorchScaled()
        assert padiff.assign_weight(layer, module, {layer: module})
        x = rand(2, 3)
        np.testing.assert_allclose(layer(paddle.to_tensor(x)).numpy(), module(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-6)
    finally:
        unregister("PaddleScaled", "TorchScaled")


def test_add_special_init_rejects_bad_arguments():
    with pytest.raises(padiff.MappingError):
        add_special_init(paddle_name="", torch_name="X", func=lambda a, b: None)
    with pytest.raises(padiff.MappingError, match="callable"):
        add_special_init(paddle_name="A", torch_name="B", func=None)


# --- find_special_pairs (used by LayerMap.auto) ------------------------------------------------------
class PaddleTwoRNN(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.enc = paddle.nn.GRU(4, 4)
        self.attn = paddle.nn.MultiHeadAttention(4, 2)
        self.dec = paddle.nn.LSTM(4, 4)
        self.dec2 = paddle.nn.LSTM(4, 4)


class TorchTwoRNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.decoder = torch.nn.LSTM(4, 4)  # defined first: pairing is per kind, not global order
        self.attention = torch.nn.MultiheadAttention(4, 2)
        self.encoder = torch.nn.GRU(4, 4)
        self.decoder2 = torch.nn.LSTM(4, 4)


def test_find_special_pairs_matches_per_kind_in_tree_order():
    layer, module = PaddleTwoRNN(), TorchTwoRNN()
    pairs = [(pp, tp) for _, _, pp, tp in find_special_pairs(layer, module)]
    assert pairs == [("enc", "encoder"), ("attn", "attention"), ("dec", "decoder"), ("dec2", "decoder2")]


class PaddleUserBlock(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.attn = paddle.nn.MultiHeadAttention(4, 2)


class TorchUserBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(4, 2)


class PaddleHolder(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.block = PaddleUserBlock()
        self.lone = paddle.nn.MultiHeadAttention(4, 2)


class TorchHolder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = TorchUserBlock()
        self.lone = torch.nn.MultiheadAttention(4, 2)


def test_find_special_pairs_skips_modules_inside_a_matched_pair():
    add_special_init(paddle_name="PaddleUserBlock", torch_name="TorchUserBlock", func=lambda p, t: None)
    try:
        pairs = [(pp, tp) for _, _, pp, tp in find_special_pairs(PaddleHolder(), TorchHolder())]
    finally:
        unregister("PaddleUserBlock", "TorchUserBlock")
    # torch block.attn is inside the matched torch block: it must not be paired with paddle "lone"
    assert pairs == [("block", "block"), ("lone", "lone")]


def test_find_special_pairs_leaves_batchnorm_to_default_pairing():
    p = paddle.nn.Sequential(paddle.nn.Conv2D(3, 3, 1), paddle.nn.BatchNorm2D(3))
    t = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3))
    assert find_special_pairs(p, t) == []


@pytest.mark.parametrize(("p_cls", "t_cls"), [(paddle.nn.LSTMCell, torch.nn.LSTMCell),
                                              (paddle.nn.GRUCell, torch.nn.GRUCell),
                                              (paddle.nn.SimpleRNNCell, torch.nn.RNNCell)])
def test_recurrent_cells_need_no_special_init(p_cls, t_cls):
    """Cells hold weight_ih/weight_hh/bias_ih/bias_hh with the same names, shapes and gate order."""
    layer, module = p_cls(4, 3), t_cls(4, 3)
    assert padiff.assign_weight(layer, module)
    x = rand(2, 4)
    t_out = module(torch.tensor(x))
    t_h = t_out[0] if isinstance(t_out, tuple) else t_out
    np.testing.assert_allclose(layer(paddle.to_tensor(x))[0].numpy(), t_h.detach().numpy(), atol=1e-6)


@pytest.mark.parametrize(("p_kw", "t_kw", "says"), [
    ({"hidden_size": 6}, {"hidden_size": 5}, "hidden_size differs: paddle 6, torch 5"),
    ({"num_layers": 2}, {"num_layers": 1}, "num_layers differs"),
    ({"direction": "bidirect"}, {}, "direction='bidirect'"),
])
def test_recurrent_configuration_mismatch_is_named(p_kw, t_kw, says, capsys):
    p = paddle.nn.LSTM(4, **{"hidden_size": 6, **p_kw})
    t = torch.nn.LSTM(4, **{"hidden_size": 6, **t_kw})
    before = paddle_values(p)
    assert padiff.assign_weight(p, t, {p: t}) is False
    assert says in capsys.readouterr().err
    assert all(np.array_equal(before[k], v) for k, v in paddle_values(p).items())
