"""A layer that applies its activation inside (paddle ``BatchNorm(act="relu")``) against one that leaves it
to a separate layer (torch ``BatchNorm2d`` then ``ReLU``): paddle.vision's DenseNet is written so.

The two layers' outputs are different tensors (after and before the ReLU), so the pair is weight-only
with the reason in its evidence; the correct port passes and a fault is still named at its layer.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

import padiff

TOL = {"atol": 1e-5, "rtol": 1e-4}


class PdNet(paddle.nn.Layer):
    def __init__(self, act: bool = True) -> None:
        super().__init__()
        self.conv_a = paddle.nn.Conv2D(3, 8, 3, padding=1, bias_attr=False)
        self.bn_a = paddle.nn.BatchNorm(8, act="relu") if act else paddle.nn.BatchNorm2D(8)
        self.conv_b = paddle.nn.Conv2D(8, 4, 3, padding=1)
        self.act = act

    def forward(self, x):
        h = self.bn_a(self.conv_a(x))
        return self.conv_b(h if self.act else paddle.nn.functional.relu(h))


class PtNet(torch.nn.Module):
    def __init__(self, reverse: bool = False, functional: bool = False) -> None:
        super().__init__()
        mods = [("c1", torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)), ("n1", torch.nn.BatchNorm2d(8)),
                ("r1", torch.nn.ReLU()), ("c2", torch.nn.Conv2d(8, 4, 3, padding=1))]
        if functional:  # torchvision's DenseNet applies its last ReLU as F.relu, in place
            mods = [m for m in mods if m[0] != "r1"]
        for name, m in reversed(mods) if reverse else mods:
            self.add_module(name, m)
        with torch.no_grad():
            self.n1.running_mean.uniform_(-0.5, 0.5)
            self.n1.running_var.uniform_(0.5, 1.5)
            self.n1.weight.uniform_(0.5, 1.5)
            self.n1.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        h = self.n1(self.c1(x))
        return self.c2(self.r1(h) if hasattr(self, "r1") else torch.nn.functional.relu(h, inplace=True))


def _inp():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype("float32")
    return {"x": paddle.to_tensor(x)}, {"x": torch.tensor(x)}


def _models(reverse: bool = False, act: bool = True, functional: bool = False):
    torch.manual_seed(0)
    paddle.seed(0)
    layer, module = PdNet(act), PtNet(reverse, functional)
    layer.eval()
    module.eval()
    return layer, module


@pytest.mark.parametrize("reverse", [False, True])
def test_the_pair_is_weight_only_and_says_which_layer_applies_the_activation(reverse):
    lm = padiff.suggest_layer_map(*_models(reverse), _inp())
    pair = next(p for p in lm.pairs if p.paddle_path == "bn_a")
    assert pair.torch_path == "n1" and not pair.compare_output
    assert any("'r1'" in e and "Relu" in e for e in pair.evidence), pair.evidence
    left = next(u for u in lm.unpaired if u.path == "r1")
    assert left.side == "torch" and "inside the other side's 'bn_a'" in left.reason, left


@pytest.mark.parametrize("reverse", [False, True])
def test_the_correct_port_passes_and_a_fault_is_named_at_its_layer(reverse):
    assert padiff.compare(*_models(reverse), _inp(), auto_weights=True, layer_map="auto", options=TOL)
    layer, module = _models(reverse)
    module.c1.register_forward_hook(lambda m, a, out: out * 1.05)
    rep = padiff.compare(layer, module, _inp(), auto_weights=True, layer_map="auto", options=TOL)
    assert not rep and (rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("conv_a", "c1")


def test_a_fault_in_the_weight_only_pair_shows_at_the_next_pair():
    layer, module = _models()
    module.n1.register_forward_hook(lambda m, a, out: out * 1.05)
    rep = padiff.compare(layer, module, _inp(), auto_weights=True, layer_map="auto", options=TOL)
    assert not rep and (rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("conv_b", "c2")


def test_a_layer_without_the_activation_inside_keeps_its_outputs_compared():
    lm = padiff.suggest_layer_map(*_models(act=False), _inp())
    pair = next(p for p in lm.pairs if p.paddle_path == "bn_a")
    assert pair.torch_path == "n1" and pair.compare_output


def test_an_activation_torch_applies_in_its_forward_code_is_told_too():
    lm = padiff.suggest_layer_map(*_models(functional=True), _inp())
    pair = next(p for p in lm.pairs if p.paddle_path == "bn_a")
    assert pair.torch_path == "n1" and not pair.compare_output
    assert any("after the layer returns" in e for e in pair.evidence), pair.evidence
    assert padiff.compare(*_models(functional=True), _inp(), auto_weights=True, layer_map="auto", options=TOL)
