"""A layer output that only paddle returns is compared in neither forward nor backward.

paddleformers' MoE block returns ``(hidden, router_logits)``, transformers' only the hidden
states. Forward compares the leading tensors (with a warning); the gradient reaching paddle's
extra output has no torch counterpart at all, so it is not a difference either (found on the
Qwen2-MoE real pair, where it was reported as "gradient reached the paddle output but not the
torch output").
"""

from __future__ import annotations

import numpy as np
import paddle
import torch

import padiff


class PBlockAux(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = paddle.nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        aux = paddle.zeros_like(y)  # an auxiliary output the torch port does not return: it takes a
        aux.stop_gradient = False  # gradient in backward but holds no parameter and changes nothing
        return y, aux


class PTop(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.block = PBlockAux()
        self.head = paddle.nn.Linear(4, 2)

    def forward(self, x):
        y, aux = self.block(x)
        return self.head(y + (aux - aux.detach()))  # aux reaches the loss with value 0: a gradient, same output


class TBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)


class TTop(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = TBlock()
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.block(x))


def test_an_output_torch_does_not_return_is_no_backward_difference() -> None:
    x = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    layer, module = PTop(), TTop()
    lm = padiff.LayerMap([padiff.LayerPair("block", "block", opaque=True)])
    rep = padiff.compare(layer, module, ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)}), auto_weights=True,
                         layer_map=lm, options={"atol": 1e-5, "rtol": 1e-4})
    assert bool(rep), rep.first_diff
    assert any("compared (paddle, torch): (0, 0)" in w for w in rep.warnings)
    assert any(r.stage == "backward" and r.paddle_path == "block" for r in rep.records)
