"""padiff's built-in loss walks dict outputs in key order, so key-paired dicts get the same weights and round alike."""

from __future__ import annotations

import paddle
import pytest
import torch

from padiff.adapters import PADDLE, TORCH
from padiff.runtime.engine.calls import builtin_loss

# three means whose float32 sum depends on the order they are added in
MEANS = {"a": 0.10490011423826218, "b": -0.5356693863868713, "c": 0.3615950644016266}


@pytest.mark.parametrize(("side", "full"), [(TORCH, lambda v: torch.full((4,), v)),
                                            (PADDLE, lambda v: paddle.full([4], v))])
def test_dicts_built_in_another_key_order_give_the_same_loss_to_the_bit(side, full):
    forward = {k: full(v) for k, v in MEANS.items()}
    backward = {k: full(MEANS[k]) for k in reversed(MEANS)}
    a, _ = builtin_loss(side, (full(1.0), forward))
    b, _ = builtin_loss(side, (full(1.0), backward))
    assert float(side.to_numpy(a)) == float(side.to_numpy(b))
