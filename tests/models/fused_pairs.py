"""Model pairs where one side fuses what the other splits (README "The structural aligner"), with the known truth.

- attention: paddle ``qkv_proj = Linear(d, 3d)`` against torch ``q_proj``/``k_proj``/``v_proj``
  (and the reverse); torch may define its projections in reversed order.
- mlp: paddle ``up_gate_proj = Linear(d, 2h)`` against torch ``gate_proj``/``up_proj``.
- conv1d: GPT-2 style torch ``Conv1D`` (weight ``[in, 3*out]``, paddle's layout) against three
  paddle Linears.
- experts: a paddle MoE holding 3-D expert tensors ``[E, in, out]`` against a torch
  ``ModuleList`` of E expert MLPs.
- gqa: grouped-query attention whose fused ``qkv_proj`` is laid out per key-value head
  ``[q_0, k_0, v_0, q_1, k_1, v_1]`` (as paddleformers' ERNIE 4.5 / Qwen2), against split
  q/k/v (and the reverse: a torch fused grouped ``qkv`` against paddle q/k/v).
- up_gate_act: ``up_gate_proj`` against ``gate_proj``/``up_proj`` where the activation is a
  module, so the two parts feed different layers (gate the activation, up the product).

Each builder returns a ``Case`` whose ``fault`` names the torch layer a planted fault goes into.
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

D, HEADS, HID, E = 8, 2, 12, 3


@dataclass
class Case:
    """A fused/split pair: models, inputs, the expected fused pair and where to plant a fault."""

    paddle: Any
    torch: Any
    inputs: tuple[dict[str, Any], dict[str, Any]]
    fused: tuple[str, tuple[str, ...]] | None  # (single path, split paths) in the expected pair
    fault: str  # torch module whose output a test scales


def inputs(shape: tuple[int, ...] = (2, 5, D), seed: int = 0) -> tuple[dict, dict]:
    arr = np.random.default_rng(seed).standard_normal(shape).astype("float32")
    return {"x": paddle.to_tensor(arr)}, {"x": torch.from_numpy(arr.copy())}


def _p_attend(q: Any, k: Any, v: Any) -> Any:
    b, s, _ = q.shape
    q, k, v = (t.reshape([b, s, HEADS, D // HEADS]).transpose([0, 2, 1, 3]) for t in (q, k, v))
    w = PF.softmax(paddle.matmul(q, k, transpose_y=True) / (D // HEADS) ** 0.5, axis=-1)
    return paddle.matmul(w, v).transpose([0, 2, 1, 3]).reshape([b, s, D])


def _t_attend(q: Any, k: Any, v: Any) -> Any:
    b, s, _ = q.shape
    q, k, v = (t.reshape(b, s, HEADS, D // HEADS).transpose(1, 2) for t in (q, k, v))
    w = torch.softmax(q @ k.transpose(-1, -2) / (D // HEADS) ** 0.5, dim=-1)
    return (w @ v).transpose(1, 2).reshape(b, s, D)


class PFusedAttn(pnn.Layer):
    def __init__(self, k_width: int = D) -> None:
        super().__init__()
        self.qkv_proj = pnn.Linear(D, 2 * D + k_width)
        self.out_proj = pnn.Linear(D, D)

    def forward(self, x):
        q, k, v = paddle.split(self.qkv_proj(x), 3, axis=-1)
        return self.out_proj(_p_attend(q, k, v))


class TSplitAttn(tnn.Module):
    def __init__(self, reverse: bool = False, k_width: int = D) -> None:
        super().__init__()
        names = ["v_proj", "k_proj", "q_proj"] if reverse else ["q_proj", "k_proj", "v_proj"]
        for name in names:
            setattr(self, name, tnn.Linear(D, k_width if name == "k_proj" else D))
        self.o_proj = tnn.Linear(D, D)

    def forward(self, x):
        k = self.k_proj(x)
        if k.shape[-1] != D:  # a narrower key (the planted real shape difference): widen it by repetition
            k = k.repeat_interleave(D // k.shape[-1], dim=-1)
        return self.o_proj(_t_attend(self.q_proj(x), k, self.v_proj(x)))


class PSplitAttn(pnn.Layer):
    def __init__(self, reverse: bool = False) -> None:
        super().__init__()
        for name in (["v", "k", "q"] if reverse else ["q", "k", "v"]):
            setattr(self, name, pnn.Linear(D, D))
        self.proj = pnn.Linear(D, D)

    def forward(self, x):
        return self.proj(_p_attend(self.q(x), self.k(x), self.v(x)))


class TFusedAttn(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.in_proj = tnn.Linear(D, 3 * D)
        self.out = tnn.Linear(D, D)

    def forward(self, x):
        q, k, v = self.in_proj(x).chunk(3, dim=-1)
        return self.out(_t_attend(q, k, v))


class PUpGate(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.up_gate_proj = pnn.Linear(D, 2 * HID, bias_attr=False)
        self.down_proj = pnn.Linear(HID, D, bias_attr=False)

    def forward(self, x):
        gate, up = paddle.chunk(self.up_gate_proj(x), 2, axis=-1)
        return self.down_proj(PF.silu(gate) * up)


class TGateUp(tnn.Module):
    def __init__(self, reverse: bool = False) -> None:
        super().__init__()
        for name in (["up_proj", "gate_proj"] if reverse else ["gate_proj", "up_proj"]):
            setattr(self, name, tnn.Linear(D, HID, bias=False))
        self.down_proj = tnn.Linear(HID, D, bias=False)

    def forward(self, x):
        return self.down_proj(TF.silu(self.gate_proj(x)) * self.up_proj(x))


class Conv1D(tnn.Module):
    """GPT-2's Conv1D: a Linear whose weight is stored ``[in, out]`` (paddle's layout)."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(nx, nf) * 0.2)
        self.bias = tnn.Parameter(torch.randn(nf) * 0.1)

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


