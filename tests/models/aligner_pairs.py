"""Model pairs for the structural aligner's tests and benchmarks, with the known truth.

Each builder returns a :class:`Case`: a paddle model, an independently written torch
model computing the same function, example inputs for both, and ``truth`` =
``{paddle path: torch path}`` for every parameter-holding layer. The torch ResNets
are written here (torchvision does not import in this environment); the paddle side
uses ``paddle.vision.models`` with random weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import paddle
import paddle.nn as pnn
import paddle.nn.functional as PF
import torch
import torch.nn as tnn
import torch.nn.functional as TF


@dataclass
class Case:
    """One aligner test pair and its truth."""

    name: str
    paddle: Any
    torch: Any
    inputs: tuple[dict[str, Any], dict[str, Any]]
    truth: dict[str, str]


def _inputs(shape: tuple[int, ...], p_key: str = "x", t_key: str = "x", seed: int = 0) -> tuple[dict, dict]:
    arr = np.random.default_rng(seed).standard_normal(shape).astype("float32")
    return {p_key: paddle.to_tensor(arr)}, {t_key: torch.from_numpy(arr.copy())}


# --- 1. all attribute names different ---------------------------------------------------------
class PRenamed(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc_a = pnn.Linear(8, 16)
        self.norm_a = pnn.BatchNorm1D(16)
        self.act_a = pnn.ReLU()
        self.fc_b = pnn.Linear(16, 4)

    def forward(self, x):
        return self.fc_b(self.act_a(self.norm_a(self.fc_a(x))))


class TRenamed(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin1 = tnn.Linear(8, 16)
        self.bn = tnn.BatchNorm1d(16)
        self.relu = tnn.ReLU()
        self.lin2 = tnn.Linear(16, 4)

    def forward(self, inp):
        return self.lin2(self.relu(self.bn(self.lin1(inp))))


def renamed() -> Case:
    return Case("renamed", PRenamed(), TRenamed(), _inputs((4, 8), "x", "inp"),
                {"fc_a": "lin1", "norm_a": "bn", "fc_b": "lin2"})


# --- 2. definition order reversed (equal shapes) ----------------------------------------------
class PReversed(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.a = pnn.Linear(8, 8)
        self.b = pnn.Linear(8, 8)
        self.c = pnn.Linear(8, 8)

    def forward(self, x):
        return self.c(PF.relu(self.b(PF.relu(self.a(x)))))


class TReversed(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.third = tnn.Linear(8, 8)
        self.second = tnn.Linear(8, 8)
        self.first = tnn.Linear(8, 8)

    def forward(self, x):
        return self.third(TF.relu(self.second(TF.relu(self.first(x)))))


def reversed_order() -> Case:
    return Case("reversed", PReversed(), TReversed(), _inputs((4, 8)),
                {"a": "first", "b": "second", "c": "third"})


# --- 3. extra nesting on one side --------------------------------------------------------------
class PNested(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.body = pnn.Sequential(pnn.Sequential(pnn.Linear(8, 12), pnn.ReLU()), pnn.Linear(12, 12))
        self.head = pnn.Linear(12, 3)

    def forward(self, x):
        return self.head(self.body(x))


class TFlat(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = tnn.Linear(8, 12)
        self.act = tnn.ReLU()
        self.l2 = tnn.Linear(12, 12)
        self.l3 = tnn.Linear(12, 3)

    def forward(self, x):
        return self.l3(self.l2(self.act(self.l1(x))))


def nested() -> Case:
    return Case("nested", PNested(), TFlat(), _inputs((4, 8)),
                {"body.0.0": "l1", "body.1": "l2", "head": "l3"})


# --- 4. parallel branches of identical shapes, evaluated in opposite order ---------------------
def _pbranch() -> pnn.Layer:
    return pnn.Sequential(pnn.Linear(8, 8), pnn.ReLU(), pnn.Linear(8, 8))


def _tbranch() -> tnn.Module:
    return tnn.Sequential(tnn.Linear(8, 8), tnn.ReLU(), tnn.Linear(8, 8))


class PBranches(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.left = _pbranch()
        self.right = _pbranch()

    def forward(self, x):
        a = self.left(x)
        b = self.right(x)
        return paddle.concat([a, b * 2.0], axis=-1)


class TBranches(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.second = _tbranch()
        self.first = _tbranch()

    def forward(self, x):
        b = self.second(x)
        a = self.first(x)
        return torch.cat([a, b * 2.0], dim=-1)


def branches() -> Case:
    return Case("branches", PBranches(), TBranches(), _inputs((4, 8)),
                {"left.0": "first.0", "left.2": "first.2", "right.0": "second.0", "right.2": "second.2"})


# --- 5. raw create_parameter + F.linear vs nn.Linear --------------------------------------------
class PRawBlock(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.weight = self.create_parameter([8, 16])
        self.bias = self.create_parameter([16], is_bias=True)
        self.act = pnn.GELU()

    def forward(self, x):
        return self.act(PF.linear(x, self.weight, self.bias))


class PRaw(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.block = PRawBlock()
        self.out = pnn.Linear(16, 4)

    def forward(self, x):
        return self.out(self.block(x))


class TLinBlock(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = tnn.Linear(8, 16)
        self.act = tnn.GELU()

    def forward(self, x):
        return self.act(self.proj(x))


class TRaw(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = TLinBlock()
        self.out = tnn.Linear(16, 4)

    def forward(self, x):
        return self.out(self.block(x))


def raw_param() -> Case:
    return Case("raw_param", PRaw(), TRaw(), _inputs((4, 8)), {"block": "block.proj", "out": "out"})


# --- 6. extra Dropout / Identity layers -----------------------------------------------------------
class PExtra(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = pnn.Linear(8, 8)
        self.drop = pnn.Dropout(0.5)
        self.ident = pnn.Identity()
        self.fc2 = pnn.Linear(8, 5)

    def forward(self, x):
        return self.fc2(self.ident(self.drop(self.fc1(x))))


class TExtra(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.one = tnn.Linear(8, 8)
        self.two = tnn.Linear(8, 5)

    def forward(self, x):
        return self.two(self.one(x))


def extra_layers() -> Case:
    return Case("extra_layers", PExtra(), TExtra(), _inputs((4, 8)), {"fc1": "one", "fc2": "two"})


# --- 7. a layer reused twice ----------------------------------------------------------------------
class PReuse(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.inp = pnn.Linear(6, 8)
        self.shared = pnn.Linear(8, 8)
        self.act = pnn.Tanh()
        self.outp = pnn.Linear(8, 2)

    def forward(self, x):
        h = self.inp(x)
        h = self.act(self.shared(h))
        h = self.act(self.shared(h))
        return self.outp(h)


class TReuse(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tail = tnn.Linear(8, 2)
        self.mid = tnn.Linear(8, 8)
        self.head = tnn.Linear(6, 8)
        self.tanh = tnn.Tanh()

    def forward(self, x):
        h = self.head(x)
        h = self.tanh(self.mid(h))
        h = self.tanh(self.mid(h))
        return self.tail(h)


def reused() -> Case:
    return Case("reused", PReuse(), TReuse(), _inputs((3, 6)),
                {"inp": "head", "shared": "mid", "outp": "tail"})


# --- 8. attention block with q/k/v of equal shapes --------------------------------------------------
class PAttention(pnn.Layer):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.q = pnn.Linear(d, d)
        self.k = pnn.Linear(d, d)
        self.v = pnn.Linear(d, d)
        self.o = pnn.Linear(d, d)
        self.scale = d ** -0.5

    def forward(self, x):
        att = PF.softmax(paddle.matmul(self.q(x), self.k(x), transpose_y=True) * self.scale, axis=-1)
        return self.o(paddle.matmul(att, self.v(x)))


class TAttention(tnn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.value = tnn.Linear(d, d)
        self.key = tnn.Linear(d, d)
        self.query = tnn.Linear(d, d)
        self.proj = tnn.Linear(d, d)
        self.scale = d ** -0.5

    def forward(self, x):
        v = self.value(x)
        k = self.key(x)
        q = self.query(x)
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * self.scale, dim=-1)
        return self.proj(torch.matmul(att, v))


def attention() -> Case:
    return Case("attention", PAttention(), TAttention(), _inputs((2, 5, 16)),
                {"q": "query", "k": "key", "v": "value", "o": "proj"})


# --- 9. resnet: paddle.vision vs a torch re-implementation with other names ---------------------------
class TBasic(tnn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.c1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.n1 = tnn.BatchNorm2d(planes)
        self.c2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.n2 = tnn.BatchNorm2d(planes)
        self.act = tnn.ReLU()
        self.short = None
        if stride != 1 or cin != planes:
            self.short = tnn.Sequential(tnn.Conv2d(cin, planes, 1, stride, bias=False), tnn.BatchNorm2d(planes))

    def forward(self, x):
        idt = x if self.short is None else self.short(x)
        h = self.act(self.n1(self.c1(x)))
        return self.act(self.n2(self.c2(h)) + idt)


class TBottle(tnn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        out = planes * 4
        self.c1 = tnn.Conv2d(cin, planes, 1, bias=False)
        self.n1 = tnn.BatchNorm2d(planes)
        self.c2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.n2 = tnn.BatchNorm2d(planes)
        self.c3 = tnn.Conv2d(planes, out, 1, bias=False)
        self.n3 = tnn.BatchNorm2d(out)
        self.act = tnn.ReLU()
        self.short = None
        if stride != 1 or cin != out:
            self.short = tnn.Sequential(tnn.Conv2d(cin, out, 1, stride, bias=False), tnn.BatchNorm2d(out))

    def forward(self, x):
        idt = x if self.short is None else self.short(x)
        h = self.act(self.n1(self.c1(x)))
        h = self.act(self.n2(self.c2(h)))
        return self.act(self.n3(self.c3(h)) + idt)


class TResNet(tnn.Module):
    def __init__(self, block: type, depths: list[int], classes: int = 1000) -> None:
        super().__init__()
        self.stem = tnn.Sequential(tnn.Conv2d(3, 64, 7, 2, 3, bias=False), tnn.BatchNorm2d(64), tnn.ReLU(),
                                   tnn.MaxPool2d(3, 2, 1))
        stages, cin = [], 64
        for i, n in enumerate(depths):
            planes = 64 * 2 ** i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
                cin = planes * block.expansion
            stages.append(tnn.Sequential(*blocks))
        self.stages = tnn.ModuleList(stages)
        self.pool = tnn.AdaptiveAvgPool2d(1)
        self.classifier = tnn.Linear(cin, classes)

    def forward(self, x):
        h = self.stem(x)
        for stage in self.stages:
            h = stage(h)
        return self.classifier(torch.flatten(self.pool(h), 1))


def _resnet_truth(depths: list[int], bottleneck: bool) -> dict[str, str]:
    truth = {"conv1": "stem.0", "bn1": "stem.1", "fc": "classifier"}
    names = ["1", "2", "3"] if bottleneck else ["1", "2"]
    for i, n in enumerate(depths):
        for j in range(n):
            p, t = f"layer{i + 1}.{j}", f"stages.{i}.{j}"
            for k in names:
                truth[f"{p}.conv{k}"] = f"{t}.c{k}"
                truth[f"{p}.bn{k}"] = f"{t}.n{k}"
            if j == 0 and (i > 0 or bottleneck):
                truth[f"{p}.downsample.0"] = f"{t}.short.0"
                truth[f"{p}.downsample.1"] = f"{t}.short.1"
    return truth


def resnet18(size: int = 64) -> Case:
    from paddle.vision.models import resnet18 as p_resnet18

    return Case("resnet18", p_resnet18(), TResNet(TBasic, [2, 2, 2, 2]), _inputs((1, 3, size, size)),
                _resnet_truth([2, 2, 2, 2], False))


def resnet50(size: int = 64) -> Case:
    from paddle.vision.models import resnet50 as p_resnet50

    return Case("resnet50", p_resnet50(), TResNet(TBottle, [3, 4, 6, 3]), _inputs((1, 3, size, size)),
                _resnet_truth([3, 4, 6, 3], True))


# --- 10. export failure: an op paddle2onnx lacks --------------------------------------------------------
class PSvd(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = pnn.Linear(6, 6)
        self.norm = pnn.LayerNorm(6)

    def forward(self, x):
        h = self.fc(x)
        s = paddle.linalg.svd(h)[1]
        return self.norm(h) + s.sum()


class TSvd(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = tnn.Linear(6, 6)
        self.ln = tnn.LayerNorm(6)

    def forward(self, x):
        h = self.lin(x)  # the torch side exports fine; paddle2onnx lacks svd
        return self.ln(h) + torch.linalg.norm(h, ord="fro")


def export_failure() -> Case:
    return Case("export_failure", PSvd(), TSvd(), _inputs((6, 6)), {"fc": "lin", "norm": "ln"})


# --- residual MLP of adjustable depth (benchmarks) ------------------------------------------------------
class PMLP(pnn.Layer):
    def __init__(self, depth: int, d: int = 16) -> None:
        super().__init__()
        self.blocks = pnn.LayerList([pnn.Sequential(pnn.Linear(d, d), pnn.LayerNorm(d), pnn.ReLU())
                                     for _ in range(depth)])

    def forward(self, x):
        for blk in self.blocks:
            x = x + blk(x)
        return x


class TMLP(tnn.Module):
    def __init__(self, depth: int, d: int = 16) -> None:
        super().__init__()
        self.layers = tnn.ModuleList([tnn.ModuleDict({"fc": tnn.Linear(d, d), "ln": tnn.LayerNorm(d)})
                                      for _ in range(depth)])

    def forward(self, x):
        for blk in self.layers:
            x = x + torch.relu(blk["ln"](blk["fc"](x)))
        return x


def mlp(depth: int) -> Case:
    truth = {}
    for i in range(depth):
        truth[f"blocks.{i}.0"] = f"layers.{i}.fc"
        truth[f"blocks.{i}.1"] = f"layers.{i}.ln"
    return Case(f"mlp{depth}", PMLP(depth), TMLP(depth), _inputs((2, 16)), truth)


HARD_CASES = {
    "renamed": renamed, "reversed": reversed_order, "nested": nested, "branches": branches,
    "raw_param": raw_param, "extra_layers": extra_layers, "reused": reused, "attention": attention,
    "resnet18": resnet18,
}


# --- attention whose score product is exported differently (ties only numerics can settle) ------------
class TEinsumAttention(TAttention):
    def forward(self, x):
        v = self.value(x)
        k = self.key(x)
        q = self.query(x)
        att = torch.softmax(torch.einsum("bid,bjd->bij", q, k) * self.scale, dim=-1)
        return self.proj(torch.matmul(att, v))


def attention_einsum() -> Case:
    return Case("attention_einsum", PAttention(), TEinsumAttention(), _inputs((2, 5, 16)),
                {"q": "query", "k": "key", "v": "value", "o": "proj"})


# --- data-dependent python `if` on a tensor value --------------------------------------------------------
class PBranchy(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = pnn.Linear(4, 4)
        self.maybe = pnn.Linear(4, 4)
        self.head = pnn.Linear(4, 3)

    def forward(self, x):
        h = self.fc(x)
        if h.sum() > 0:  # becomes an ONNX If on the paddle side
            h = self.maybe(h)
        return self.head(h)


class TBranchy(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = tnn.Linear(4, 4)
        self.l2 = tnn.Linear(4, 4)
        self.l3 = tnn.Linear(4, 3)

    def forward(self, x):
        h = self.l1(x)
        if h.sum() > 0:  # traced as the branch taken for the example input
            h = self.l2(h)
        return self.l3(h)


def control_flow() -> Case:
    return Case("control_flow", PBranchy(), TBranchy(), _inputs((2, 4)), {"fc": "l1", "maybe": "l2", "head": "l3"})


# --- transformer encoder layer: paddle.nn.TransformerEncoderLayer vs a torch re-implementation -----------
class TSelfAttention(tnn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads, self.hd = heads, d // heads
        self.wv = tnn.Linear(d, d)
        self.wk = tnn.Linear(d, d)
        self.wq = tnn.Linear(d, d)
        self.wo = tnn.Linear(d, d)

    def _split(self, t):
        b, s, _ = t.shape
        return t.reshape(b, s, self.heads, self.hd).transpose(1, 2)

    def forward(self, x):
        q = self._split(self.wq(x))
        k = self._split(self.wk(x))
        v = self._split(self.wv(x))
        att = torch.softmax(torch.matmul(q * self.hd ** -0.5, k.transpose(-1, -2)), dim=-1)
        out = torch.matmul(att, v).transpose(1, 2)
        return self.wo(out.reshape(out.shape[0], out.shape[1], -1))


class TEncoderLayer(tnn.Module):
    def __init__(self, d: int = 16, heads: int = 2, ff: int = 32) -> None:
        super().__init__()
        self.ln_b = tnn.LayerNorm(d)
        self.ln_a = tnn.LayerNorm(d)
        self.mix = TSelfAttention(d, heads)
        self.up = tnn.Linear(d, ff)
        self.down = tnn.Linear(ff, d)

    def forward(self, src):
        h = self.ln_a(src + self.mix(src))
        return self.ln_b(h + self.down(torch.relu(self.up(h))))


def transformer() -> Case:
    p = pnn.TransformerEncoderLayer(16, 2, 32, dropout=0.0)
    truth = {"self_attn.q_proj": "mix.wq", "self_attn.k_proj": "mix.wk", "self_attn.v_proj": "mix.wv",
             "self_attn.out_proj": "mix.wo", "linear1": "up", "linear2": "down", "norm1": "ln_a", "norm2": "ln_b"}
    return Case("transformer", p, TEncoderLayer(), _inputs((2, 5, 16), "src", "src"), truth)


HARD_CASES["transformer"] = transformer


# --- sequence model: Embedding + LSTM + Linear ------------------------------------------------------------
class PSeq(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.emb = pnn.Embedding(50, 8)
        self.rnn = pnn.LSTM(8, 12)
        self.cls = pnn.Linear(12, 3)

    def forward(self, ids):
        out, _ = self.rnn(self.emb(ids))
        return self.cls(out[:, -1])


class TSeq(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = tnn.Linear(12, 3)
        self.lstm = tnn.LSTM(8, 12, batch_first=True)
        self.tok = tnn.Embedding(50, 8)

    def forward(self, ids):
        out, _ = self.lstm(self.tok(ids))
        return self.head(out[:, -1])


def sequence() -> Case:
    ids = np.random.default_rng(0).integers(0, 50, size=(2, 7)).astype("int64")
    return Case("sequence", PSeq(), TSeq(), ({"ids": paddle.to_tensor(ids)}, {"ids": torch.from_numpy(ids.copy())}),
                {"emb": "tok", "rnn": "lstm", "cls": "head"})
HARD_CASES["sequence"] = sequence


# --- mobilenet_v2: paddle.vision vs a torch re-implementation with another layout --------------------------
_MBV2 = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]


def _cba(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> tnn.Sequential:
    return tnn.Sequential(tnn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                          tnn.BatchNorm2d(cout), tnn.ReLU6())


class TInverted(tnn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int) -> None:
        super().__init__()
        hid = cin * t
        self.residual = stride == 1 and cin == cout
        self.pw = tnn.Conv2d(hid, cout, 1, bias=False)
        self.pw_bn = tnn.BatchNorm2d(cout)
        self.dw = tnn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False)
        self.dw_bn = tnn.BatchNorm2d(hid)
        self.act = tnn.ReLU6()
        self.expand = _cba(cin, hid) if t != 1 else None

    def forward(self, x):
        h = x if self.expand is None else self.expand(x)
        h = self.pw_bn(self.pw(self.act(self.dw_bn(self.dw(h)))))
        return x + h if self.residual else h


class TMobileNetV2(tnn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = _cba(3, 32, 3, 2)
        blocks, cin = [], 32
        for t, c, n, s in _MBV2:
            for i in range(n):
                blocks.append(TInverted(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = tnn.ModuleList(blocks)
        self.last = _cba(cin, 1280)
        self.fc = tnn.Linear(1280, classes)
        self.drop = tnn.Dropout(0.2)

    def forward(self, x):
        h = self.stem(x)
        for blk in self.blocks:
            h = blk(h)
        h = self.last(h).mean(dim=(2, 3))
        return self.fc(self.drop(h))


def mobilenet_v2(size: int = 32) -> Case:
    from paddle.vision.models import mobilenet_v2 as p_mobilenet_v2

    truth = {"features.0.0": "stem.0", "features.0.1": "stem.1", "features.18.0": "last.0",
             "features.18.1": "last.1", "classifier.1": "fc"}
    k = 1
    for t, _, n, _ in _MBV2:
        for _ in range(n):
            p, q = f"features.{k}.conv", f"blocks.{k - 1}"
            off = 0
            if t != 1:
                truth[f"{p}.0.0"], truth[f"{p}.0.1"] = f"{q}.expand.0", f"{q}.expand.1"
                off = 1
            truth[f"{p}.{off}.0"], truth[f"{p}.{off}.1"] = f"{q}.dw", f"{q}.dw_bn"
            truth[f"{p}.{off + 1}"], truth[f"{p}.{off + 2}"] = f"{q}.pw", f"{q}.pw_bn"
            k += 1
    return Case("mobilenet_v2", p_mobilenet_v2(), TMobileNetV2(), _inputs((1, 3, size, size)), truth)


HARD_CASES["mobilenet_v2"] = mobilenet_v2
