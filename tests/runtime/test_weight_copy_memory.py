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


def test_spill_of_views_keeps_the_values_they_had_when_added() -> None:
    rng = np.random.default_rng(1)
    for threshold in (0, 10**9):  # written to the file at once, or copied in memory
        sources = [rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal(6).astype("float64")]
        want = [s.copy() for s in sources]
        keep = spill.Spill(threshold)
        for s in sources:
            view = s.view()
            view.flags.writeable = False
            keep.add(view, view=True)
            s[...] = 7.0  # the tensor behind the view changes right after
        got = keep.arrays()
        assert all(np.array_equal(g, w) for g, w in zip(got, want)), threshold


def test_the_copy_reads_the_old_paddle_values_without_a_host_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    layer, module = _pair()
    before = [p.numpy().copy() for p in layer.parameters()]
    monkeypatch.setattr(spill, "SPILL_BYTES", 0)
    copies: list[tuple[int, ...]] = []
    real = PADDLE.to_numpy

    def counting(t: object) -> np.ndarray:
        copies.append(tuple(t.shape))  # type: ignore[attr-defined]
        return real(t)

    monkeypatch.setattr(PADDLE, "to_numpy", counting)
    snapshot: list[tuple[object, np.ndarray]] = []
    from padiff.layer_map import LayerMap
    from padiff.weights.assign import copy_weights  # the copy compare(auto_weights=True) makes
    from padiff.weights.assign_plan import plan_weights

    copy_weights(layer, module, plan_weights(layer, module, LayerMap().resolve(layer, module)), keep=snapshot)
    assert (WIDTH, WIDTH) not in copies  # every weight's old value went from paddle's memory to the file
    assert all(np.array_equal(b, arr) for b, (_, arr) in zip(before, snapshot))
