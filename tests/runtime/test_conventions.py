"""Framework conventions (padiff/compare/conventions.py): the frameworks differ, the port is not blamed."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch
from models.basic import inputs, rand

import padiff
from padiff.adapters.state import BatchNormUpdate
from padiff.compare.conventions import BATCHNORM_VARIANCE_NOTE, BatchNormVariance
from padiff.report.text import render_summary

TOL = {"atol": 1e-5, "rtol": 1e-4}


class PdNet(paddle.nn.Layer):
    def __init__(self, momentum: float = 0.9) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 6, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(6, momentum=momentum)
        self.fc = paddle.nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(paddle.nn.functional.relu(self.bn(self.conv(x))).mean(axis=[2, 3]))


class PtNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(6)
        self.fc = torch.nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def test_the_frameworks_update_the_running_variance_differently():
    x = rand(4, 3, 5, 5)
    p, t = paddle.nn.BatchNorm2D(3), torch.nn.BatchNorm2d(3)
    p.train()
    t.train()
    p(paddle.to_tensor(x))
    t(torch.tensor(x))
    biased, unbiased = x.var(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(p._variance.numpy(), 0.9 + 0.1 * biased, rtol=1e-5)
    np.testing.assert_allclose(t.running_var.numpy(), 0.9 + 0.1 * unbiased, rtol=1e-5)
    assert not np.allclose(p._variance.numpy(), t.running_var.numpy(), rtol=1e-4, atol=1e-5)
    # the correction padiff applies turns paddle's value into torch's
    bn = BatchNormVariance()
    bn.observe("bn", BatchNormUpdate(0.9, 1, "_variance"), x)
    np.testing.assert_allclose(bn.corrected("bn", "_variance", p._variance.numpy()), t.running_var.numpy(),
                               rtol=1e-5)
    assert bn.corrected("bn", "_mean", p._mean.numpy()) is None  # the mean needs no correction


def _train(layer, module, steps=3):
    layer.train()
    module.train()
    opts = [paddle.optimizer.SGD(learning_rate=0.1, parameters=layer.parameters()),
            torch.optim.SGD(module.parameters(), lr=0.1)]
    return padiff.compare(layer, module, inputs(("x", "x", rand(4, 3, 6, 6))), auto_weights=True, steps=steps,
                          optimizer=opts, options=TOL)


@pytest.mark.parametrize("mode", ["mean", "strict"])
def test_a_correct_batchnorm_port_trains_three_steps_and_says_what_was_reconciled(mode):
    layer, module = PdNet(), PtNet()
    layer.train()
    module.train()
    opts = [paddle.optimizer.SGD(learning_rate=0.1, parameters=layer.parameters()),
            torch.optim.SGD(module.parameters(), lr=0.1)]
    rep = padiff.compare(layer, module, inputs(("x", "x", rand(4, 3, 6, 6))), auto_weights=True, steps=3,
                         optimizer=opts, options={**TOL, "compare_mode": mode})
    assert rep, rep.first_diff
    var = [r for r in rep.records if r.stage == "weight" and r.item == "_variance"]
    assert len(var) == 3 and all(r.stats.reconciled == BATCHNORM_VARIANCE_NOTE for r in var)
    assert all(not r.stats.reconciled for r in rep.records if r.stage == "weight" and r.item != "_variance")


def test_a_wrong_momentum_still_fails_at_the_batchnorm():
    rep = _train(PdNet(momentum=0.1), PtNet())  # torch's convention written into paddle
    assert not rep
    assert (rep.first_diff.stage, rep.first_diff.paddle_path) == ("weight", "bn")
    assert rep.first_diff.item in ("_mean", "_variance")


def test_without_the_correction_the_correct_port_would_fail(monkeypatch):
    # the test above passes because of the correction, not by chance
    monkeypatch.setattr(BatchNormVariance, "corrected", lambda self, path, name, value: None)
    rep = _train(PdNet(), PtNet())
    assert not rep and (rep.first_diff.paddle_path, rep.first_diff.item) == ("bn", "_variance")


def test_the_success_report_says_what_was_reconciled():
    rep = _train(PdNet(), PtNet(), steps=2)
    assert rep
    assert f"reconciled (2x): {BATCHNORM_VARIANCE_NOTE}" in render_summary(rep)


def test_momentum_is_read_the_torch_way():
    from padiff.compare.conventions import momentum_as_torch

    assert momentum_as_torch(0.9) == 0.1 and momentum_as_torch(0.99) == 0.01
