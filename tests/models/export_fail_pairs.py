"""Model pairs an exporter cannot export, with three same-shaped Linears defined out of call order.

Definition order differs between the sides, so only dataflow tells the pairs apart; the
truth is :data:`TRUTH` (paddle path -> torch path).
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as PF
import torch
import torch.nn.functional as TF

D = 16
TRUTH = {"body": "l1", "mid": "l2", "head": "l3"}


class _PaddleBase(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.head, self.body, self.mid = (paddle.nn.Linear(D, D) for _ in range(3))


class _TorchBase(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = (torch.nn.Linear(D, D) for _ in range(3))


class PaddleViewNet(_PaddleBase):
    """``Tensor.view`` in forward: ``paddle.jit.save`` cannot export it."""

    def forward(self, x):
        h = PF.relu(self.body(x))
        h = h.view([-1, 4, 4]).reshape([-1, D])
        return self.head(paddle.tanh(self.mid(h)))


class TorchViewNet(_TorchBase):
    def forward(self, x):
        h = TF.relu(self.l1(x))
        h = h.view(-1, 4, 4).reshape(-1, D)
        return self.l3(torch.tanh(self.l2(h)))


class PaddleDiffNet(_PaddleBase):
    def forward(self, x):
        h = PF.relu(self.body(x))
        h = paddle.diff(h, axis=-1, prepend=h[:, :1])
        return self.head(paddle.tanh(self.mid(h)))


class TorchDiffNet(_TorchBase):
    """``torch.diff`` in forward: torch's TorchScript ONNX exporter has no ``aten::diff``."""

    def forward(self, x):
        h = TF.relu(self.l1(x))
        h = torch.diff(h, dim=-1, prepend=h[:, :1])
        return self.l3(torch.tanh(self.l2(h)))