class TConv1DAttn(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c_attn = Conv1D(3 * D, D)
        self.c_proj = Conv1D(D, D)

    def forward(self, x):
        q, k, v = self.c_attn(x).split(D, dim=2)
        return self.c_proj(_t_attend(q, k, v))


class PExperts(pnn.Layer):
    """A MoE layer holding its experts as 3-D tensors ``[E, in, out]`` (dense soft routing)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = pnn.Linear(D, E, bias_attr=False)
        self.w1 = self.create_parameter([E, D, HID])
        self.w2 = self.create_parameter([E, HID, D])

    def forward(self, x):
        probs = PF.softmax(self.gate(x), axis=-1)  # [B, S, E]
        h = PF.gelu(paddle.einsum("bsd,edh->bseh", x, self.w1))
        y = paddle.einsum("bseh,ehd->bsed", h, self.w2)
        return (y * probs.unsqueeze(-1)).sum(axis=2)


class TMLP(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = tnn.Linear(D, HID, bias=False)
        self.fc2 = tnn.Linear(HID, D, bias=False)

    def forward(self, x):
        return self.fc2(TF.gelu(self.fc1(x)))


class TExperts(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.router = tnn.Linear(D, E, bias=False)
        self.experts = tnn.ModuleList([TMLP() for _ in range(E)])

    def forward(self, x):
        probs = torch.softmax(self.router(x), dim=-1)
        y = torch.stack([ex(x) for ex in self.experts], dim=2)
        return (y * probs.unsqueeze(-1)).sum(dim=2)


class PBlock(pnn.Layer):
    """A tiny decoder block around one of the fused layers (so the pair has neighbours)."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.norm = pnn.LayerNorm(D)
        self.inner = inner
        self.head = pnn.Linear(D, 4)

    def forward(self, x):
        return self.head(x + self.inner(self.norm(x)))


class TBlock(tnn.Module):
    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.ln = tnn.LayerNorm(D)
        self.body = inner
        self.out = tnn.Linear(D, 4)

    def forward(self, x):
        return self.out(x + self.body(self.ln(x)))


def attention(reverse: bool = False) -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PFusedAttn()), TBlock(TSplitAttn(reverse)), inputs(),
                ("inner.qkv_proj", ("body.q_proj", "body.k_proj", "body.v_proj")), "body.k_proj")


def attention_narrow_key() -> Case:
    """Not a port: torch's key projection is half as wide (a real shape difference)."""
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PFusedAttn()), TBlock(TSplitAttn(k_width=D // 2)), inputs(),
                ("inner.qkv_proj", ("body.q_proj", "body.k_proj", "body.v_proj")), "body.k_proj")


def attention_split_paddle(reverse: bool = False) -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PSplitAttn(reverse)), TBlock(TFusedAttn()), inputs(),
                ("body.in_proj", ("inner.q", "inner.k", "inner.v")), "body.in_proj")


