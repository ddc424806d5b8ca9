"""Model pairs rich in parameter-free layers (Dropout, Identity, activations, pooling).

Each builder returns a :class:`models.aligner_pairs.Case`. ``reverse=True`` builds the
torch side with the definition order reversed inside every module (the computation is
unchanged), so nothing may rely on definition order. ``truth`` lists the
parameter-holding layers; ``free_truth`` (an attribute set on the case) lists, for each
parameter-free torch layer, the paddle layer it stands for.
"""

from __future__ import annotations

from typing import Any

import paddle.nn as pnn
import torch
import torch.nn as tnn

from models.aligner_pairs import Case, _inputs


def _reversed_init(module: tnn.Module, names: list[tuple[str, Any]], reverse: bool) -> None:
    for name, sub in (names[::-1] if reverse else names):
        setattr(module, name, sub)


# --- ViT-like: one Dropout reused against drop1/drop2, Identity drop paths ---------------------
class PMlp(pnn.Layer):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.fc1 = pnn.Linear(d, h)
        self.act = pnn.GELU()
        self.fc2 = pnn.Linear(h, d)
        self.drop = pnn.Dropout(0.1)  # called twice

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class PBlock(pnn.Layer):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm1 = pnn.LayerNorm(d)
        self.qkv = pnn.Linear(d, 3 * d)
        self.attn_drop = pnn.Dropout(0.1)
        self.proj = pnn.Linear(d, d)
        self.proj_drop = pnn.Dropout(0.1)
        self.drop_path = pnn.Identity()  # called twice
        self.norm2 = pnn.LayerNorm(d)
        self.mlp = PMlp(d, 2 * d)
        self.d = d

    def forward(self, x):
        h = self.norm1(x)
        q, k, v = self.qkv(h).split(3, axis=-1)
        a = self.attn_drop(paddle_softmax(q.matmul(k, transpose_y=True) / self.d ** 0.5))
        x = x + self.drop_path(self.proj_drop(self.proj(a.matmul(v))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def paddle_softmax(x):
    import paddle.nn.functional as PF

    return PF.softmax(x, axis=-1)


class PViT(pnn.Layer):
    def __init__(self, d: int = 16, depth: int = 3) -> None:
        super().__init__()
        self.embed = pnn.Linear(8, d)
        self.pos_drop = pnn.Dropout(0.1)
        self.blocks = pnn.LayerList([PBlock(d) for _ in range(depth)])
        self.norm = pnn.LayerNorm(d)
        self.head = pnn.Linear(d, 4)

    def forward(self, x):
        x = self.pos_drop(self.embed(x))
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x))


class TMlp(tnn.Module):
    def __init__(self, d: int, h: int, reverse: bool) -> None:
        super().__init__()
        _reversed_init(self, [("fc1", tnn.Linear(d, h)), ("act", tnn.GELU()), ("drop1", tnn.Dropout(0.1)),
                              ("fc2", tnn.Linear(h, d)), ("drop2", tnn.Dropout(0.1))], reverse)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class TBlock(tnn.Module):
    def __init__(self, d: int, reverse: bool) -> None:
        super().__init__()
        _reversed_init(self, [("norm1", tnn.LayerNorm(d)), ("qkv", tnn.Linear(d, 3 * d)),
                              ("attn_drop", tnn.Dropout(0.1)), ("proj", tnn.Linear(d, d)),
                              ("proj_drop", tnn.Dropout(0.1)), ("drop_path1", tnn.Identity()),
                              ("norm2", tnn.LayerNorm(d)), ("mlp", TMlp(d, 2 * d, reverse)),
                              ("drop_path2", tnn.Identity())], reverse)
        self.d = d

    def forward(self, x):
        h = self.norm1(x)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        a = self.attn_drop(torch.softmax(q @ k.transpose(-1, -2) / self.d ** 0.5, dim=-1))
        x = x + self.drop_path1(self.proj_drop(self.proj(a @ v)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class TViT(tnn.Module):
    def __init__(self, d: int = 16, depth: int = 3, reverse: bool = False) -> None:
        super().__init__()
        _reversed_init(self, [("embed", tnn.Linear(8, d)), ("pos_drop", tnn.Dropout(0.1)),
                              ("blocks", tnn.ModuleList([TBlock(d, reverse) for _ in range(depth)])),
                              ("norm", tnn.LayerNorm(d)), ("head", tnn.Linear(d, 4))], reverse)

    def forward(self, x):
        x = self.pos_drop(self.embed(x))
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x))


def vit_like(reverse: bool = False, depth: int = 3) -> Case:
    """A ViT-like stack: reused Dropout and Identity on paddle, one module per call on torch."""
    truth = {"embed": "embed", "norm": "norm", "head": "head"}
    free = {"pos_drop": "pos_drop"}
    for i in range(depth):
        for name in ("norm1", "qkv", "proj", "norm2", "mlp.fc1", "mlp.fc2"):
            truth[f"blocks.{i}.{name}"] = f"blocks.{i}.{name}"
        for p, t in (("attn_drop", "attn_drop"), ("proj_drop", "proj_drop"), ("drop_path", "drop_path1"),
                     ("drop_path", "drop_path2"), ("mlp.act", "mlp.act"), ("mlp.drop", "mlp.drop1"),
                     ("mlp.drop", "mlp.drop2")):
            free[f"blocks.{i}.{t}"] = f"blocks.{i}.{p}"
    case = Case("vit_like" + ("_reversed" if reverse else ""), PViT(depth=depth), TViT(depth=depth, reverse=reverse),
                _inputs((2, 5, 8)), truth)
    case.free_truth = {t: p for t, p in free.items()}  # type: ignore[attr-defined]
    return case


