"""The weight-layout table: each entry shown on the framework itself, and identity deciding membership."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

from padiff.adapters import PADDLE, TORCH
from padiff.weights.layouts import IN_OUT, LAYOUTS, OUT_IN, TABLE, entry_of, layout_of, orientation

RNG = np.random.default_rng(0)


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _paddle_y(layer: paddle.nn.Layer, x: np.ndarray) -> np.ndarray:
    return layer(paddle.to_tensor(x)).numpy()


def _torch_y(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def _matmul_layout(y: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> str:
    """Which layout reproduces ``y``: ``x @ W`` (in_out) or ``x @ W.T`` (out_in); asserts exactly one does."""
    fits = [name for name, ww in ((IN_OUT, w), (OUT_IN, w.T)) if np.allclose(x @ ww + b, y, atol=1e-5)]
    assert len(fits) == 1, fits
    return fits[0]


def test_every_entry_names_a_class_of_its_framework():
    for entry in LAYOUTS:
        side = PADDLE if entry.framework == "paddle" else TORCH
        assert side.framework_class(entry.dotted) is not None, entry.dotted


def test_paddle_linear_is_in_out():
    lin = paddle.nn.Linear(5, 5)
    x = _x(3, 5)
    assert _matmul_layout(_paddle_y(lin, x), x, lin.weight.numpy(), lin.bias.numpy()) == IN_OUT
    assert layout_of(PADDLE, lin, "weight") == IN_OUT


def test_paddle_compat_linear_is_out_in_like_torch():
    lin = paddle.compat.nn.Linear(5, 5)
    x = _x(3, 5)
    assert _matmul_layout(_paddle_y(lin, x), x, lin.weight.numpy(), lin.bias.numpy()) == OUT_IN
    assert layout_of(PADDLE, lin, "weight") == OUT_IN
    assert list(paddle.compat.nn.Linear(3, 7).weight.shape) == [7, 3]  # [out, in]


def test_torch_linear_is_out_in():
    lin = torch.nn.Linear(5, 5)
    x = _x(3, 5)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert _matmul_layout(_torch_y(lin, x), x, w, b) == OUT_IN
    assert layout_of(TORCH, lin, "weight") == OUT_IN
    assert layout_of(TORCH, torch.nn.MultiheadAttention(4, 2).out_proj, "weight") == OUT_IN  # a subclass, same forward


def test_embeddings_are_tables_on_both_sides():
    pe, te = paddle.nn.Embedding(6, 6), torch.nn.Embedding(6, 6)
    idx = np.array([4, 1])
    assert np.array_equal(pe(paddle.to_tensor(idx)).numpy(), pe.weight.numpy()[idx])
    assert np.array_equal(te(torch.from_numpy(idx)).detach().numpy(), te.weight.detach().numpy()[idx])
    assert layout_of(PADDLE, pe, "weight") == layout_of(TORCH, te, "weight") == TABLE


def test_compat_multihead_attention_holds_torchs_tensors_in_torchs_layout():
    p, t = paddle.compat.nn.MultiheadAttention(4, 2), torch.nn.MultiheadAttention(4, 2)
    p_params = {n: list(v.shape) for n, v in p.named_parameters()}
    assert p_params == {n: list(v.shape) for n, v in t.named_parameters()}
    for n, v in t.named_parameters():  # copy by name, nothing transposed: the outputs agree
        dict(p.named_parameters())[n].set_value(v.detach().numpy())
    x = _x(3, 2, 4)
    with torch.no_grad():
        want = t(*(torch.from_numpy(x),) * 3)[0].numpy()
    got = p(*(paddle.to_tensor(x),) * 3)[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert layout_of(PADDLE, p, "in_proj_weight") == layout_of(TORCH, t, "in_proj_weight") == OUT_IN


@pytest.mark.parametrize("dotted", ["compat.nn.AvgPool1D", "compat.nn.AvgPool2D", "compat.nn.AvgPool3D",
                                    "compat.nn.Softmax", "compat.nn.Unfold"])
def test_compat_parameter_free_layers_hold_no_weight(dotted):
    cls = PADDLE.framework_class(dotted)
    layer = cls(2) if "Pool" in dotted or "Unfold" in dotted else cls(-1)
    assert not list(layer.parameters())
    entry = entry_of(PADDLE, layer)
    assert entry is not None and entry.weights == {}


def test_a_subclass_with_its_own_forward_has_no_known_layout():
    class Mine(paddle.nn.Linear):
        def forward(self, x):
            return paddle.matmul(x, self.weight, transpose_y=True)

    assert layout_of(PADDLE, Mine(4, 4), "weight") == ""
    assert layout_of(PADDLE, paddle.nn.Linear(4, 4), "weight") == IN_OUT


def test_orientation_from_two_layouts():
    assert orientation(IN_OUT, OUT_IN) == "transpose"
    assert orientation(OUT_IN, OUT_IN) == "copy"
    assert orientation(TABLE, TABLE) == "copy"
    assert orientation("", OUT_IN) is None
    assert orientation(TABLE, OUT_IN) is None


def test_recurrent_cells_are_out_in_on_both_sides():
    p, t = paddle.nn.SimpleRNNCell(4, 4), torch.nn.RNNCell(4, 4)  # square weight_hh
    x, h = _x(3, 4), _x(3, 4)
    for w_ih, w_hh, b, got in (
        (p.weight_ih.numpy(), p.weight_hh.numpy(), p.bias_ih.numpy() + p.bias_hh.numpy(),
         p(paddle.to_tensor(x), paddle.to_tensor(h))[0].numpy()),
        (t.weight_ih.detach().numpy(), t.weight_hh.detach().numpy(), (t.bias_ih + t.bias_hh).detach().numpy(),
         t(torch.from_numpy(x), torch.from_numpy(h)).detach().numpy()),
    ):
        np.testing.assert_allclose(got, np.tanh(x @ w_ih.T + h @ w_hh.T + b), atol=1e-5)  # x @ W.T: [out, in]
        assert not np.allclose(got, np.tanh(x @ w_ih.T + h @ w_hh + b), atol=1e-5)
    assert layout_of(PADDLE, p, "weight_hh") == layout_of(TORCH, t, "weight_hh") == OUT_IN
    assert layout_of(PADDLE, paddle.nn.LSTMCell(4, 4), "weight_ih") == OUT_IN
    assert layout_of(TORCH, torch.nn.GRUCell(4, 4), "weight_hh") == OUT_IN
