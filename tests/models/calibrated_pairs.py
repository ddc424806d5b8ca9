"""A small attention block in paddle and torch, correct or with one planted port fault.

Both sides define the same layers in the same order (call-order pairing and ``auto_weights``
work), compute LayerNorm -> masked self-attention -> residual -> MLP (Linear, GELU, Linear)
-> residual -> LayerNorm, and differ only where ``fault`` says, on the paddle side:

- ``"scale"``: the MLP's output multiplied by 1.001
- ``"epsilon"``: the final LayerNorm's epsilon 1e-6 instead of 1e-5
- ``"gelu"``: the tanh approximation of GELU instead of the exact one
- ``"sqrt_d"``: attention scores not divided by sqrt(d)
- ``"mask"``: one element of the attention mask flipped
"""

from __future__ import annotations

import math

import numpy as np
import paddle
import paddle.nn.functional as PF
import torch
import torch.nn.functional as TF

FAULTS = ("scale", "epsilon", "gelu", "sqrt_d", "mask")
D, SEQ, BATCH = 32, 12, 2


def causal_mask(flip: bool = False) -> np.ndarray:
    """``[SEQ, SEQ]`` additive mask: 0 where a position may attend, -1e9 where not."""
    allowed = np.tril(np.ones((SEQ, SEQ), dtype=bool))
    if flip:
        allowed[SEQ // 2, SEQ // 2 + 1] = True  # one future position let through
    return np.where(allowed, 0.0, -1e9).astype(np.float32)


class PaddleBlock(paddle.nn.Layer):
    def __init__(self, fault: str = "") -> None:
        super().__init__()
        self.fault = fault
        self.norm1 = paddle.nn.LayerNorm(D)
        self.qkv = paddle.nn.Linear(D, 3 * D)
        self.proj = paddle.nn.Linear(D, D)
        self.fc1 = paddle.nn.Linear(D, 2 * D)
        self.act = paddle.nn.GELU(approximate=fault == "gelu")
        self.fc2 = paddle.nn.Linear(2 * D, D)
        self.norm2 = paddle.nn.LayerNorm(D, epsilon=1e-6 if fault == "epsilon" else 1e-5)
        self.mask = paddle.to_tensor(causal_mask(flip=fault == "mask"))

    def forward(self, x):
        q, k, v = paddle.split(self.qkv(self.norm1(x)), 3, axis=-1)
        scores = paddle.matmul(q, k, transpose_y=True)
        if self.fault != "sqrt_d":
            scores = scores / math.sqrt(D)
        h = x + self.proj(paddle.matmul(PF.softmax(scores + self.mask, axis=-1), v))
        m = self.fc2(self.act(self.fc1(h)))
        if self.fault == "scale":
            m = m * 1.001
        return self.norm2(h + m)


class TorchBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(D)
        self.qkv = torch.nn.Linear(D, 3 * D)
        self.proj = torch.nn.Linear(D, D)
        self.fc1 = torch.nn.Linear(D, 2 * D)
        self.act = torch.nn.GELU()
        self.fc2 = torch.nn.Linear(2 * D, D)
        self.norm2 = torch.nn.LayerNorm(D)
        self.mask = torch.from_numpy(causal_mask())

    def forward(self, x):
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D)
        h = x + self.proj(TF.softmax(scores + self.mask, dim=-1) @ v)
        return self.norm2(h + self.fc2(self.act(self.fc1(h))))


def block_input(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((BATCH, SEQ, D)).astype(np.float32)


def block_pair(fault: str = "", seed: int = 0) -> tuple[PaddleBlock, TorchBlock, tuple[dict, dict]]:
    """The pair (torch weights seeded by ``seed``; copy them with ``auto_weights=True``) and its input."""
    torch.manual_seed(seed)
    module = TorchBlock()
    x = block_input(seed)
    return PaddleBlock(fault), module, ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x.copy())})


# --- a conv net whose conv biases feed an InstanceNorm: their true gradient is zero ---------------
class PaddleConvIN(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.norm1 = paddle.nn.InstanceNorm2D(8)
        self.conv2 = paddle.nn.Conv2D(8, 8, 3, padding=1)
        self.norm2 = paddle.nn.InstanceNorm2D(8)
        self.head = paddle.nn.Linear(8, 5)

    def forward(self, x):
        h = PF.relu(self.norm1(self.conv1(x)))
        h = PF.relu(self.norm2(self.conv2(h)))
        return self.head(h.mean(axis=[2, 3]))


class TorchConvIN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm1 = torch.nn.InstanceNorm2d(8, affine=True)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.norm2 = torch.nn.InstanceNorm2d(8, affine=True)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        h = TF.relu(self.norm1(self.conv1(x)))
        h = TF.relu(self.norm2(self.conv2(h)))
        return self.head(h.mean(dim=(2, 3)))


def conv_in_pair(seed: int = 0) -> tuple[PaddleConvIN, TorchConvIN, tuple[dict, dict]]:
    """The pair (copy torch's weights with ``auto_weights=True``) and a 4x3x16x16 input."""
    torch.manual_seed(seed)
    module = TorchConvIN()
    x = np.random.default_rng(seed).standard_normal((4, 3, 16, 16)).astype(np.float32)
    return PaddleConvIN(), module, ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x.copy())})


def adamw_pair(layer: paddle.nn.Layer, module: torch.nn.Module, lr: float = 1e-3, wd: float = 0.01) -> list:
    """``[paddle AdamW, torch AdamW]`` with the same settings."""
    return [paddle.optimizer.AdamW(learning_rate=lr, parameters=layer.parameters(), weight_decay=wd),
            torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=wd)]
