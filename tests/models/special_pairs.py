"""Model pairs for weight assignment, special inits and inferred conversions, plus checks.

Each pair is what a porting engineer would write: the paddle model and its torch port,
random weights on both sides (so nothing agrees until weights are assigned).
:func:`run_and_check` runs forward and backward on both after assignment and compares
outputs, input gradients and parameter gradients (torch grads converted to paddle's
layout with the same :class:`PairPlan` the engine uses).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import paddle
import torch

from padiff.adapters import PADDLE, TORCH, subtree_state
from padiff.layer_map import LayerMap
from padiff.weights.assign_plan import plan_weights


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def perturb_paddle(layer: paddle.nn.Layer, seed: int = 7) -> None:
    """Give every paddle tensor a fresh random value (so a skipped copy shows)."""
    rng = np.random.default_rng(seed)
    for _, entries in PADDLE.owned_state(layer).items():
        for e in entries:
            PADDLE.set_value(e.tensor, rng.standard_normal(tuple(e.tensor.shape)).astype("float32"))


def paddle_values(layer: paddle.nn.Layer) -> dict[str, np.ndarray]:
    """Every tensor of the paddle model (parameters and buffers, cells included) by full name."""
    out = {n: p.numpy().copy() for n, p in layer.named_parameters()}
    out.update({"buffer:" + n: b.numpy().copy() for n, b in layer.named_buffers() if b is not None})
    return out


def run_and_check(layer: Any, module: Any, p_args: list[np.ndarray], t_args: list[np.ndarray] | None = None,
                  layer_map: Any = None, atol: float = 1e-5, pick: Any = None) -> None:
    """Forward + backward on both models with the same inputs; outputs and all grads must agree."""
    t_args = p_args if t_args is None else t_args
    px = [paddle.to_tensor(a, stop_gradient=False) for a in p_args]
    tx = [torch.tensor(a, requires_grad=True) for a in t_args]
    po, to = layer(*px), module(*tx)
    if pick is not None:
        po, to = pick(po, "paddle"), pick(to, "torch")
    po_l, to_l = PADDLE.flatten(po), TORCH.flatten(to)
    assert len(po_l) == len(to_l)
    weights = [rand(*tuple(o.shape), seed=10 + i) for i, o in enumerate(po_l)]
    for a, b in zip(po_l, to_l):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=atol, rtol=1e-4)
    p_loss = sum((o * paddle.to_tensor(w)).sum() for o, w in zip(po_l, weights))
    t_loss = sum((o * torch.tensor(w)).sum() for o, w in zip(to_l, weights))
    p_loss.backward()
    t_loss.backward()
    for a, b in zip(px, tx):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=atol, rtol=1e-4)
    check_param_grads(layer, module, layer_map, atol)


def check_param_grads(layer: Any, module: Any, layer_map: Any, atol: float) -> int:
    """Every planned paddle tensor's grad equals the converted torch grad; returns how many were checked."""
    resolved = LayerMap.coerce(layer_map).resolve(layer, module)
    p_owned, t_owned = PADDLE.owned_state(layer), TORCH.owned_state(module)
    n = 0
    for plan in plan_weights(layer, module, resolved):
        p_state = {e.name: e.tensor for e in subtree_state(p_owned, plan.paddle_path)}
        t_grads = {e.name: e.tensor.grad.numpy() for e in subtree_state(t_owned, plan.torch_path)
                   if e.tensor.grad is not None}
        for name, g in plan.convert(t_grads).items():
            pg = p_state[name].grad
            assert pg is not None, f"paddle {plan.paddle_path}.{name} has no grad"
            np.testing.assert_allclose(pg.numpy(), g, atol=atol, rtol=1e-4,
                                       err_msg=f"{plan.paddle_path}.{name}")
            n += 1
    assert n > 0
    return n


# --- Sequential(Linear, LayerNorm, Linear) vs flat -------------------------------------------------
class PaddleSeqLN(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.body = paddle.nn.Sequential(paddle.nn.Linear(6, 8), paddle.nn.LayerNorm(8), paddle.nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)


class TorchFlatLN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(6, 8)
        self.norm = torch.nn.LayerNorm(8)
        self.fc2 = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.norm(self.fc1(x)))


# --- Embedding + LSTM ---------------------------------------------------------------------------------
class PaddleEmbLSTM(paddle.nn.Layer):
    def __init__(self, bidirect: bool = False, layers: int = 1) -> None:
        super().__init__()
        self.emb = paddle.nn.Embedding(20, 6)
        self.lstm = paddle.nn.LSTM(6, 5, num_layers=layers, direction="bidirect" if bidirect else "forward")
        self.head = paddle.nn.Linear(10 if bidirect else 5, 3)

    def forward(self, ids):
        out, _ = self.lstm(self.emb(ids))
        return self.head(out)


class TorchEmbLSTM(torch.nn.Module):
    def __init__(self, bidirect: bool = False, layers: int = 1) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(20, 6)
        self.lstm = torch.nn.LSTM(6, 5, num_layers=layers, bidirectional=bidirect, batch_first=True)
        self.head = torch.nn.Linear(10 if bidirect else 5, 3)

    def forward(self, ids):
        out, _ = self.lstm(self.emb(ids))
        return self.head(out)


# --- recurrent layers alone (for the special-init tests) ---------------------------------------------
def rnn_pair(kind: str, bidirect: bool = False, layers: int = 1, proj: int = 0) -> tuple[Any, Any]:
    """A paddle/torch recurrent layer pair, batch-first on both sides."""
    p_cls = {"LSTM": paddle.nn.LSTM, "GRU": paddle.nn.GRU, "RNN": paddle.nn.SimpleRNN}[kind]
    t_cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[kind]
    p_kw: dict[str, Any] = {"num_layers": layers, "direction": "bidirect" if bidirect else "forward"}
    t_kw: dict[str, Any] = {"num_layers": layers, "bidirectional": bidirect, "batch_first": True}
    if proj:
        p_kw["proj_size"] = t_kw["proj_size"] = proj
    return p_cls(4, 6, **p_kw), t_cls(4, 6, **t_kw)


