"""Small paddle/torch model pairs for the engine tests, built in code with random weights."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as PF
import torch
import torch.nn.functional as TF


def inputs(*arrays_by_key: tuple[str, str, np.ndarray]) -> tuple[dict, dict]:
    """Build ``example_inp`` from ``(paddle_key, torch_key, array)`` triples."""
    p = {pk: paddle.to_tensor(a) for pk, _, a in arrays_by_key}
    t = {tk: torch.tensor(a) for _, tk, a in arrays_by_key}
    return p, t


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


# --- MLP: different attribute names, functional relu vs layer -------------------------------
class PaddleMLP(paddle.nn.Layer):
    def __init__(self, d_in: int = 8, d_hidden: int = 16, d_out: int = 4) -> None:
        super().__init__()
        self.fc1 = paddle.nn.Linear(d_in, d_hidden)
        self.act = paddle.nn.ReLU()
        self.fc2 = paddle.nn.Linear(d_hidden, d_hidden)
        self.fc3 = paddle.nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


class TorchMLP(torch.nn.Module):
    def __init__(self, d_in: int = 8, d_hidden: int = 16, d_out: int = 4) -> None:
        super().__init__()
        self.first = torch.nn.Linear(d_in, d_hidden)
        self.middle = torch.nn.Linear(d_hidden, d_hidden)
        self.last = torch.nn.Linear(d_hidden, d_out)

    def forward(self, inp):
        return self.last(TF.relu(self.middle(TF.relu(self.first(inp)))))


def mlp_pair() -> tuple[PaddleMLP, TorchMLP, tuple[dict, dict]]:
    return PaddleMLP(), TorchMLP(), inputs(("x", "inp", rand(3, 8)))


# --- Conv net with BatchNorm and a residual; wrapper (Sequential) on one side ----------------
class PaddleConvNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.stem = paddle.nn.Sequential(paddle.nn.Conv2D(3, 8, 3, padding=1), paddle.nn.BatchNorm2D(8),
                                         paddle.nn.ReLU())
        self.conv = paddle.nn.Conv2D(8, 8, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(8)
        self.pool = paddle.nn.AdaptiveAvgPool2D(1)
        self.head = paddle.nn.Linear(8, 5)

    def forward(self, x):
        h = self.stem(x)
        h = PF.relu(self.bn(self.conv(h)) + h)
        return self.head(self.pool(h).flatten(1))


class TorchConvNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, img):
        h = TF.relu(self.bn1(self.conv1(img)))
        h = TF.relu(self.bn2(self.conv2(h)) + h)
        return self.fc(self.pool(h).flatten(1))


def conv_pair() -> tuple[PaddleConvNet, TorchConvNet, tuple[dict, dict]]:
    return PaddleConvNet(), TorchConvNet(), inputs(("x", "img", rand(2, 3, 8, 8)))


# --- Transformer-like block: LayerNorm, Linear, GELU layer vs functional ---------------------
class PaddleBlock(paddle.nn.Layer):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.norm = paddle.nn.LayerNorm(d)
        self.up = paddle.nn.Linear(d, 2 * d)
        self.act = paddle.nn.GELU()
        self.down = paddle.nn.Linear(2 * d, d)

    def forward(self, x):
        return x + self.down(self.act(self.up(self.norm(x))))


class TorchBlock(torch.nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.ln = torch.nn.LayerNorm(d)
        self.fc_in = torch.nn.Linear(d, 2 * d)
        self.fc_out = torch.nn.Linear(2 * d, d)

    def forward(self, x):
        return x + self.fc_out(TF.gelu(self.fc_in(self.ln(x))))


class PaddleStack(paddle.nn.Layer):
    def __init__(self, n: int = 3, d: int = 16) -> None:
        super().__init__()
        self.blocks = paddle.nn.LayerList([PaddleBlock(d) for _ in range(n)])

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


class TorchStack(torch.nn.Module):
    def __init__(self, n: int = 3, d: int = 16) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([TorchBlock(d) for _ in range(n)])

    def forward(self, x):
        for b in self.layers:
            x = b(x)
        return x


def stack_pair(n: int = 3) -> tuple[PaddleStack, TorchStack, tuple[dict, dict]]:
    return PaddleStack(n), TorchStack(n), inputs(("x", "x", rand(2, 5, 16)))


# --- Two inputs, dict / tuple outputs, a layer reused twice ---------------------------------
class PaddleTwoHeads(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.shared = paddle.nn.Linear(6, 6)
        self.head_a = paddle.nn.Linear(6, 2)
        self.head_b = paddle.nn.Linear(6, 3)

    def forward(self, a, b):
        ha, hb = self.shared(a), self.shared(b)  # reused twice
        return {"a": self.head_a(ha), "b": (self.head_b(hb), 7)}


class TorchTwoHeads(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(6, 6)
        self.out_a = torch.nn.Linear(6, 2)
        self.out_b = torch.nn.Linear(6, 3)

    def forward(self, left, right):
        ha, hb = self.proj(left), self.proj(right)
        return {"a": self.out_a(ha), "b": (self.out_b(hb), 7)}


def two_heads_pair() -> tuple[PaddleTwoHeads, TorchTwoHeads, tuple[dict, dict]]:
    return PaddleTwoHeads(), TorchTwoHeads(), inputs(("a", "left", rand(4, 6, seed=1)),
                                                     ("b", "right", rand(4, 6, seed=2)))


def perturb_torch(module: torch.nn.Module, name: str, delta: float = 0.05) -> None:
    """Inject a weight fault into one torch parameter (after weights were assigned)."""
    with torch.no_grad():
        dict(module.named_parameters())[name].add_(delta)


class DoubleGrad(torch.autograd.Function):
    """Identity in forward, doubles the gradient in backward: a backward-only fault."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return 2 * g
