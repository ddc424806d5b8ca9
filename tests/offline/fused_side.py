"""A small decoder block per framework, built so each side imports only its own framework.

Paddle fuses what torch splits: ``attn.qkv_proj`` (one ``Linear(D, 3D)``) against torch
``attn.q_proj``/``k_proj``/``v_proj``, and paddle's MLP holds raw parameters used by
``matmul`` (``mlp.w_up``/``mlp.w_down``) where torch has ``mlp.up``/``mlp.down`` Linears,
so the aligner proposes parameter-level pairs there. Weights come from a numpy seed, the
same numbers on both sides. ``fault`` scales torch ``attn.k_proj``'s output from step
``fault_step`` on, so a test can check the difference is named there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

D, HEADS, HID, BATCH, SEQ = 8, 2, 12, 2, 3


def weights() -> dict[str, np.ndarray]:
    """The shared numbers, in torch's layout (Linear weights ``[out, in]``)."""
    rng = np.random.default_rng(0)
    w = {name: (rng.standard_normal(shape) * 0.3).astype("float32") for name, shape in (
        ("q", (D, D)), ("k", (D, D)), ("v", (D, D)), ("o", (D, D)), ("up", (HID, D)), ("down", (D, HID)))}
    w.update({f"{n}_b": (rng.standard_normal(D) * 0.1).astype("float32") for n in ("q", "k", "v", "o")})
    return w


def batch(step: int) -> np.ndarray:
    """The input of one step."""
    return np.random.default_rng(100 + step).standard_normal((BATCH, SEQ, D)).astype("float32")


def build(fw: str, fault: float = 1.0, fault_step: int = 0, fault_rank: int = -1) -> tuple[Any, Any]:
    """``(model, state)`` for ``fw``; ``state["step"]`` is set by the loop (the fault starts at ``fault_step``,
    on every rank or only on ``fault_rank``)."""
    return _paddle() if fw == "paddle" else _torch(fault, fault_step, fault_rank)


def _paddle() -> tuple[Any, Any]:
    import paddle
    import paddle.nn.functional as F

    w = weights()
    state = {"step": 0}

    class Attn(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.qkv_proj, self.out_proj = paddle.nn.Linear(D, 3 * D), paddle.nn.Linear(D, D)

        def forward(self, x):
            b, s, _ = x.shape
            q, k, v = (t.reshape([b, s, HEADS, D // HEADS]).transpose([0, 2, 1, 3])
                       for t in paddle.split(self.qkv_proj(x), 3, axis=-1))
            a = F.softmax(paddle.matmul(q, k, transpose_y=True) / (D // HEADS) ** 0.5, axis=-1)
            return self.out_proj(paddle.matmul(a, v).transpose([0, 2, 1, 3]).reshape([b, s, D]))

    class Mlp(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.w_up = self.create_parameter([D, HID])
            self.w_down = self.create_parameter([HID, D])

        def forward(self, x):
            return paddle.matmul(F.gelu(paddle.matmul(x, self.w_up)), self.w_down)

    class Block(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.attn, self.mlp = Attn(), Mlp()

        def forward(self, x):
            h = x + self.attn(x)
            return h + self.mlp(h)

    m = Block()
    for p, v in ((m.attn.qkv_proj.weight, np.concatenate([w["q"], w["k"], w["v"]]).T),
                 (m.attn.qkv_proj.bias, np.concatenate([w["q_b"], w["k_b"], w["v_b"]])),
                 (m.attn.out_proj.weight, w["o"].T), (m.attn.out_proj.bias, w["o_b"]),
                 (m.mlp.w_up, w["up"].T), (m.mlp.w_down, w["down"].T)):
        p.set_value(np.ascontiguousarray(v))
    return m, state


def _torch(fault: float, fault_step: int, fault_rank: int) -> tuple[Any, Any]:
    import os

    import torch
    import torch.nn.functional as F

    w = weights()
    state = {"step": 0}

    class Attn(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj, self.k_proj, self.v_proj = (torch.nn.Linear(D, D) for _ in range(3))
            self.out_proj = torch.nn.Linear(D, D)

        def forward(self, x):
            b, s, _ = x.shape  # heads as many as the projections give: all, or this rank's under tensor parallel
            q, k, v = (t.reshape(b, s, -1, D // HEADS).transpose(1, 2)
                       for t in (self.q_proj(x), self.k_proj(x), self.v_proj(x)))
            a = torch.softmax(q @ k.transpose(-1, -2) / (D // HEADS) ** 0.5, dim=-1)
            return self.out_proj((a @ v).transpose(1, 2).reshape(b, s, -1))

    class Mlp(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up, self.down = torch.nn.Linear(D, HID, bias=False), torch.nn.Linear(HID, D, bias=False)

        def forward(self, x):
            return self.down(F.gelu(self.up(x)))

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn, self.mlp = Attn(), Mlp()

        def forward(self, x):
            h = x + self.attn(x)
            return h + self.mlp(h)

    m = Block()
    with torch.no_grad():
        for name, lin in (("q", m.attn.q_proj), ("k", m.attn.k_proj), ("v", m.attn.v_proj), ("o", m.attn.out_proj)):
            lin.weight.copy_(torch.from_numpy(w[name]))
            lin.bias.copy_(torch.from_numpy(w[f"{name}_b"]))
        m.mlp.up.weight.copy_(torch.from_numpy(w["up"]))
        m.mlp.down.weight.copy_(torch.from_numpy(w["down"]))

    rank = int(os.environ.get("RANK", "0"))

    def planted(_mod: Any, _args: Any, out: Any) -> Any:
        on = state["step"] >= fault_step and fault != 1.0 and fault_rank in (-1, rank)
        return out * fault if on else None

    m.attn.k_proj.register_forward_hook(planted)  # registered first: every later hook sees the scaled output
    return m, state
