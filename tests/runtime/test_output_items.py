"""Paired layers that return different numbers of tensors: each tensor is compared with its counterpart.

transformers' GPT-OSS router returns ``(logits, top-k weights, indices)``, its paddle port
``(scores, indices)``; torch's MultiheadAttention adds attention weights. Comparing the leading
tensors pairs unlike quantities (the port's probabilities against torch's logits): the shorter list
is laid onto the order-preserving subsequence of the longer one that fits by shape and agrees by
value (padiff.compare.items), in forward and for the output gradients.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

import padiff
from padiff.compare.items import align_items, shapes_fit

TOL = {"atol": 1e-5, "rtol": 1e-4}

class PdRouter(paddle.nn.Layer):
    """A raw router weight ``[E, H]`` (as GPT-OSS's), so the router itself is a paired layer."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = self.create_parameter([4, 6])

    def forward(self, x):
        probs = paddle.nn.functional.softmax(paddle.matmul(x, self.weight, transpose_y=True), axis=-1)
        return probs, paddle.argmax(probs, axis=-1)

class PdTop(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.router = PdRouter()
        self.head = paddle.nn.Linear(4, 3)

    def forward(self, x):
        probs, _ = self.router(x)
        return self.head(probs)

class PtRouter(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, 6))

    def forward(self, x):
        logits = torch.nn.functional.linear(x, self.weight)
        probs = torch.softmax(logits, dim=-1)
        return logits, probs, torch.argmax(probs, dim=-1)  # the logits too, first

class PtTop(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.router = PtRouter()
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        _, probs, _ = self.router(x)
        return self.head(probs)

def _inputs() -> tuple[dict, dict]:
    x = np.random.default_rng(0).standard_normal((5, 6)).astype("float32")
    return {"x": paddle.to_tensor(x)}, {"x": torch.tensor(x)}

@pytest.mark.parametrize("phase", ["forward", "both"])
def test_a_router_returning_its_logits_too_passes(phase):
    layer, module = PdTop(), PtTop()
    rep = padiff.compare(layer, module, _inputs(), auto_weights=True, options={**TOL, "diff_phase": phase})
    assert rep, rep.first_diff
    router = [r for r in rep.records if getattr(r, "paddle_path", None) == "router"]
    assert {r.stage for r in router} >= ({"forward"} if phase == "forward" else {"forward", "backward"})

def test_a_fault_in_the_shared_output_is_named_at_the_router():
    module = PtTop()
    module.router.register_forward_hook(lambda m, a, out: (out[0], out[1] * 1.05, out[2]))
    rep = padiff.compare(PdTop(), module, _inputs(), auto_weights=True, options=TOL)
    assert not rep and (rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("router", "router")
    assert rep.first_diff.item == "output[0]"

def test_items_are_laid_on_the_subsequence_that_fits_and_agrees():
    p, t = [(5, 4), (5,)], [(5, 4), (5, 4), (5,)]
    assert align_items(p, t) == ((0, 0), (1, 2))  # no values: the leading fit
    assert align_items(p, t, cost=lambda items: 0.0 if items[0] == (0, 1) else 1.0) == ((0, 1), (1, 2))
    assert align_items([(2, 3)], [(2, 3), (2, 3, 3)]) == ((0, 0),)  # MHA: the output, not the weights
    assert align_items([(3, 5), (7,)], [(3, 5)]) == ((0, 0),)  # an output only paddle returns
    assert align_items([(2,)], [(9,), (8,)]) == ((0, 0),)  # nothing fits: the leading pair, which then fails
    assert shapes_fit((1, 5, 8), (3, 5, 8)) and shapes_fit((2, 15), (2, 3, 5)) and not shapes_fit((5, 2), (5, 4))