# --- inception-like: parallel branches with pooling ---------------------------------------------
class PConvBN(pnn.Layer):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = pnn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, bias_attr=False)
        self.bn = pnn.BatchNorm2D(cout)
        self.relu = pnn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class TConvBN(tnn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, reverse: bool = False) -> None:
        super().__init__()
        _reversed_init(self, [("conv", tnn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)),
                              ("bn", tnn.BatchNorm2d(cout)), ("relu", tnn.ReLU())], reverse)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class PInceptionBlock(pnn.Layer):
    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.b1 = PConvBN(cin, c, 1)
        self.b3_pool = pnn.MaxPool2D(3, stride=1, padding=1)
        self.b3 = PConvBN(cin, c, 3)
        self.bp_pool = pnn.AvgPool2D(3, stride=1, padding=1, exclusive=False)
        self.bp = PConvBN(cin, c, 1)

    def forward(self, x):
        import paddle

        return paddle.concat([self.b1(x), self.b3(self.b3_pool(x)), self.bp(self.bp_pool(x))], axis=1)


class TInceptionBlock(tnn.Module):
    def __init__(self, cin: int, c: int, reverse: bool) -> None:
        super().__init__()
        _reversed_init(self, [("branch1x1", TConvBN(cin, c, 1, reverse=reverse)),
                              ("branch3x3_pool", tnn.MaxPool2d(3, stride=1, padding=1)),
                              ("branch3x3", TConvBN(cin, c, 3, reverse=reverse)),
                              ("branch_pool_avg", tnn.AvgPool2d(3, stride=1, padding=1)),
                              ("branch_pool", TConvBN(cin, c, 1, reverse=reverse))], reverse)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch3x3(self.branch3x3_pool(x)),
                          self.branch_pool(self.branch_pool_avg(x))], dim=1)


class PInception(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.stem = PConvBN(3, 8, 3, stride=2)
        self.stem_pool = pnn.MaxPool2D(3, stride=2, padding=1)
        self.mixed = pnn.LayerList([PInceptionBlock(8, 4), PInceptionBlock(12, 4)])
        self.reduce_pool = pnn.MaxPool2D(2, stride=2)
        self.gap = pnn.AdaptiveAvgPool2D(1)
        self.fc = pnn.Linear(12, 5)

    def forward(self, x):
        x = self.stem_pool(self.stem(x))
        x = self.mixed[0](x)
        x = self.mixed[1](self.reduce_pool(x))
        return self.fc(self.gap(x).flatten(1))


class TInception(tnn.Module):
    def __init__(self, reverse: bool = False) -> None:
        super().__init__()
        _reversed_init(self, [("conv_stem", TConvBN(3, 8, 3, stride=2, reverse=reverse)),
                              ("pool_stem", tnn.MaxPool2d(3, stride=2, padding=1)),
                              ("mixed_a", TInceptionBlock(8, 4, reverse)),
                              ("pool_mid", tnn.MaxPool2d(2, stride=2)),
                              ("mixed_b", TInceptionBlock(12, 4, reverse)),
                              ("avgpool", tnn.AdaptiveAvgPool2d(1)), ("fc", tnn.Linear(12, 5))], reverse)

    def forward(self, x):
        x = self.pool_stem(self.conv_stem(x))
        x = self.mixed_b(self.pool_mid(self.mixed_a(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def inception_like(reverse: bool = False) -> Case:
    """Two inception-like blocks of parallel branches (max and average pooling) behind a stem."""
    truth = {"stem.conv": "conv_stem.conv", "stem.bn": "conv_stem.bn", "fc": "fc"}
    free = {"conv_stem.relu": "stem.relu", "pool_stem": "stem_pool", "pool_mid": "reduce_pool", "avgpool": "gap"}
    for pi, ti in (("mixed.0", "mixed_a"), ("mixed.1", "mixed_b")):
        for p, t in (("b1", "branch1x1"), ("b3", "branch3x3"), ("bp", "branch_pool")):
            truth[f"{pi}.{p}.conv"] = f"{ti}.{t}.conv"
            truth[f"{pi}.{p}.bn"] = f"{ti}.{t}.bn"
            free[f"{ti}.{t}.relu"] = f"{pi}.{p}.relu"
        free[f"{ti}.branch3x3_pool"] = f"{pi}.b3_pool"
        free[f"{ti}.branch_pool_avg"] = f"{pi}.bp_pool"
    case = Case("inception_like" + ("_reversed" if reverse else ""), PInception(), TInception(reverse),
                _inputs((1, 3, 16, 16)), truth)
    case.free_truth = free  # type: ignore[attr-defined]
    return case