def up_gate(reverse: bool = False) -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PUpGate()), TBlock(TGateUp(reverse)), inputs(),
                ("inner.up_gate_proj", ("body.gate_proj", "body.up_proj")), "body.up_proj")


def conv1d() -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PSplitAttn()), TBlock(TConv1DAttn()), inputs(),
                ("body.c_attn", ("inner.q", "inner.k", "inner.v")), "body.c_attn")


def experts() -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PExperts()), TBlock(TExperts()), inputs(), None, "body.experts.1")


# --- grouped-query attention with a per-group fused qkv ----------------------------------------------
GQA_HEADS, GQA_KV, GQA_HD = 4, 2, 2  # 4 query heads sharing 2 key-value heads, head_dim 2 (D = 8)
GQA_Q, GQA_K = GQA_HEADS * GQA_HD, GQA_KV * GQA_HD


def _p_gqa(q: Any, k: Any, v: Any) -> Any:
    """q ``[b, s, heads, hd]``, k/v ``[b, s, kv, hd]`` -> ``[b, s, D]`` (each kv head serves heads // kv)."""
    b, s = q.shape[0], q.shape[1]
    rep = GQA_HEADS // GQA_KV
    q, k, v = (t.transpose([0, 2, 1, 3]) for t in (q, k, v))
    k, v = (paddle.repeat_interleave(t, rep, axis=1) for t in (k, v))
    w = PF.softmax(paddle.matmul(q, k, transpose_y=True) / GQA_HD ** 0.5, axis=-1)
    return paddle.matmul(w, v).transpose([0, 2, 1, 3]).reshape([b, s, GQA_Q])


def _t_gqa(q: Any, k: Any, v: Any) -> Any:
    b, s = q.shape[0], q.shape[1]
    rep = GQA_HEADS // GQA_KV
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    k, v = (t.repeat_interleave(rep, dim=1) for t in (k, v))
    w = torch.softmax(q @ k.transpose(-1, -2) / GQA_HD ** 0.5, dim=-1)
    return (w @ v).transpose(1, 2).reshape(b, s, GQA_Q)