# --- multi-head attention -------------------------------------------------------------------------
class PaddleAttnBlock(paddle.nn.Layer):
    def __init__(self, e: int = 8, heads: int = 2, kdim: int | None = None, vdim: int | None = None) -> None:
        super().__init__()
        self.inp = paddle.nn.Linear(e, e)
        self.attn = paddle.nn.MultiHeadAttention(e, heads, kdim=kdim, vdim=vdim)
        self.out = paddle.nn.Linear(e, 2)

    def forward(self, x, k, v):
        h = self.inp(x)
        return self.out(self.attn(h, k, v))


class TorchAttnBlock(torch.nn.Module):
    def __init__(self, e: int = 8, heads: int = 2, kdim: int | None = None, vdim: int | None = None) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(e, e)
        self.attn = torch.nn.MultiheadAttention(e, heads, kdim=kdim, vdim=vdim, batch_first=True)
        self.out = torch.nn.Linear(e, 2)

    def forward(self, x, k, v):
        h = self.inp(x)
        return self.out(self.attn(h, k, v, need_weights=False)[0])


# --- a parameter-free NOP layer on one side --------------------------------------------------------
class Nop(paddle.nn.Layer):
    def forward(self, x):
        return x


class PaddleWithNop(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = paddle.nn.Linear(4, 6)
        self.nop = Nop()
        self.fc2 = paddle.nn.Linear(6, 2)

    def forward(self, x):
        return self.fc2(self.nop(self.fc1(x)))


class TorchNoNop(torch.nn.Module):
    def __init__(self, hidden: int = 6) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(4, hidden)
        self.fc2 = torch.nn.Linear(hidden, 2)

    def forward(self, x):
        return self.fc2(self.fc1(x))


# --- Conv + BN ----------------------------------------------------------------------------------------
class PaddleConvBN(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(4)

    def forward(self, x):
        return self.bn(self.conv(x))


class TorchConvBN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(4)
        with torch.no_grad():  # non-trivial running statistics, so eval mode uses them
            self.norm.running_mean.uniform_(-1, 1)
            self.norm.running_var.uniform_(0.5, 2)

    def forward(self, x):
        return self.norm(self.conv(x))


# --- packed qkv (torch) vs separate q/k/v (paddle): an inferred split ------------------------------
def _attend(q: Any, k: Any, v: Any, softmax: Any) -> Any:
    scores = q @ k.transpose([0, 2, 1]) if isinstance(q, paddle.Tensor) else q @ k.transpose(1, 2)
    return softmax(scores / np.sqrt(q.shape[-1])) @ v


class PaddleSplitQKV(paddle.nn.Layer):
    def __init__(self, e: int = 6) -> None:
        super().__init__()
        self.q = paddle.nn.Linear(e, e)
        self.k = paddle.nn.Linear(e, e)
        self.v = paddle.nn.Linear(e, e)
        self.o = paddle.nn.Linear(e, e)

    def forward(self, x):
        return self.o(_attend(self.q(x), self.k(x), self.v(x), lambda s: paddle.nn.functional.softmax(s, -1)))


class PaddleAttnWrap(paddle.nn.Layer):
    def __init__(self, e: int = 6) -> None:
        super().__init__()
        self.attn = PaddleSplitQKV(e)

    def forward(self, x):
        return self.attn(x)


class TorchPackedQKV(torch.nn.Module):
    def __init__(self, e: int = 6) -> None:
        super().__init__()
        self.qkv = torch.nn.Linear(e, 3 * e)
        self.o = torch.nn.Linear(e, e)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.o(_attend(q, k, v, lambda s: torch.softmax(s, -1)))


class TorchAttnWrap(torch.nn.Module):
    def __init__(self, e: int = 6) -> None:
        super().__init__()
        self.attention = TorchPackedQKV(e)

    def forward(self, x):
        return self.attention(x)


# --- packed qkv on the paddle side, separate on the torch side: an inferred concatenation ----------
class PaddlePackedQKV(paddle.nn.Layer):
    def __init__(self, e: int = 6) -> None:
        super().__init__()
        self.qkv = paddle.nn.Linear(e, 3 * e)

    def forward(self, x):
        return self.qkv(x)


class TorchSplitQKVProj(torch.nn.Module):
    def __init__(self, e: int = 6) -> None:
        super().__init__()
        self.q = torch.nn.Linear(e, e)
        self.k = torch.nn.Linear(e, e)
        self.v = torch.nn.Linear(e, e)

    def forward(self, x):
        return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)


# --- raw parameters: reshape and transpose inferred -----------------------------------------------
class PaddleRawReshape(paddle.nn.Layer):
    """Holds a conv-like kernel as [out, in, k] and uses it as a matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = self.create_parameter([5, 3, 2])
        self.mix = self.create_parameter([5, 4])  # [in, out] where torch keeps [out, in]

    def forward(self, x):  # x: [B, 6]
        h = x @ self.kernel.reshape([5, 6]).T
        return h @ self.mix


class TorchRawReshape(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.kernel = torch.nn.Parameter(torch.randn(5, 6))
        self.mix = torch.nn.Parameter(torch.randn(4, 5))  # [out, in]

    def forward(self, x):
        h = x @ self.kernel.T
        return h @ self.mix.T
