"""BatchNorm in train mode, offline: paddle's biased running variance reconciled as ``compare`` does."""

from __future__ import annotations

import os

import numpy as np
import paddle
import pytest
import torch

import padiff
from padiff.compare.conventions import BATCHNORM_VARIANCE_NOTE

TOL = {"atol": 1e-5, "rtol": 1e-4}


class PdNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 6, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(6, momentum=0.9)
        self.fc = paddle.nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(paddle.nn.functional.relu(self.bn(self.conv(x))).mean(axis=[2, 3]))


class PtNet(torch.nn.Module):
    def __init__(self, momentum: float = 0.1) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(6, momentum=momentum)
        self.fc = torch.nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _batches(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [(rng.standard_normal((4, 3, 6, 6)) * 2 + 1).astype("float32") for _ in range(n)]


def _runs(tmp: str, momentum: float = 0.1, level: str = "full", steps: list[int] | None = None) -> tuple[str, str]:
    """Train each side 3 steps in the user's own loop, recorded; paddle starts from torch's weights."""
    torch.manual_seed(0)
    pt_net = PtNet(momentum)
    padiff.export_weights(pt_net, os.path.join(tmp, "w.safetensors"))
    pd_net = PdNet()
    padiff.import_weights(pd_net, os.path.join(tmp, "w.safetensors"))
    pd_opt = paddle.optimizer.SGD(learning_rate=0.1, parameters=pd_net.parameters())
    pt_opt = torch.optim.SGD(pt_net.parameters(), lr=0.1)
    pd_rec = padiff.Recorder(pd_net, os.path.join(tmp, "pd"), level=level, steps=steps)
    pt_rec = padiff.Recorder(pt_net, os.path.join(tmp, "pt"), level=level, steps=steps)
    for i, x in enumerate(_batches(3)):
        with pd_rec.step(i):
            loss = pd_net(paddle.to_tensor(x)).mean()
            loss.backward()
            pd_opt.step()
            pd_opt.clear_grad()
        with pt_rec.step(i):
            loss = pt_net(torch.from_numpy(x)).mean()
            loss.backward()
            pt_opt.step()
            pt_opt.zero_grad()
    pd_rec.close()
    pt_rec.close()
    return os.path.join(tmp, "pd"), os.path.join(tmp, "pt")


@pytest.mark.parametrize("level", ["full", "stats"])
def test_a_correct_conv_bn_port_passes_and_says_what_was_reconciled(tmp_path: object, level: str) -> None:
    pd, pt = _runs(str(tmp_path), level=level)
    rep = padiff.compare_runs(pd, pt, options=TOL)
    assert rep, rep.failures()[:2]
    var = [r for r in rep.records if r.stage == "weight" and r.item == "_variance"]
    assert len(var) == 3 and all(r.stats.reconciled == BATCHNORM_VARIANCE_NOTE for r in var)
    assert all(not r.stats.reconciled for r in rep.records if r.stage == "weight" and r.item != "_variance")


def test_the_correction_follows_steps_that_were_not_recorded(tmp_path: object) -> None:
    pd, pt = _runs(str(tmp_path), steps=[2])
    rep = padiff.compare_runs(pd, pt, options=TOL)
    assert rep and rep.steps == 1, rep.failures()[:2]


def test_with_the_correction_off_the_correct_port_fails_at_the_running_variance(tmp_path: object) -> None:
    pd, pt = _runs(str(tmp_path))
    first = padiff.compare_runs(pd, pt, options=TOL, conventions=False).first_diff
    assert first is not None
    assert (first.stage, first.step, first.paddle_path, first.item) == ("weight", 0, "bn", "_variance")


def test_the_cli_can_turn_the_correction_off(tmp_path: object) -> None:
    from padiff.cli import main

    pd, pt = _runs(str(tmp_path))
    assert main(["compare-runs", pd, pt, "--options", "atol=1e-5,rtol=1e-4"]) == 0
    assert main(["compare-runs", pd, pt, "--options", "atol=1e-5,rtol=1e-4", "--no-conventions"]) == 1


def test_a_wrong_momentum_fails_at_the_batchnorm_layer(tmp_path: object) -> None:
    pd, pt = _runs(str(tmp_path), momentum=0.2)
    rep = padiff.compare_runs(pd, pt, options=TOL)
    first = rep.first_diff
    assert first is not None and (first.stage, first.step, first.paddle_path) == ("weight", 0, "bn")
    assert all(r.passed for r in rep.records if r.step == 0 and r.stage != "weight")
