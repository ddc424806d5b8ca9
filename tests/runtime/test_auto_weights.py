"""``auto_weights=True`` without a discovery forward: definition order guessed, checked by the run.

The common case (layers called in the order they are defined) runs each model's forward
once per step; a model whose definition order misleads the guess is noticed by the run
itself, copied again in call order and compared again, with nothing of the first attempt
left in the report or in the models.
"""

from __future__ import annotations

import logging

import numpy as np
import paddle
import pytest
import torch
from models.basic import inputs, rand

import padiff


@pytest.fixture(autouse=True, params=["sequential", "overlap", "ahead"])
def backward_mode(request, monkeypatch):
    """Every way the engine runs the backward passes (paddle's first / both at once / paddle's ahead).

    A run stopped by its pairing check while paddle's backward runs ahead must wait for it
    before the models are put back and the run starts over.
    """
    from padiff.runtime import engine

    monkeypatch.setattr(engine.Engine, "_backward_mode", lambda self, mode=request.param: (mode, 1))
    return request.param


class _Counted:
    """Counts forward calls of the model it is mixed into."""

    calls = 0

    def count(self) -> None:
        self.calls += 1


class PaddleNet(paddle.nn.Layer, _Counted):
    def __init__(self) -> None:
        super().__init__()
        self.a = paddle.nn.Linear(6, 6)
        self.bn = paddle.nn.BatchNorm1D(6)
        self.b = paddle.nn.Linear(6, 6)

    def forward(self, x):
        self.count()
        return self.b(paddle.tanh(self.bn(self.a(x))))


class TorchNet(torch.nn.Module, _Counted):
    """Defined in the order it is called: definition order is call order."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Linear(6, 6)
        self.norm = torch.nn.BatchNorm1d(6)
        self.q = torch.nn.Linear(6, 6)

    def forward(self, x):
        self.count()
        return self.q(torch.tanh(self.norm(self.p(x))))


class TorchNetReordered(torch.nn.Module, _Counted):
    """The same computation with its two Linears (equal shapes) defined in the other order."""

    def __init__(self) -> None:
        super().__init__()
        self.q = torch.nn.Linear(6, 6)  # defined first, called last
        self.norm = torch.nn.BatchNorm1d(6)
        self.p = torch.nn.Linear(6, 6)

    def forward(self, x):
        self.count()
        return self.q(torch.tanh(self.norm(self.p(x))))


def _pair(reordered: bool) -> tuple[PaddleNet, torch.nn.Module, dict]:
    paddle.seed(1)
    torch.manual_seed(2)
    module: torch.nn.Module = TorchNet()
    with torch.no_grad():
        module.norm.running_mean.uniform_(-0.5, 0.5)
    if reordered:  # the very same tensors (same names), defined in the other order
        state, module = module.state_dict(), TorchNetReordered()
        module.load_state_dict(state)
    return PaddleNet(), module, inputs(("x", "x", rand(5, 6, seed=3)))


def _optimizers(layer, module):
    return [paddle.optimizer.Momentum(0.1, 0.9, parameters=layer.parameters()),
            torch.optim.SGD(module.parameters(), 0.1, momentum=0.9)]


def test_common_case_runs_each_forward_once_per_step(caplog):
    layer, module, inp = _pair(reordered=False)
    with caplog.at_level(logging.INFO, logger="padiff"):
        rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-5})
    assert rep, rep.first_diff
    assert (layer.calls, module.calls) == (1, 1)  # no discovery forward, no repeated run
    assert not any("call order" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(layer.a.weight.numpy().T, module.p.weight.detach().numpy())

    layer, module, inp = _pair(reordered=False)
    rep = padiff.compare(layer, module, inp, auto_weights=True, steps=3, optimizer=_optimizers(layer, module),
                         options={"atol": 1e-5})
    assert rep, rep.first_diff
    assert (layer.calls, module.calls) == (3, 3)


def test_definition_order_guess_that_is_wrong_is_copied_again_and_rerun(caplog):
    layer, module, inp = _pair(reordered=True)
    with caplog.at_level(logging.INFO, logger="padiff"):
        rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-5})
    assert rep, rep.first_diff
    assert any("another order than they define them" in r.getMessage() for r in caplog.records)
    # the weights come from the call-order partner, not from the definition-order one
    np.testing.assert_allclose(layer.a.weight.numpy().T, module.p.weight.detach().numpy())
    np.testing.assert_allclose(layer.b.weight.numpy().T, module.q.weight.detach().numpy())
    assert (layer.calls, module.calls) == (2, 2)  # the stopped first forward, then the run

    # nothing of the stopped run is left in the report: it reads as a run of the in-order twin
    layer2, module2, inp2 = _pair(reordered=False)
    ref = padiff.compare(layer2, module2, inp2, auto_weights=True, options={"atol": 1e-5})
    assert [(r.stage, r.paddle_path, r.item) for r in rep.records] == \
        [(r.stage, r.paddle_path, r.item) for r in ref.records]
    assert rep.warnings == ref.warnings and len(rep.skipped) == len(ref.skipped)
    assert {m["paddle_path"]: m["torch_path"] for m in rep.mapping}["a"] == "p"


def test_rerun_training_check_steps_each_optimizer_exactly_steps_times():
    layer, module, inp = _pair(reordered=True)
    opts = _optimizers(layer, module)
    rep = padiff.compare(layer, module, inp, auto_weights=True, steps=2, optimizer=opts, options={"atol": 1e-5})
    assert rep, rep.first_diff
    # the stopped run never stepped: momentum buffers hold exactly two steps, as in the in-order twin
    layer2, module2, inp2 = _pair(reordered=False)
    opts2 = _optimizers(layer2, module2)
    assert padiff.compare(layer2, module2, inp2, auto_weights=True, steps=2, optimizer=opts2, options={"atol": 1e-5})
    torch.testing.assert_close(opts[1].state[module.q.weight]["momentum_buffer"],
                               opts2[1].state[module2.q.weight]["momentum_buffer"])
    assert (layer.calls, module.calls) == (3, 3)
    np.testing.assert_allclose(layer.b.weight.numpy().T, module.q.weight.detach().numpy(), atol=1e-5)

    # running statistics were updated by the two compared steps only, as in the in-order twin
    np.testing.assert_allclose(module.norm.running_mean.numpy(), module2.norm.running_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(layer.bn._mean.numpy(), layer2.bn._mean.numpy(), atol=1e-6)


def test_rerun_finds_a_real_difference_at_the_right_pair():
    layer, module, inp = _pair(reordered=True)
    rep_fn = padiff.compare

    class Wrong(TorchNetReordered):
        def forward(self, x):
            self.count()
            return self.q(torch.sigmoid(self.norm(self.p(x))))  # sigmoid where paddle has tanh

    wrong = Wrong()
    wrong.load_state_dict(module.state_dict())
    rep = rep_fn(layer, wrong, inp, auto_weights=True, options={"atol": 1e-5})
    assert not rep
    assert (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("forward", "b", "q")


def test_auto_weights_leaves_the_user_state_as_before_when_the_rerun_happens():
    layer, module, inp = _pair(reordered=True)
    mean_before = module.norm.running_mean.clone()
    modes = (layer.training, module.training)
    assert padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-5})
    torch.testing.assert_close(module.norm.running_mean, mean_before)
    np.testing.assert_allclose(layer.bn._mean.numpy(), mean_before.numpy())  # copied, then put back as copied
    assert (layer.training, module.training) == modes
