"""Model pairs whose first difference is one framework op inside or between layers (op view tests).

Each line that holds the op the op view must name carries a ``# op:<case>:<side>`` marker,
so tests look the expected source line up instead of hard-coding numbers.
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as PF
import torch
import torch.nn.functional as TF


def marked_line(case: str, side: str) -> int:
    """Line number in this file of the ``# op:<case>:<side>`` marker."""
    with open(__file__, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.rstrip().endswith(f"# op:{case}:{side}"):
                return n
    raise LookupError(case + side)


# --- tanh-approximated GELU between fc1 and fc2 ------------------------------------------------
class PaddleGeluMLP(paddle.nn.Layer):
    def __init__(self, approximate: bool = True) -> None:
        super().__init__()
        self.fc1, self.fc2 = paddle.nn.Linear(8, 16), paddle.nn.Linear(16, 4)
        self.approximate = approximate

    def forward(self, x):
        h = self.fc1(x)
        h = PF.gelu(h, approximate=self.approximate)  # op:gelu:paddle
        return self.fc2(h)


class TorchGeluMLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)

    def forward(self, x):
        h = self.fc1(x)
        h = TF.gelu(h)  # op:gelu:torch
        return self.fc2(h)


# --- an inline scaling between two layers ------------------------------------------------------
class PaddleScaled(paddle.nn.Layer):
    def __init__(self, factor: float = 0.5) -> None:
        super().__init__()
        self.a, self.b = paddle.nn.Linear(6, 6), paddle.nn.Linear(6, 3)
        self.factor = factor

    def forward(self, x):
        h = paddle.tanh(self.a(x))
        h = h * self.factor  # op:scale:paddle
        return self.b(h)


class TorchScaled(torch.nn.Module):
    def __init__(self, factor: float = 0.51) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(6, 6), torch.nn.Linear(6, 3)
        self.factor = factor

    def forward(self, x):
        h = torch.tanh(self.a(x))
        h = h * self.factor  # op:scale:torch
        return self.b(h)


# --- hand-written RMSNorm with another epsilon -------------------------------------------------
class PaddleRMSNorm(paddle.nn.Layer):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = self.create_parameter([dim], default_initializer=paddle.nn.initializer.Constant(1.0))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return x * paddle.rsqrt(var + self.eps) * self.weight  # op:eps:paddle


class TorchRMSNorm(torch.nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(var + self.eps) * self.weight  # op:eps:torch


class PaddleNormed(paddle.nn.Layer):
    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.inp, self.norm, self.out = paddle.nn.Linear(8, 8), PaddleRMSNorm(8, eps), paddle.nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.norm(self.inp(x)))


class TorchNormed(torch.nn.Module):
    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.inp, self.norm, self.out = torch.nn.Linear(8, 8), TorchRMSNorm(8, eps), torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.norm(self.inp(x)))


# --- attention whose query heads are split by a reshape that skips the transpose -----------------
HEADS, HEAD_DIM = 2, 4


class PaddleAttention(paddle.nn.Layer):
    def __init__(self, transposed: bool = False) -> None:
        super().__init__()
        d = HEADS * HEAD_DIM
        self.q, self.k, self.v, self.o = (paddle.nn.Linear(d, d) for _ in range(4))
        self.transposed = transposed

    def _heads(self, t):
        b, s, _ = t.shape
        return t.reshape([b, s, HEADS, HEAD_DIM]).transpose([0, 2, 1, 3])

    def forward(self, x):
        b, s, _ = x.shape
        q = self.q(x)
        q = q.reshape([b, HEADS, s, HEAD_DIM]) if self.transposed else self._heads(q)  # op:heads:paddle
        k, v = self._heads(self.k(x)), self._heads(self.v(x))
        w = PF.softmax(paddle.matmul(q, k, transpose_y=True) / HEAD_DIM ** 0.5, axis=-1)
        out = paddle.matmul(w, v).transpose([0, 2, 1, 3]).reshape([b, s, HEADS * HEAD_DIM])
        return self.o(out)


class TorchAttention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        d = HEADS * HEAD_DIM
        self.q, self.k, self.v, self.o = (torch.nn.Linear(d, d) for _ in range(4))

    def _heads(self, t):
        b, s, _ = t.shape
        return t.view(b, s, HEADS, HEAD_DIM).transpose(1, 2)  # op:heads:torch

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        w = TF.softmax(q @ k.transpose(-1, -2) / HEAD_DIM ** 0.5, dim=-1)
        out = (w @ v).transpose(1, 2).reshape(b, s, HEADS * HEAD_DIM)
        return self.o(out)


class PaddleAttnBlock(paddle.nn.Layer):
    def __init__(self, transposed: bool = True) -> None:
        super().__init__()
        self.attn = PaddleAttention(transposed)
        self.proj = paddle.nn.Linear(HEADS * HEAD_DIM, 3)

    def forward(self, x):
        return self.proj(self.attn(x))


class TorchAttnBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = TorchAttention()
        self.proj = torch.nn.Linear(HEADS * HEAD_DIM, 3)

    def forward(self, x):
        return self.proj(self.attn(x))
