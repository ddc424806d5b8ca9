"""The weight copy at real sizes: no extra full copy of either model in memory.

All or nothing still holds (every paddle tensor's value before the copy is kept until the copy
succeeded), but a large snapshot lives in a temporary file, and the torch tensors are read
through views.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import paddle
import pytest
import torch

import padiff
from padiff.adapters import PADDLE
from padiff.weights import spill

WIDTH, DEPTH = 256, 8  # 8 x 256 KB weights per model


def _pair() -> tuple[paddle.nn.Layer, torch.nn.Module]:
    paddle.seed(0)
    torch.manual_seed(1)
    layer = paddle.nn.Sequential(*[paddle.nn.Linear(WIDTH, WIDTH, bias_attr=False) for _ in range(DEPTH)])
    module = torch.nn.Sequential(*[torch.nn.Linear(WIDTH, WIDTH, bias=False) for _ in range(DEPTH)])
    return layer, module


def _weights_bytes(layer: paddle.nn.Layer) -> int:
    return sum(int(np.prod(p.shape)) * 4 for p in layer.parameters())


def test_the_copy_holds_no_second_copy_of_either_model_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    layer, module = _pair()
    monkeypatch.setattr(spill, "SPILL_BYTES", 4 * WIDTH * WIDTH)  # this small model counts as large
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        assert padiff.assign_weight(layer, module) is True
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # before: every paddle tensor's old value as a host array (the model's size) plus a host copy of each
    # torch tensor; now about one tensor's worth at a time
    assert peak < _weights_bytes(layer) / 2, (peak, _weights_bytes(layer))
    for p, t in zip(layer, module):
        np.testing.assert_array_equal(p.weight.numpy(), t.weight.detach().numpy().T)


def test_a_copy_interrupted_midway_is_undone_from_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    layer, module = _pair()
    before = [p.numpy().copy() for p in layer.parameters()]
    monkeypatch.setattr(spill, "SPILL_BYTES", 0)  # everything to the file
    real, count = PADDLE.set_value, {"n": 0}

    def fake(t: object, arr: np.ndarray) -> None:
        count["n"] += 1
        if count["n"] == 5:
            raise KeyboardInterrupt
        real(t, arr)

    monkeypatch.setattr(PADDLE, "set_value", fake)
    with pytest.raises(KeyboardInterrupt):
        padiff.assign_weight(layer, module)
    for b, p in zip(before, layer.parameters()):
        np.testing.assert_array_equal(b, p.numpy())


def test_spill_gives_back_what_it_was_given() -> None:
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((3, 4)).astype("float32"), np.zeros((0, 2), "float32"),
              np.arange(5, dtype="int64"), rng.standard_normal(7).astype("float16")]
    for threshold in (0, 10**9):
        got = spill.spilled([v.copy() for v in values], threshold)
        assert all(g.dtype == v.dtype and np.array_equal(g, v) for g, v in zip(got, values))
