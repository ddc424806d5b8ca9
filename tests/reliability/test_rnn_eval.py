"""paddle's CPU backward of an LSTM/GRU in eval mode fails inside paddle ("Tensor holds no memory"):
padiff says what it is and what to do, and ``padiff.rnn_train_mode`` does it for one run."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

import padiff
from padiff import ModelRunError


class PRnn(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = paddle.nn.LSTM(4, 5, num_layers=2, dropout=0.3)
        self.gru = paddle.nn.GRU(5, 3)

    def forward(self, x):
        return self.gru(self.rnn(x)[0])[0]


class TRnn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.LSTM(4, 5, num_layers=2, dropout=0.3, batch_first=True)
        self.gru = torch.nn.GRU(5, 3, batch_first=True)

    def forward(self, x):
        return self.gru(self.rnn(x)[0])[0]


def _pair() -> tuple[PRnn, TRnn, tuple[dict, dict]]:
    layer, module = PRnn(), TRnn()
    layer.eval()
    module.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype("float32")
    return layer, module, ({"x": paddle.to_tensor(x)}, {"x": torch.tensor(x)})


def test_eval_mode_rnn_backward_failure_says_what_it_is_and_what_to_do() -> None:
    layer, module, inp = _pair()
    with pytest.raises(ModelRunError) as info:
        padiff.compare(layer, module, inp, auto_weights=True)
    msg = str(info.value)
    assert "paddle cannot run the backward of a recurrent layer in eval mode on CPU" in msg
    assert "in eval mode here: rnn (LSTM), gru (GRU)" in msg
    assert "padiff.rnn_train_mode(layer, module)" in msg and "options={'diff_phase': 'forward'}" in msg
    assert "run on their own" not in msg
    assert isinstance(info.value.__cause__, RuntimeError)


def test_rnn_train_mode_runs_the_check_and_puts_modes_and_dropout_back() -> None:
    layer, module, inp = _pair()
    with padiff.rnn_train_mode(layer, module) as changed:
        assert changed == ["paddle rnn (LSTM)", "paddle gru (GRU)", "torch rnn (LSTM)", "torch gru (GRU)"]
        assert layer.rnn.training and layer.rnn.dropout == 0 and module.rnn.dropout == 0
        rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-6, "rtol": 1e-5})
    assert rep, rep.first_diff
    assert "backward" in rep.stages or any(r.stage == "backward" for r in rep.records)
    for m in (layer.rnn, layer.gru, module.rnn, module.gru):
        assert not m.training
    assert (layer.rnn.dropout, module.rnn.dropout, layer.gru.dropout) == (0.3, 0.3, 0.0)


def test_rnn_train_mode_puts_things_back_when_the_block_raises() -> None:
    layer, module, _inp = _pair()
    with pytest.raises(KeyError), padiff.rnn_train_mode(layer, module):
        raise KeyError("user")
    assert not layer.rnn.training and not module.rnn.training and layer.rnn.dropout == 0.3
