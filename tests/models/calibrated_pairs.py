"""A small attention block in paddle and torch, correct or with one planted port fault.

Both sides define the same layers in the same order (call-order pairing and ``auto_weights``
work), compute LayerNorm -> masked self-attention -> residual -> MLP (Linear, GELU, Linear)
-> residual -> LayerNorm, and differ only where ``fault`` says, on the paddle side:

- ``"scale"``: the MLP's second Linear's output multiplied by 1.001
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


class ScaledLinear(paddle.nn.Linear):
    """A Linear whose output is off by 0.1%."""

    def forward(self, x):
        return super().forward(x) * 1.001


class PaddleMLP(paddle.nn.Layer):
    def __init__(self, fault: str = "") -> None:
        super().__init__()
        self.fault = fault
        self.fc1 = paddle.nn.Linear(D, 2 * D)
        self.act = paddle.nn.GELU(approximate=fault == "gelu")
        self.fc2 = (ScaledLinear if fault == "scale" else paddle.nn.Linear)(2 * D, D)

    def forward(self, h):
        return self.fc2(self.act(self.fc1(h)))


class TorchMLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(D, 2 * D)
        self.act = torch.nn.GELU()
        self.fc2 = torch.nn.Linear(2 * D, D)

    def forward(self, h):
        return self.fc2(self.act(self.fc1(h)))


class PaddleBlock(paddle.nn.Layer):
    def __init__(self, fault: str = "") -> None:
        super().__init__()
        self.fault = fault
        self.norm1 = paddle.nn.LayerNorm(D)
        self.qkv = paddle.nn.Linear(D, 3 * D)
        self.proj = paddle.nn.Linear(D, D)
        self.mlp = PaddleMLP(fault)
        self.norm2 = paddle.nn.LayerNorm(D, epsilon=1e-6 if fault == "epsilon" else 1e-5)
        self.mask = paddle.to_tensor(causal_mask(flip=fault == "mask"))

    def forward(self, x):
        q, k, v = paddle.split(self.qkv(self.norm1(x)), 3, axis=-1)
        scores = paddle.matmul(q, k, transpose_y=True)
        if self.fault != "sqrt_d":
            scores = scores / math.sqrt(D)
        h = x + self.proj(paddle.matmul(PF.softmax(scores + self.mask, axis=-1), v))
        return self.norm2(h + self.mlp(h))


class TorchBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(D)
        self.qkv = torch.nn.Linear(D, 3 * D)
        self.proj = torch.nn.Linear(D, D)
        self.mlp = TorchMLP()
        self.norm2 = torch.nn.LayerNorm(D)
        self.mask = torch.from_numpy(causal_mask())

    def forward(self, x):
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D)
        h = x + self.proj(TF.softmax(scores + self.mask, dim=-1) @ v)
        return self.norm2(h + self.mlp(h))


#: the pair each planted fault must be reported at (torch path)
FAULT_AT = {"scale": "mlp.fc2", "epsilon": "norm2", "gelu": "mlp.act", "sqrt_d": "proj", "mask": "proj"}


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


def bf16_block_pair(fault: str = "", seed: int = 0) -> tuple[PaddleBlock, TorchBlock, tuple[dict, dict]]:
    """The block with torch computing in bfloat16 and paddle emulating it, weights already copied.

    paddle's CPU build has no bfloat16 matmul or LayerNorm kernel, so paddle computes in float32
    on the same bfloat16 weights and input and rounds every leaf layer's output to bfloat16 (the
    noise model of bfloat16 storage); torch runs bfloat16 kernels.
    """
    layer, module, inp = block_pair(fault, seed)
    module = module.to(torch.bfloat16)
    module.mask = module.mask.to(torch.bfloat16)
    for name, p in layer.named_parameters():
        src = module.get_parameter(name).detach()
        p.set_value((src.float().numpy().T if p.ndim == 2 else src.float().numpy()).astype(np.float32))
    for sub in layer.sublayers():
        if not sub.sublayers():
            sub.register_forward_post_hook(lambda lay, args, out: out.astype("bfloat16").astype("float32"))
    x = inp[1]["x"].to(torch.bfloat16)
    return layer, module, ({"x": paddle.to_tensor(x.float().numpy())}, {"x": x})
