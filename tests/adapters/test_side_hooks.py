"""Both sides' layer hooks: a pre-hook sees positional and keyword inputs, and what it returns replaces both."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

from padiff.adapters import PADDLE, TORCH
from padiff.adapters.hooks import HookSet


class PAdd(paddle.nn.Layer):
    def forward(self, x, y=None):
        return x + y


class TAdd(torch.nn.Module):
    def forward(self, x, y=None):
        return x + y


@pytest.mark.parametrize("side, make", [(PADDLE, PAdd), (TORCH, TAdd)])
def test_a_pre_hook_sees_keyword_inputs_and_replaces_both_kinds(side, make):
    layer = make()
    x = side.from_numpy(np.ones(3, dtype="float32"))
    y = side.from_numpy(np.full(3, 2.0, dtype="float32"))
    seen = []

    def pre(_lay, args, kwargs):
        seen.append((len(args), sorted(kwargs)))
        double = side.from_numpy(np.full(3, 10.0, dtype="float32"))
        return (args[0] * 0,), {**kwargs, "y": double}

    with HookSet() as hooks:
        hooks.add(side.add_pre_hook(layer, pre))
        out = layer(x, y=y)
    assert seen == [(1, ["y"])]
    assert np.array_equal(side.to_numpy(out), np.full(3, 10.0, dtype="float32"))  # 0 * x + the new y
    assert side.hook_count(layer) == 0
    assert np.array_equal(side.to_numpy(layer(x, y=y)), np.full(3, 3.0, dtype="float32"))  # nothing left behind


def test_torch_thread_limit_is_put_back_early_once_and_on_leaving():
    import torch

    from padiff.adapters import TORCH

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with TORCH.limit_threads(1) as restore:
            assert torch.get_num_threads() == 1
            restore()
            assert torch.get_num_threads() == 2
            torch.set_num_threads(1)  # the user's own change after the early restore is not undone twice
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        with pytest.raises(ValueError), TORCH.limit_threads(1):
            raise ValueError("leaving by an error")
        assert torch.get_num_threads() == 2
        with TORCH.limit_threads(4) as restore:  # no fewer than it has: nothing changes
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
