"""A mask as 0/1 (paddle) against additive -inf (torch), handed as it is to the attention that reads it.

The mask has no autograd history: its consumer is found by tensor identity. The correct port
passes with the mask noted as a representation; a fault after the attention fails there; a wrong
mask (its attention then differs) fails at the mask.
"""

from __future__ import annotations

import numpy as np
import paddle
import torch

import padiff

TOL = {"atol": 1e-5, "rtol": 1e-4}
B, S, D = 2, 5, 8


class PdMask(paddle.nn.Layer):
    def forward(self, x):
        return paddle.tril(paddle.ones([x.shape[1], x.shape[1]]))  # 1: attend


class TMask(torch.nn.Module):
    def __init__(self, shift: int = 1) -> None:
        super().__init__()
        self.shift = shift  # 1: causal; 2 lets each position see the next one too (a real fault)

    def forward(self, x):
        return torch.full((x.shape[1], x.shape[1]), float("-inf")).triu(self.shift)  # 0: attend


class PdAttn(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = (paddle.nn.Linear(D, D) for _ in range(3))

    def forward(self, x, mask):
        s = paddle.matmul(self.q(x), self.k(x), transpose_y=True) / D ** 0.5 + (1.0 - mask) * -1e9
        return paddle.matmul(paddle.nn.functional.softmax(s, axis=-1), self.v(x))


class TAttn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.k, self.v = (torch.nn.Linear(D, D) for _ in range(3))

    def forward(self, x, mask):
        s = self.q(x) @ self.k(x).transpose(-1, -2) / D ** 0.5 + mask
        return torch.softmax(s, dim=-1) @ self.v(x)


class PdNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.mask, self.attn, self.out = PdMask(), PdAttn(), paddle.nn.Linear(D, 3)

    def forward(self, x):
        return self.out(self.attn(x, self.mask(x)))


class TNet(torch.nn.Module):
    def __init__(self, shift: int = 1) -> None:
        super().__init__()
        self.mask, self.attn, self.out = TMask(shift), TAttn(), torch.nn.Linear(D, 3)

    def forward(self, x):
        return self.out(self.attn(x, self.mask(x)))


def _run(module: TNet) -> padiff.DiffReport:
    layer = PdNet()
    x = np.random.default_rng(0).standard_normal((B, S, D)).astype("float32")
    pairs = {layer.mask: module.mask, layer.attn: module.attn, layer.out: module.out,
             **{getattr(layer.attn, n): getattr(module.attn, n) for n in "qkv"}}
    return padiff.compare(layer, module, ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)}),
                          auto_weights=True, layer_map=pairs, options=TOL)


def test_a_mask_in_another_form_passes_as_a_representation():
    rep = _run(TNet())
    assert rep, rep.first_diff
    (mask,) = [r for r in rep.records if r.paddle_path == "mask" and r.stage == "forward"]
    assert mask.stats.note_kind == "representation" and "attn <-> attn" in mask.note


def test_a_fault_after_the_masked_attention_fails_at_the_fault():
    module = TNet()
    module.out.register_forward_hook(lambda m, args, out: out * 1.05)
    rep = _run(module)
    assert not rep and (rep.first_diff.stage, rep.first_diff.paddle_path) == ("forward", "out")


def test_a_wrong_mask_fails_at_the_mask():
    rep = _run(TNet(shift=2))
    assert not rep and (rep.first_diff.stage, rep.first_diff.paddle_path) == ("forward", "mask")
