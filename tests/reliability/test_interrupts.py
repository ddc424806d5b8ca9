"""Ctrl-C (and any BaseException) is handled like an error: nothing half-written, no child left behind."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import paddle
import pytest
import torch
from reliability._helpers import net_pair

import padiff
from padiff.adapters import PADDLE


def _interrupt_on_call(monkeypatch, n: int) -> None:
    """Make the ``n``-th paddle ``set_value`` raise KeyboardInterrupt (once: the restore must still work)."""
    real = PADDLE.set_value
    count = {"n": 0}

    def fake(t, arr):
        count["n"] += 1
        if count["n"] == n:
            raise KeyboardInterrupt
        real(t, arr)

    monkeypatch.setattr(PADDLE, "set_value", fake)


def _paddle_values(layer) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def _fresh_pair():
    layer, module, inp = net_pair(0)
    torch.manual_seed(7)
    for p in module.parameters():  # torch now holds other weights than paddle
        torch.nn.init.normal_(p)
    return layer, module, inp


def test_ctrl_c_mid_copy_leaves_assign_weight_paddle_model_as_it_was(monkeypatch):
    layer, module, _ = _fresh_pair()
    before = _paddle_values(layer)
    _interrupt_on_call(monkeypatch, 3)  # fc1 written, then the interrupt
    with pytest.raises(KeyboardInterrupt):
        padiff.assign_weight(layer, module)
    after = _paddle_values(layer)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_ctrl_c_mid_copy_leaves_compare_auto_weights_paddle_model_as_it_was(monkeypatch):
    layer, module, inp = _fresh_pair()
    before = _paddle_values(layer)
    _interrupt_on_call(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        padiff.compare(layer, module, inp, auto_weights=True)
    after = _paddle_values(layer)
    assert all(np.array_equal(before[k], after[k]) for k in before)


class _Recorded:
    """Records the export child and temp dir ``start_export`` creates."""

    def __init__(self, monkeypatch) -> None:
        import tempfile

        self.procs: list[subprocess.Popen] = []
        self.dirs: list[str] = []
        real_popen, real_tmp = subprocess.Popen, tempfile.TemporaryDirectory
        rec = self

        def popen(*a, **k):
            p = real_popen(*a, **k)
            rec.procs.append(p)
            return p

        def tmpdir(*a, **k):
            d = real_tmp(*a, **k)
            rec.dirs.append(d.name)
            return d

        monkeypatch.setattr(subprocess, "Popen", popen)
        monkeypatch.setattr(tempfile, "TemporaryDirectory", tmpdir)

    def assert_clean(self) -> None:
        assert self.procs and self.dirs
        for p in self.procs:
            assert p.returncode is not None, "the paddle2onnx child is still running or was not reaped"
        for d in self.dirs:
            assert not os.path.exists(d), f"temp dir {d} left behind"


def test_ctrl_c_during_the_paddle_trace_kills_and_reaps_the_child(monkeypatch):
    from padiff.graph.export_paddle import start_export

    layer, _, (p_inp, _) = net_pair(0)
    rec = _Recorded(monkeypatch)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(paddle.jit, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        start_export(layer, p_inp)
    rec.assert_clean()


def test_ctrl_c_while_waiting_for_paddle2onnx_kills_the_child(monkeypatch):
    from padiff.graph.export_paddle import start_export

    layer, _, (p_inp, _) = net_pair(0)
    rec = _Recorded(monkeypatch)
    pending = start_export(layer, p_inp)
    real = pending.proc.communicate
    calls = {"n": 0}

    def communicate(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:  # the user presses Ctrl-C while padiff waits
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(pending.proc, "communicate", communicate)
    with pytest.raises(KeyboardInterrupt):
        pending.result(60)
    rec.assert_clean()
