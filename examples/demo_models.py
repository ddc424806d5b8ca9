"""A model and its port, written the way two teams would: other names, order and nesting.

The paddle model is the original; the torch port renamed every attribute, defined the
layers in another order, grouped the head into a submodule, and uses functional
activations where the original has layers.
"""

from __future__ import annotations

import numpy as np
import paddle
import torch
import torch.nn.functional as F


class PaddleBlock(paddle.nn.Layer):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = paddle.nn.Conv2D(c, c, 3, padding=1, bias_attr=False)
        self.bn1 = paddle.nn.BatchNorm2D(c)
        self.relu = paddle.nn.ReLU()
        self.conv2 = paddle.nn.Conv2D(c, c, 3, padding=1, bias_attr=False)
        self.bn2 = paddle.nn.BatchNorm2D(c)

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(h)) + x)


class PaddleNet(paddle.nn.Layer):
    """The original: stem, two residual blocks, pooled MLP head."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = paddle.nn.Conv2D(3, 16, 3, padding=1)
        self.stem_bn = paddle.nn.BatchNorm2D(16)
        self.blocks = paddle.nn.Sequential(PaddleBlock(16), PaddleBlock(16))
        self.pool = paddle.nn.AdaptiveAvgPool2D(1)
        self.fc1 = paddle.nn.Linear(16, 32)
        self.act = paddle.nn.GELU()
        self.fc2 = paddle.nn.Linear(32, classes)

    def forward(self, image):
        h = paddle.nn.functional.relu(self.stem_bn(self.stem(image)))
        h = self.pool(self.blocks(h)).flatten(1)
        return self.fc2(self.act(self.fc1(h)))


class TorchResidual(torch.nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        # defined in another order than the original, other names
        self.norm_b = torch.nn.BatchNorm2d(c)
        self.conv_b = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.norm_a = torch.nn.BatchNorm2d(c)
        self.conv_a = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        h = F.relu(self.norm_a(self.conv_a(x)))
        return F.relu(self.norm_b(self.conv_b(h)) + x)


class TorchHead(torch.nn.Module):
    def __init__(self, c: int, classes: int) -> None:
        super().__init__()
        self.out = torch.nn.Linear(32, classes)
        self.hidden = torch.nn.Linear(c, 32)

    def forward(self, h):
        return self.out(F.gelu(self.hidden(h)))


class TorchNet(torch.nn.Module):
    """The port: renamed, reordered, head nested, functional activations."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.head = TorchHead(16, classes)
        self.res = torch.nn.ModuleList([TorchResidual(16), TorchResidual(16)])
        self.entry_norm = torch.nn.BatchNorm2d(16)
        self.entry = torch.nn.Conv2d(3, 16, 3, padding=1)

    def forward(self, img):
        h = F.relu(self.entry_norm(self.entry(img)))
        for block in self.res:
            h = block(h)
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))


def build() -> tuple[PaddleNet, TorchNet, tuple[dict, dict]]:
    """The pair in eval mode with one input batch (what `padiff run examples/demo_models.py:build` loads)."""
    paddle.seed(0)
    torch.manual_seed(0)
    layer, module = PaddleNet(), TorchNet()
    layer.eval()
    module.eval()
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype("float32")
    return layer, module, ({"image": paddle.to_tensor(x)}, {"img": torch.tensor(x)})
