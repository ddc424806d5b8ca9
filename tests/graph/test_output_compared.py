"""Pairs whose layers decompose the same computation differently still compare outputs."""

from __future__ import annotations

import numpy as np
import paddle
import torch

import padiff

TOL = {"atol": 1e-5, "rtol": 1e-4}


class PdRMSNorm(paddle.nn.Layer):
    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = self.create_parameter([d], default_initializer=paddle.nn.initializer.Constant(1.0))
        self.eps = eps

    def forward(self, x):
        var = x.astype("float32").pow(2).mean(-1, keepdim=True)
        return paddle.rsqrt(var + self.eps) * x * self.weight


class PtRMSNorm(torch.nn.Module):
    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        return self.weight * (hidden_states / torch.sqrt(hidden_states.pow(2).mean(-1, keepdim=True)
                                                         + self.variance_epsilon))


class PdNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.up = paddle.nn.Linear(16, 32)
        self.norm = PdRMSNorm(32)
        self.down = paddle.nn.Linear(32, 4)

    def forward(self, x):
        return self.down(self.norm(self.up(x)))


class PtNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj_in = torch.nn.Linear(16, 32)
        self.ln = PtRMSNorm(32)
        self.proj_out = torch.nn.Linear(32, 4)

    def forward(self, x):
        return self.proj_out(self.ln(self.proj_in(x)))


def _inp():
    x = np.random.default_rng(0).standard_normal((3, 16)).astype("float32")
    return {"x": paddle.to_tensor(x)}, {"x": torch.tensor(x)}


def test_the_proposal_compares_outputs_of_differently_decomposed_layers():
    lm = padiff.suggest_layer_map(PdNet(), PtNet(), _inp())
    pair = next(p for p in lm.pairs if p.paddle_path == "norm")
    assert pair.torch_path == "ln" and pair.compare_output, pair


def test_a_fault_inside_such_a_layer_is_named_there():
    module = PtNet()
    module.ln.register_forward_hook(lambda m, a, out: out * 1.05)
    rep = padiff.compare(PdNet(), module, _inp(), auto_weights=True, layer_map="auto", options=TOL)
    assert not rep and (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == (
        "forward", "norm", "ln")
    assert padiff.compare(PdNet(), PtNet(), _inp(), auto_weights=True, layer_map="auto", options=TOL)


class PdGatedScale(paddle.nn.Layer):
    """Raw weights and a parameter-free child it never calls, as paddleformers' GPT-OSS experts."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.gain = self.create_parameter([d], default_initializer=paddle.nn.initializer.Uniform(0.5, 1.5))
        self.act_fn = paddle.nn.Silu()  # created by a base class, unused: the forward calls the function

    def forward(self, x):
        return paddle.nn.functional.silu(x) * self.gain


class PtScaleLeaf(torch.nn.Module):
    """The same computation as a leaf calling the functional activation."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.rand(d) + 0.5)

    def forward(self, x):
        return torch.nn.functional.silu(x) * self.weight


class PdGatedNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.up = paddle.nn.Linear(16, 32)
        self.scale = PdGatedScale(32)
        self.down = paddle.nn.Linear(32, 4)

    def forward(self, x):
        return self.down(self.scale(self.up(x)))


class PtGatedNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj_in = torch.nn.Linear(16, 32)
        self.mix = PtScaleLeaf(32)
        self.proj_out = torch.nn.Linear(32, 4)

    def forward(self, x):
        return self.proj_out(self.mix(self.proj_in(x)))


def test_a_layer_whose_children_hold_nothing_and_run_nothing_is_compared_like_a_leaf():
    """(A raw-weight layer whose called activation child is part of its output stays weights-only:
    tests/graph/test_suggest.py, case raw_param.)"""
    lm = padiff.suggest_layer_map(PdGatedNet(), PtGatedNet(), _inp())
    pair = next(p for p in lm.pairs if p.paddle_path == "scale")
    assert pair.torch_path == "mix" and pair.compare_output, pair
    assert padiff.compare(PdGatedNet(), PtGatedNet(), _inp(), auto_weights=True, layer_map="auto", options=TOL)


def test_a_fault_in_a_layer_with_an_unused_child_is_named_there():
    module = PtGatedNet()
    module.mix.register_forward_hook(lambda m, a, out: out * 1.05)
    rep = padiff.compare(PdGatedNet(), module, _inp(), auto_weights=True, layer_map="auto", options=TOL)
    assert not rep and (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == (
        "forward", "scale", "mix")
