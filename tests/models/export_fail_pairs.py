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


class PaddleAliasNet(_PaddleBase):
    """Every Linear reads a ``contiguous()``/``clone()`` of the previous result, and a ``view`` stops export."""

    def forward(self, x):
        h = PF.relu(self.body(x)).contiguous()
        h = h.view([-1, 4, 4]).reshape([-1, D]).clone()
        return self.head(paddle.tanh(self.mid(h)).contiguous())


class TorchAliasNet(_TorchBase):
    def forward(self, x):
        h = TF.relu(self.l1(x)).contiguous()
        h = h.view(-1, 4, 4).reshape(-1, D).clone()
        return self.l3(torch.tanh(self.l2(h)).detach().T.T)


K = 2


class PaddleRouter(paddle.nn.Layer):
    """A leaf holding a raw gate weight; returns ``(softmax of the top-k logits, their indices)``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = self.create_parameter([D, 4])

    def forward(self, h):
        values, idx = paddle.topk(paddle.matmul(h, self.weight), K, axis=-1)
        return PF.softmax(values, axis=-1), idx


class TorchRouter(torch.nn.Module):
    """Returns ``(logits, top-k scores scattered over all experts, indices)``: not the paddle router's quantities."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, D) * 0.1)

    def forward(self, h):
        logits = TF.linear(h, self.weight)
        values, idx = torch.topk(logits, K, dim=-1)
        scores = torch.zeros_like(logits).scatter_(1, idx, TF.softmax(values, dim=-1))
        return logits, scores, idx


class PaddleExtraRouter(PaddleRouter):
    """Returns the torch router's three quantities plus nothing else: its results are among the torch ones."""

    def forward(self, h):
        logits = paddle.matmul(h, self.weight)
        _, idx = paddle.topk(logits, K, axis=-1)
        return logits, idx


class _PaddleRouted(paddle.nn.Layer):
    router_cls = PaddleRouter

    def __init__(self) -> None:
        super().__init__()
        self.proj = paddle.nn.Linear(D, D)
        self.router = self.router_cls()

    def forward(self, x):
        h = self.proj(x).view([-1, D])
        out = self.router(h)
        return h.sum() + out[0].sum() * 0 + out[-1].astype("float32").sum() * 0


class PaddleRoutedNet(_PaddleRouted):
    pass


class PaddleExtraRoutedNet(_PaddleRouted):
    router_cls = PaddleExtraRouter


class TorchRoutedNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(D, D)
        self.router = TorchRouter()

    def forward(self, x):
        h = self.proj(x).view(-1, D)
        out = self.router(h)
        return h.sum() + out[0].sum() * 0 + out[-1].float().sum() * 0
