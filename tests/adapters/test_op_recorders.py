"""Each side's ``record_ops``: outermost ops land in a trace, and the framework is put back exactly."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

from padiff.adapters import PADDLE, TORCH, op_events
from padiff.adapters.op_events import Trace
from padiff.adapters.paddle_ops import patched_names


def _identities():
    return list(patched_names())


def _torch_modes() -> int:
    return torch._C._len_torch_function_stack()


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_recorders_restore_everything_when_the_model_raises(exc):
    before = _identities()
    with pytest.raises(exc), PADDLE.record_ops(Trace("")):
        assert any(vars(o)[n] is not obj for o, n, obj in before)  # really patched inside
        raise exc("boom")
    assert all(vars(o)[n] is obj for o, n, obj in before)
    with pytest.raises(exc), TORCH.record_ops(Trace("")):
        assert _torch_modes() == 1
        raise exc("boom")
    assert _torch_modes() == 0


def test_a_trace_keeps_at_most_its_budget(monkeypatch):
    monkeypatch.setattr(op_events, "MAX_OPS", 3)
    for side, fw_x, tanh in ((TORCH, torch.ones(4), torch.tanh), (PADDLE, paddle.ones([4]), paddle.tanh)):
        tr = Trace("")
        with side.record_ops(tr):
            y = fw_x
            for _ in range(6):
                y = tanh(y) * 1.0
        assert len(tr.ops) == 3 and tr.full
        expected = np.ones(4, dtype="float32")
        for _ in range(6):
            expected = np.tanh(expected)
        assert np.allclose(np.asarray(y), expected, atol=1e-6)  # the model still ran every op


def _scaled(side, x):
    tr = Trace("")
    with side.record_ops(tr):
        y = x * 0.5  # the user's line
    return tr, y


@pytest.mark.parametrize("side, x", [(PADDLE, "paddle"), (TORCH, "torch")])
def test_each_side_records_the_op_its_value_and_the_users_line(side, x):
    x = paddle.ones([2, 3]) if x == "paddle" else torch.ones(2, 3)
    tr, _ = _scaled(side, x)
    (op,) = tr.ops
    assert op.kind == "mul" and op.params.get("scalar") == 0.5
    assert np.array_equal(op.outputs[0], np.full((2, 3), 0.5, dtype="float32"))
    assert op.frame is not None and op.frame[0] == __file__ and op.frame[2] == "_scaled"


def test_paddle_records_its_own_momentum_and_the_runtime_reads_it_the_torch_way():
    from padiff.compare.conventions import paddle_settings_as_torch

    bn = paddle.nn.BatchNorm1D(3, momentum=0.9)
    tr = Trace("")
    with PADDLE.record_ops(tr):
        bn(paddle.ones([2, 3]))
    (op,) = [o for o in tr.ops if o.kind == "batch_norm"]
    assert op.params["momentum"] == pytest.approx(0.9)  # what paddle was given
    assert paddle_settings_as_torch(op.kind, op.params)["momentum"] == pytest.approx(0.1)
    assert paddle_settings_as_torch("add", {"momentum": 0.9})["momentum"] == 0.9
