"""FUNCs for the CLI tests: each returns (layer, module, example_inp) like a user's file would."""

from __future__ import annotations

import numpy as np
import paddle
import torch
import torch.nn.functional as TF


class PaddleMLP(paddle.nn.Layer):
    def __init__(self, second_act: str = "relu") -> None:
        super().__init__()
        self.fc1 = paddle.nn.Linear(8, 16)
        self.act = paddle.nn.ReLU()
        self.fc2 = paddle.nn.Linear(16, 16)
        self.fc3 = paddle.nn.Linear(16, 4)
        self.second_act = second_act

    def forward(self, x):
        h = self.act(self.fc1(x))
        h = self.fc2(h)
        h = paddle.tanh(h) if self.second_act == "tanh" else self.act(h)
        return self.fc3(h)


class TorchMLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Linear(8, 16)
        self.middle = torch.nn.Linear(16, 16)
        self.last = torch.nn.Linear(16, 4)

    def forward(self, inp):
        return self.last(TF.relu(self.middle(TF.relu(self.first(inp)))))


def _inputs():
    x = np.random.default_rng(0).standard_normal((3, 8)).astype("float32")
    return {"x": paddle.to_tensor(x)}, {"inp": torch.tensor(x)}


def _copy_weights(layer, module):
    """torch -> paddle by hand (Linear weights are transposed in paddle)."""
    for p_lin, t_lin in ((layer.fc1, module.first), (layer.fc2, module.middle), (layer.fc3, module.last)):
        p_lin.weight.set_value(t_lin.weight.detach().numpy().T.copy())
        p_lin.bias.set_value(t_lin.bias.detach().numpy().copy())


def mlp():
    """Same structure, different attribute names, random weights (use --auto-weights)."""
    return PaddleMLP(), TorchMLP(), _inputs()


def mlp_synced():
    """Weights already equal: aligned without --auto-weights."""
    layer, module = PaddleMLP(), TorchMLP()
    _copy_weights(layer, module)
    return layer, module, _inputs()


def mlp_tanh():
    """The paddle port uses tanh where torch uses relu: the first difference is fc3 <-> last."""
    return PaddleMLP(second_act="tanh"), TorchMLP(), _inputs()


def mlp_with_optimizer():
    """A 4th item with optimizers, for --steps > 1."""
    layer, module = PaddleMLP(), TorchMLP()
    _copy_weights(layer, module)
    opts = [paddle.optimizer.SGD(0.1, parameters=layer.parameters()), torch.optim.SGD(module.parameters(), lr=0.1)]
    return layer, module, _inputs(), {"optimizer": opts}


def not_a_tuple():
    return 42


def raises():
    raise ValueError("the user's FUNC is broken")


def swapped():
    layer, module, inp = mlp()
    return module, layer, inp