class PGQAFused(pnn.Layer):
    """Fused qkv cut per key-value head: ``[b, s, kv, (heads // kv + 2) * hd]`` split into q, k, v."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv_proj = pnn.Linear(D, GQA_Q + 2 * GQA_K)
        self.o_proj = pnn.Linear(GQA_Q, D)

    def forward(self, x):
        b, s = x.shape[0], x.shape[1]
        rep = GQA_HEADS // GQA_KV
        mix = self.qkv_proj(x).reshape([b, s, GQA_KV, (rep + 2) * GQA_HD])
        q, k, v = paddle.split(mix, [rep * GQA_HD, GQA_HD, GQA_HD], axis=-1)
        return self.o_proj(_p_gqa(q.reshape([b, s, GQA_HEADS, GQA_HD]), k, v))


class TGQASplit(tnn.Module):
    def __init__(self, reverse: bool = False) -> None:
        super().__init__()
        widths = {"q_proj": GQA_Q, "k_proj": GQA_K, "v_proj": GQA_K}
        for name in (reversed(list(widths)) if reverse else widths):
            setattr(self, name, tnn.Linear(D, widths[name]))
        self.o_proj = tnn.Linear(GQA_Q, D)

    def forward(self, x):
        b, s = x.shape[0], x.shape[1]
        q = self.q_proj(x).reshape(b, s, GQA_HEADS, GQA_HD)
        k = self.k_proj(x).reshape(b, s, GQA_KV, GQA_HD)
        v = self.v_proj(x).reshape(b, s, GQA_KV, GQA_HD)
        return self.o_proj(_t_gqa(q, k, v))


class PGQASplit(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = pnn.Linear(D, GQA_Q), pnn.Linear(D, GQA_K), pnn.Linear(D, GQA_K)
        self.o = pnn.Linear(GQA_Q, D)

    def forward(self, x):
        b, s = x.shape[0], x.shape[1]
        q = self.q(x).reshape([b, s, GQA_HEADS, GQA_HD])
        k = self.k(x).reshape([b, s, GQA_KV, GQA_HD])
        v = self.v(x).reshape([b, s, GQA_KV, GQA_HD])
        return self.o(_p_gqa(q, k, v))


class TGQAFused(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = tnn.Linear(D, GQA_Q + 2 * GQA_K)
        self.o = tnn.Linear(GQA_Q, D)

    def forward(self, x):
        b, s = x.shape[0], x.shape[1]
        rep = GQA_HEADS // GQA_KV
        mix = self.qkv(x).reshape(b, s, GQA_KV, (rep + 2) * GQA_HD)
        q, k, v = mix.split([rep * GQA_HD, GQA_HD, GQA_HD], dim=-1)
        return self.o(_t_gqa(q.reshape(b, s, GQA_HEADS, GQA_HD), k, v))


def gqa(reverse: bool = False) -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PGQAFused()), TBlock(TGQASplit(reverse)), inputs(),
                ("inner.qkv_proj", ("body.q_proj", "body.k_proj", "body.v_proj")), "body.k_proj")


def gqa_split_paddle() -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PGQASplit()), TBlock(TGQAFused()), inputs(),
                ("body.qkv", ("inner.q", "inner.k", "inner.v")), "body.qkv")


class PUpGateAct(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.up_gate_proj = pnn.Linear(D, 2 * HID, bias_attr=False)
        self.act = pnn.Silu()
        self.down_proj = pnn.Linear(HID, D, bias_attr=False)

    def forward(self, x):
        gate, up = paddle.chunk(self.up_gate_proj(x), 2, axis=-1)
        return self.down_proj(self.act(gate) * up)


class TGateUpAct(tnn.Module):
    def __init__(self, reverse: bool = False) -> None:
        super().__init__()
        for name in (["up_proj", "gate_proj"] if reverse else ["gate_proj", "up_proj"]):
            setattr(self, name, tnn.Linear(D, HID, bias=False))
        self.act = tnn.SiLU()
        self.down_proj = tnn.Linear(HID, D, bias=False)

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


def up_gate_act(reverse: bool = False) -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PUpGateAct()), TBlock(TGateUpAct(reverse)), inputs(),
                ("inner.up_gate_proj", ("body.gate_proj", "body.up_proj")), "body.up_proj")


# --- experts stacked on the torch side (transformers' MoE) against a paddle list of expert MLPs -------
class PExpertMLP(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.up_gate_proj = pnn.Linear(D, 2 * HID, bias_attr=False)
        self.down_proj = pnn.Linear(HID, D, bias_attr=False)

    def forward(self, x):
        gate, up = paddle.chunk(self.up_gate_proj(x), 2, axis=-1)
        return self.down_proj(PF.silu(gate) * up)


class PExpertList(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.gate = pnn.Linear(D, E, bias_attr=False)
        self.experts = pnn.LayerList([PExpertMLP() for _ in range(E)])

    def forward(self, x):
        probs = PF.softmax(self.gate(x), axis=-1)
        y = paddle.stack([ex(x) for ex in self.experts], axis=2)
        return (y * probs.unsqueeze(-1)).sum(axis=2)


class PSplitExpertMLP(pnn.Layer):
    """One expert with separate gate and up Linears (same shape); ``reverse`` defines up first."""

    def __init__(self, reverse: bool = False) -> None:
        super().__init__()
        if reverse:
            self.up_proj = pnn.Linear(D, HID, bias_attr=False)
            self.gate_proj = pnn.Linear(D, HID, bias_attr=False)
        else:
            self.gate_proj = pnn.Linear(D, HID, bias_attr=False)
            self.up_proj = pnn.Linear(D, HID, bias_attr=False)
        self.down_proj = pnn.Linear(HID, D, bias_attr=False)

    def forward(self, x):
        return self.down_proj(PF.silu(self.gate_proj(x)) * self.up_proj(x))


class PSplitExpertList(PExpertList):
    def __init__(self, reverse: bool = False) -> None:
        super().__init__()
        self.experts = pnn.LayerList([PSplitExpertMLP(reverse) for _ in range(E)])


class TStackedExperts(tnn.Module):
    """Experts as two 3-D tensors in torch Linear layout per expert: ``[E, 2 * HID, D]`` and ``[E, D, HID]``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate_up_proj = tnn.Parameter(torch.randn(E, 2 * HID, D) * 0.3)
        self.down_proj = tnn.Parameter(torch.randn(E, D, HID) * 0.3)

    def forward(self, x):
        outs = []
        for e in range(E):
            gate, up = TF.linear(x, self.gate_up_proj[e]).chunk(2, dim=-1)
            outs.append(TF.linear(TF.silu(gate) * up, self.down_proj[e]))
        return torch.stack(outs, dim=2)


