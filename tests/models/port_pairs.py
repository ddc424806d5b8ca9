"""Model pairs as people port them: PaConvert's torch-compatible paddle layers, raw square weights,
affine-free norms against default ones, and a model caching tensors in attributes during forward."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.compat.nn as cnn
import torch

E = 8  # square Linear / attention width


class CompatNet(paddle.nn.Layer):
    """What PaConvert writes for :class:`TorchNet`: ``paddle.compat.nn`` layers, torch's layouts."""

    def __init__(self, fault: float = 0.0) -> None:
        super().__init__()
        self.square = cnn.Linear(E, E)
        self.wide = cnn.Linear(E, 2 * E)
        self.narrow = cnn.Linear(2 * E, E)
        self.attn = cnn.MultiheadAttention(E, 2)
        self.fault = fault

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        h = paddle.nn.functional.relu(self.square(x))
        h = self.narrow(paddle.tanh(self.wide(h))) + self.fault
        return self.attn(h, h, h)[0]


class TorchNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.square = torch.nn.Linear(E, E)
        self.wide = torch.nn.Linear(E, 2 * E)
        self.narrow = torch.nn.Linear(2 * E, E)
        self.attn = torch.nn.MultiheadAttention(E, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.square(x))
        h = self.narrow(torch.tanh(self.wide(h)))
        return self.attn(h, h, h)[0]


class PaddleRawProj(paddle.nn.Layer):
    """A square weight made with ``create_parameter``; ``transposed``: used as ``x @ W.T`` (torch's layout)."""

    def __init__(self, transposed: bool = False, fault: float = 0.0) -> None:
        super().__init__()
        self.w = self.create_parameter([E, E])
        self.transposed = transposed
        self.fault = fault

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.matmul(x, self.w, transpose_y=self.transposed) * (1.0 + self.fault)


class TorchRawProj(torch.nn.Module):
    """A square raw parameter; ``transposed``: used as ``x @ W.T``, else ``x @ W`` (paddle's Linear layout)."""

    def __init__(self, transposed: bool = False) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(E, E) / E ** 0.5)
        self.transposed = transposed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ (self.w.T if self.transposed else self.w)


class PaddleRawNet(paddle.nn.Layer):
    def __init__(self, proj: paddle.nn.Layer | None = None) -> None:
        super().__init__()
        self.proj = proj if proj is not None else paddle.nn.Linear(E, E, bias_attr=False)
        self.out = paddle.nn.Linear(E, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.out(paddle.tanh(self.proj(x)))


class TorchRawNet(torch.nn.Module):
    def __init__(self, proj: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.proj = proj if proj is not None else torch.nn.Linear(E, E, bias=False)
        self.out = torch.nn.Linear(E, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.proj(x)))


class PaddleNormNet(paddle.nn.Layer):
    """Linear, LayerNorm, Linear; ``affine=False``: the norm holds no scale and no bias."""

    def __init__(self, affine: bool = True, epsilon: float = 1e-5) -> None:
        super().__init__()
        self.inp = paddle.nn.Linear(E, E)
        self.norm = (paddle.nn.LayerNorm(E, epsilon=epsilon) if affine
                     else paddle.nn.LayerNorm(E, epsilon=epsilon, weight_attr=False, bias_attr=False))
        self.out = paddle.nn.Linear(E, 3)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.out(self.norm(self.inp(x)))


class TorchNormNet(torch.nn.Module):
    def __init__(self, affine: bool = True) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(E, E)
        self.norm = torch.nn.LayerNorm(E, elementwise_affine=affine)
        self.out = torch.nn.Linear(E, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.inp(x)))


def inputs(*shape: int, seed: int = 0) -> tuple[dict[str, paddle.Tensor], dict[str, torch.Tensor]]:
    """The same random input for both sides, as ``example_inp``."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return {"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x.copy())}


class PaddleCacheNet(paddle.nn.Layer):
    """Caches a tensor in an attribute during forward (a rotary table, a mask); ``.view`` defeats ``jit.save``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = paddle.nn.Linear(16, 16)
        self.table: paddle.Tensor | None = None
        self.calls = 0

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.table is None:
            self.table = paddle.linspace(0.5, 1.5, 16)
        self.calls += 1
        h = self.lin(x) * self.table
        return h.view([-1, 4, 4]).reshape([-1, 16])


class TorchCacheNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(16, 16)
        self.table: torch.Tensor | None = None
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            self.table = torch.linspace(0.5, 1.5, 16)
        self.calls += 1
        h = self.lin(x) * self.table
        return h.view(-1, 4, 4).reshape(-1, 16)
