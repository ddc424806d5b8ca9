"""Numeric confirmation at depth: the cost grows with distinct blocks, not with depth x layouts.

A decoder repeats one layer N times, and each layer holds fused pairs whose layout (order of the
parts x interleaving) only numbers settle. Each layout used to cost one forward of the whole model,
so confirmation grew as N x layouts x N. Now a layout is scored on its own block, and a repeat of
a structurally identical block takes the first one's layout, checked by one run of its own block.
"""

from __future__ import annotations

from typing import Any

import paddle
import paddle.nn as pnn
import torch
import torch.nn as tnn
from models import fused_pairs as fp

import padiff

TOL = {"atol": 1e-5, "rtol": 1e-4}


class PLayer(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.norm1, self.attn = pnn.LayerNorm(fp.D), fp.PGQAFused()
        self.norm2, self.mlp = pnn.LayerNorm(fp.D), fp.PUpGateAct()

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TLayer(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln1, self.attn = tnn.LayerNorm(fp.D), fp.TGQASplit()
        self.ln2, self.ffn = tnn.LayerNorm(fp.D), fp.TGateUpAct()

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class PStack(pnn.Layer):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.layers = pnn.LayerList([PLayer() for _ in range(n)])
        self.head = pnn.Linear(fp.D, 4)

    def forward(self, x):
        for lay in self.layers:
            x = lay(x)
        return self.head(x)


class TStack(tnn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.blocks = tnn.ModuleList([TLayer() for _ in range(n)])
        self.out = tnn.Linear(fp.D, 4)

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.out(x)


def _suggest_counting(n: int) -> tuple[Any, int, list[int], Any]:
    """The proposal for an ``n``-layer stack, the eager paddle forwards of the whole model during it and of
    each layer's attention block."""
    paddle.seed(1)
    torch.manual_seed(2)
    layer, module = PStack(n), TStack(n)
    inputs = fp.inputs()
    whole = [0]
    attn = [0] * n

    def count(box: list[int], i: int) -> Any:
        def hook(*_: Any) -> None:
            if paddle.in_dynamic_mode():
                box[i] += 1
        return hook

    handles = [layer.register_forward_pre_hook(count(whole, 0))]
    handles += [lay.attn.register_forward_pre_hook(count(attn, i)) for i, lay in enumerate(layer.layers)]
    try:
        lm = padiff.suggest_layer_map(layer, module, inputs)
    finally:
        for h in handles:
            h.remove()
    return lm, whole[0], attn, (layer, module, inputs)


def test_confirmation_runs_the_model_a_number_of_times_independent_of_depth() -> None:
    _, runs_small, _, _ = _suggest_counting(2)
    deep, runs_deep, attn_deep, (layer, module, inputs) = _suggest_counting(6)
    # before: one whole forward per layout per fused pair (2 x 6 x ... runs at depth 6)
    assert runs_deep == runs_small <= 6, (runs_small, runs_deep)
    # a repeated layer's attention block runs in the whole forwards plus once for its own check
    assert max(attn_deep[1:]) <= runs_deep + 1, attn_deep
    fused = [p for p in deep.pairs if p.split_side]
    assert len(fused) == 12
    for p in fused:
        assert p.confidence >= 0.9, (p.paddle_path, p.evidence)
        assert p.groups == (2 if p.paddle_path.endswith("qkv_proj") else 1), p
    assert any("structurally identical" in str(n) for n in deep.notes)
    assert padiff.auto_diff(layer, module, inputs, auto_weights=True, layer_map=deep, options=TOL) is True


class TAttnMaybeSwapped(fp.TGQASplit):
    """The same class and shapes in every layer; ``swap`` reads the key from ``v_proj`` and the value from
    ``k_proj`` (a per-instance setting the structure cannot see)."""

    swap = False

    def forward(self, x):
        b, s = x.shape[0], x.shape[1]
        k_mod, v_mod = (self.v_proj, self.k_proj) if self.swap else (self.k_proj, self.v_proj)
        q = self.q_proj(x).reshape(b, s, fp.GQA_HEADS, fp.GQA_HD)
        k = k_mod(x).reshape(b, s, fp.GQA_KV, fp.GQA_HD)
        v = v_mod(x).reshape(b, s, fp.GQA_KV, fp.GQA_HD)
        return self.o_proj(fp._t_gqa(q, k, v))


def test_a_repeat_whose_numbers_disagree_is_searched_on_its_own() -> None:
    """Structurally identical is not numerically identical: the repeat's own check catches it, and its
    layout is searched instead of taken from the first layer."""
    paddle.seed(1)
    torch.manual_seed(2)
    layer, module = PStack(3), TStack(3)
    for i, blk in enumerate(module.blocks):
        attn = TAttnMaybeSwapped()
        attn.load_state_dict(blk.attn.state_dict())
        attn.swap = i == 2
        blk.attn = attn
    inputs = fp.inputs()
    lm = padiff.suggest_layer_map(layer, module, inputs)
    parts = {p.paddle_path: p.torch_parts for p in lm.pairs if p.split_side}
    assert parts["layers.1.attn.qkv_proj"] == ("blocks.1.attn.q_proj", "blocks.1.attn.k_proj", "blocks.1.attn.v_proj")
    assert parts["layers.2.attn.qkv_proj"] == ("blocks.2.attn.q_proj", "blocks.2.attn.v_proj", "blocks.2.attn.k_proj")
    assert padiff.auto_diff(layer, module, inputs, auto_weights=True, layer_map=lm, options=TOL) is True


def test_the_confirmations_undo_values_go_to_a_file_when_large_and_come_back_exactly(monkeypatch: Any) -> None:
    import tempfile

    import numpy as np

    from padiff.weights import spill

    made: list[str] = []
    real = tempfile.TemporaryFile

    def counting(*a: Any, **k: Any) -> Any:
        made.append(str(k.get("prefix", "")))
        return real(*a, **k)

    monkeypatch.setattr(spill, "SPILL_BYTES", 0)  # this small model counts as large
    monkeypatch.setattr(tempfile, "TemporaryFile", counting)
    paddle.seed(1)
    torch.manual_seed(2)
    layer, module = PStack(2), TStack(2)
    before = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
    lm = padiff.suggest_layer_map(layer, module, fp.inputs())
    assert any("settled numerically" in str(n) for n in lm.notes)  # the confirmation ran and wrote weights
    assert "padiff-undo-" in made
    after = {k: v.numpy() for k, v in layer.state_dict().items()}
    assert all(np.array_equal(before[k], after[k]) for k in before)