class TRoutedStack(tnn.Module):
    def __init__(self, reverse: bool = False) -> None:
        super().__init__()
        if reverse:  # experts defined before the router: definition order says nothing about the pairing
            self.experts = TStackedExperts()
            self.router = tnn.Linear(D, E, bias=False)
        else:
            self.router = tnn.Linear(D, E, bias=False)
            self.experts = TStackedExperts()

    def forward(self, x):
        probs = torch.softmax(self.router(x), dim=-1)
        return (self.experts(x) * probs.unsqueeze(-1)).sum(dim=2)


def stacked_torch_experts(reverse: bool = False) -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PExpertList()), TBlock(TRoutedStack(reverse)), inputs(), None, "body")


def split_paddle_experts(reverse: bool = False) -> Case:
    """Paddle experts with gate_proj/up_proj each against torch ``gate_up_proj [E, 2 * HID, D]``."""
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PSplitExpertList(reverse)), TBlock(TRoutedStack()), inputs(), None, "body")


class TScoringRouter(tnn.Module):
    """A router returning routing probabilities (softmax inside), as transformers' MoE routers do."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(E, D) * 0.3)

    def forward(self, x):
        return torch.softmax(TF.linear(x, self.weight), dim=-1)


class TScoredStack(tnn.Module):
    """Stacked experts behind a router that returns probabilities; paddle's gate returns logits."""

    def __init__(self) -> None:
        super().__init__()
        self.router = TScoringRouter()
        self.experts = TStackedExperts()

    def forward(self, x):
        return (self.experts(x) * self.router(x).unsqueeze(-1)).sum(dim=2)


def scoring_router_experts() -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PExpertList()), TBlock(TScoredStack()), inputs(), None, "body")


class PSharedMoE(PExpertList):
    """Router, expert list and a shared expert with a fused ``up_gate_proj`` (a Qwen2-MoE-like block)."""

    def __init__(self) -> None:
        super().__init__()
        self.shared_expert = PUpGate()

    def forward(self, x):
        return super().forward(x) + self.shared_expert(x)


class TSharedMoE(tnn.Module):
    """Router, stacked experts and a shared expert with split ``gate_proj``/``up_proj``."""

    def __init__(self, reverse: bool = False) -> None:
        super().__init__()
        if reverse:  # every module's children in the opposite order
            self.shared_expert = TGateUp(reverse=True)
            self.experts = TStackedExperts()
            self.router = tnn.Linear(D, E, bias=False)
        else:
            self.router = tnn.Linear(D, E, bias=False)
            self.experts = TStackedExperts()
            self.shared_expert = TGateUp()

    def forward(self, x):
        probs = torch.softmax(self.router(x), dim=-1)
        return (self.experts(x) * probs.unsqueeze(-1)).sum(dim=2) + self.shared_expert(x)


def shared_expert_moe(reverse: bool = False) -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PSharedMoE()), TBlock(TSharedMoE(reverse)), inputs(), None, "body")


class PSharedMoELogits(PSharedMoE):
    """The MoE block also returning its router logits, which the torch block does not return."""

    def forward(self, x):
        return super().forward(x), self.gate(x)


class PAttnMoE(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.attn = PFusedAttn()
        self.moe = PSharedMoELogits()

    def forward(self, x):
        h = x + self.attn(x)
        return self.moe(h)[0]


class TAttnMoE(tnn.Module):
    def __init__(self, reverse: bool = False) -> None:
        super().__init__()
        self.attn = TSplitAttn(reverse)
        self.moe = TSharedMoE()

    def forward(self, x):
        h = x + self.attn(x)
        return self.moe(h)


def attention_and_moe_logits(reverse: bool = True) -> Case:
    """Fused qkv against q/k/v (torch order reversed) beside a MoE block whose paddle side returns more."""
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PBlock(PAttnMoE()), TBlock(TAttnMoE(reverse)), inputs(),
                ("inner.attn.qkv_proj", ("body.attn.q_proj", "body.attn.k_proj", "body.attn.v_proj")),
                "body.attn.k_proj")


# --- special-init units (MultiHeadAttention, LSTM) defined in another order -------------------------
class PDecoder(pnn.Layer):
    """Self-attention then cross-attention over a memory, then an LSTM: paddle's own special-init classes."""

    def __init__(self) -> None:
        super().__init__()
        self.self_attn = pnn.MultiHeadAttention(D, HEADS)
        self.cross_attn = pnn.MultiHeadAttention(D, HEADS)
        self.norm = pnn.LayerNorm(D)
        self.rnn = pnn.LSTM(D, D)
        self.head = pnn.Linear(D, 4)

    def forward(self, x, memory):
        h = x + self.self_attn(x, x, x)
        h = self.norm(h + self.cross_attn(h, memory, memory))
        out, _ = self.rnn(h)
        return self.head(out)


class TDecoder(tnn.Module):
    def __init__(self, reverse: bool = False, lstm_bias: bool = True) -> None:
        super().__init__()
        build = {
            "self_attn": lambda: tnn.MultiheadAttention(D, HEADS, batch_first=True),
            "cross_attn": lambda: tnn.MultiheadAttention(D, HEADS, batch_first=True),
        }
        for name in (["cross_attn", "self_attn"] if reverse else ["self_attn", "cross_attn"]):
            setattr(self, name, build[name]())
        self.ln = tnn.LayerNorm(D)
        self.lstm = tnn.LSTM(D, D, batch_first=True, bias=lstm_bias)
        self.out = tnn.Linear(D, 4)

    def forward(self, x, memory):
        h = x + self.self_attn(x, x, x, need_weights=False)[0]
        h = self.ln(h + self.cross_attn(h, memory, memory, need_weights=False)[0])
        out, _ = self.lstm(h)
        return self.out(out)


def decoder(reverse: bool = False, lstm_bias: bool = True) -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, D)).astype("float32")
    m = rng.standard_normal((2, 3, D)).astype("float32")
    ins = ({"x": paddle.to_tensor(x), "memory": paddle.to_tensor(m)},
           {"x": torch.from_numpy(x.copy()), "memory": torch.from_numpy(m.copy())})
    return Case(PDecoder(), TDecoder(reverse, lstm_bias), ins, None, "self_attn")


# --- raw parameters standing for several layers (X2Paddle style) ------------------------------------
class PRawMLP(pnn.Layer):
    """Every Linear written as root-level ``create_parameter`` weights used by ``paddle.matmul``."""

    def __init__(self) -> None:
        super().__init__()
        self.w0 = self.create_parameter([D, HID])
        self.b0 = self.create_parameter([HID], is_bias=True)
        self.w1 = self.create_parameter([HID, HID])
        self.b1 = self.create_parameter([HID], is_bias=True)
        self.w2 = self.create_parameter([HID, 4])
        self.b2 = self.create_parameter([4], is_bias=True)

    def forward(self, x):
        h = PF.relu(paddle.matmul(x, self.w0) + self.b0)
        h = PF.relu(paddle.matmul(h, self.w1) + self.b1)
        return paddle.matmul(h, self.w2) + self.b2


class TMLP3(tnn.Module):
    def __init__(self, reverse: bool = False, hid2: int = HID) -> None:
        super().__init__()
        dims = {"fc1": (D, HID), "fc2": (HID, hid2), "fc3": (hid2, 4)}
        for name in (["fc3", "fc2", "fc1"] if reverse else ["fc1", "fc2", "fc3"]):
            setattr(self, name, tnn.Linear(*dims[name]))

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


RAW_TRUTH = {"w0": "fc1.weight", "b0": "fc1.bias", "w1": "fc2.weight", "b1": "fc2.bias", "w2": "fc3.weight",
             "b2": "fc3.bias"}


def raw_params(reverse: bool = False, hid2: int = HID) -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PRawMLP(), TMLP3(reverse, hid2), inputs(), None, "fc2")


class TRawMLP(tnn.Module):
    """The other direction: torch holds raw ``[in, out]`` parameters used by ``@``, paddle has Linears."""

    def __init__(self) -> None:
        super().__init__()
        for k, (i, o) in enumerate(((D, HID), (HID, HID), (HID, 4))):
            setattr(self, f"w{k}", tnn.Parameter(torch.randn(i, o) * 0.3))
            setattr(self, f"b{k}", tnn.Parameter(torch.randn(o) * 0.1))

    def forward(self, x):
        h = torch.relu(x @ self.w0 + self.b0)
        h = torch.relu(h @ self.w1 + self.b1)
        return h @ self.w2 + self.b2


class PMLP3(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = pnn.Linear(D, HID), pnn.Linear(HID, HID), pnn.Linear(HID, 4)

    def forward(self, x):
        return self.fc3(PF.relu(self.fc2(PF.relu(self.fc1(x)))))


def raw_params_torch() -> Case:
    paddle.seed(1)
    torch.manual_seed(2)
    return Case(PMLP3(), TRawMLP(), inputs(), None, "w1")
