"""Real ports whose outputs differ only in layout: broadcast tables, merged dims, integer outputs.

Each pair is checked three ways: the correct port passes, a fault planted in one torch
layer is named at that pair, and a real shape difference still fails.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

import padiff

TOL = {"atol": 1e-5, "rtol": 1e-4}
B, S, D = 3, 5, 8


def _ids() -> tuple[dict, dict]:
    ids = np.random.default_rng(0).integers(0, 20, (B, S)).astype("int64")
    return {"ids": paddle.to_tensor(ids)}, {"input_ids": torch.tensor(ids)}


class PdEmbed(paddle.nn.Layer):
    """Position ids as ``[B, S]``: the position embedding returns ``[B, S, D]``."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = paddle.nn.Embedding(20, D)
        self.pos = paddle.nn.Embedding(S, D)
        self.out = paddle.nn.Linear(D, 4)

    def forward(self, ids):
        pos_ids = paddle.arange(ids.shape[1]).unsqueeze(0).expand([ids.shape[0], ids.shape[1]])
        return self.out(self.tok(ids) + self.pos(pos_ids))


class PtEmbed(torch.nn.Module):
    """Position ids as ``[1, S]`` (as transformers builds them): ``[1, S, D]``, broadcast in the add."""

    def __init__(self, transpose_pos: bool = False) -> None:
        super().__init__()
        self.word = torch.nn.Embedding(20, D)
        self.position = torch.nn.Embedding(S, D)
        self.head = torch.nn.Linear(D, 4)
        self.transpose_pos = transpose_pos

    def forward(self, input_ids):
        pos_ids = torch.arange(input_ids.shape[1])[None]
        if self.transpose_pos:  # a real layout difference: [S, 1, D] against paddle's [B, S, D]
            return self.head(self.word(input_ids) + self.position(pos_ids.T).transpose(0, 1))
        return self.head(self.word(input_ids) + self.position(pos_ids))


class PdPatches(paddle.nn.Layer):
    """Tokens kept as ``[B, H*W, C]``."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = paddle.nn.Conv2D(3, D, 2, stride=2)
        self.mlp = paddle.nn.Linear(D, D)
        self.head = paddle.nn.Linear(D, 2)

    def forward(self, x):
        h = self.embed(x).flatten(2).transpose([0, 2, 1])  # [B, HW, C]
        return self.head(self.mlp(h).mean(axis=1))


class PtPatches(torch.nn.Module):
    """The same tokens kept as ``[B, H, W, C]``."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Conv2d(3, D, 2, stride=2)
        self.fc = torch.nn.Linear(D, D)
        self.out = torch.nn.Linear(D, 2)

    def forward(self, x):
        h = self.proj(x).permute(0, 2, 3, 1)  # [B, H, W, C]
        return self.out(self.fc(h).flatten(1, 2).mean(dim=1))


def _images() -> tuple[dict, dict]:
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype("float32")
    return {"x": paddle.to_tensor(x)}, {"x": torch.tensor(x)}


def _scale_output(module: torch.nn.Module, factor: float = 1.05) -> None:
    module.register_forward_hook(lambda m, args, out: out * factor)


@pytest.mark.parametrize("mode", ["mean", "strict"])
def test_a_broadcast_position_table_passes_forward_and_backward(mode):
    rep = padiff.compare(PdEmbed(), PtEmbed(), _ids(), auto_weights=True, options={**TOL, "compare_mode": mode})
    assert rep, rep.first_diff
    pos = [r for r in rep.records if r.paddle_path == "pos" and r.stage in ("forward", "backward")]
    assert {r.stage for r in pos} == {"forward", "backward"}
    assert all("broadcast" in r.stats.reconciled for r in pos)


def test_a_fault_in_the_broadcast_table_is_named_at_its_pair():
    module = PtEmbed()
    _scale_output(module.position)
    rep = padiff.compare(PdEmbed(), module, _ids(), auto_weights=True, options=TOL)
    assert not rep and (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == (
        "forward", "pos", "position")


def test_a_real_layout_difference_still_fails():
    rep = padiff.compare(PdEmbed(), PtEmbed(transpose_pos=True), _ids(), auto_weights=True, options=TOL)
    assert not rep and rep.first_diff.paddle_path == "pos"
    assert rep.first_diff.note.startswith("shape mismatch")


@pytest.mark.parametrize("mode", ["mean", "strict"])
def test_merged_spatial_dims_are_compared_as_a_reshape(mode):
    rep = padiff.compare(PdPatches(), PtPatches(), _images(), auto_weights=True,
                         options={**TOL, "compare_mode": mode})
    assert rep, rep.first_diff
    fc = [r for r in rep.records if r.paddle_path == "mlp" and r.stage == "forward"]
    assert fc and "reshape" in fc[0].stats.reconciled


def test_a_fault_after_merged_dims_is_named_at_its_pair():
    module = PtPatches()
    _scale_output(module.fc)
    rep = padiff.compare(PdPatches(), module, _images(), auto_weights=True, options=TOL)
    assert not rep and (rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("mlp", "fc")


class PdRouter(paddle.nn.Layer):
    """Returns the top-2 scores and their int64 indices, as an MoE router does."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = self.create_parameter([D], default_initializer=paddle.nn.initializer.Constant(1.0))

    def forward(self, h):
        return paddle.topk(h * self.scale, 2)


class PtRouter(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(D))

    def forward(self, h):
        return torch.topk(h * self.scale, 2)


class PdGated(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = paddle.nn.Linear(D, D)
        self.router = PdRouter()

    def forward(self, x):
        h = self.fc(x)
        w, idx = self.router(h)
        return paddle.take_along_axis(h, idx, -1) * w


class PtGated(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(D, D)
        self.router = PtRouter()

    def forward(self, x):
        h = self.fc(x)
        w, idx = self.router(h)
        return torch.gather(h, -1, idx) * w


def test_a_layer_returning_integer_indices_runs_backward():
    x = np.random.default_rng(2).standard_normal((4, D)).astype("float32")
    layer, module = PdGated(), PtGated()
    rep = padiff.compare(layer, module, ({"x": paddle.to_tensor(x)}, {"x": torch.tensor(x)}), auto_weights=True,
                         options=TOL)
    assert rep, rep.first_diff
    back = [r.item for r in rep.records if r.stage == "backward" and r.paddle_path == "router"]
    assert back == ["grad of output[0]"]  # the float values have a gradient, the indices none


def test_integer_results_carry_no_gradient_in_either_adapter():
    from padiff.adapters import PADDLE, TORCH

    h = paddle.to_tensor(np.ones((2, 4), "float32"), stop_gradient=False)
    _, idx = paddle.topk(h * 2, 2)
    assert PADDLE.requires_grad(idx) and not PADDLE.carries_grad(idx)  # paddle marks it, yet never fills it
    assert PADDLE.carries_grad(h * 2)
    t = torch.ones(2, 4, requires_grad=True)
    assert not TORCH.carries_grad(torch.topk(t * 2, 2)[1]) and TORCH.carries_grad(t * 2)


H, HD = 2, 4  # heads, head dim: a per-head norm in each framework's attention layout


class PdHeadNorm(paddle.nn.Layer):
    """A per-head norm applied to ``[B, S, H, D]`` (paddle's attention layout)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = paddle.nn.Linear(D, H * HD)
        self.q_norm = paddle.nn.LayerNorm(HD)
        self.head = paddle.nn.Linear(H * HD, 2)

    def forward(self, x):
        q = self.q_norm(self.proj(x).reshape([B, S, H, HD]))
        return self.head(q.reshape([B, S, H * HD]))


class PtHeadNorm(torch.nn.Module):
    """The same norm applied after the heads are moved before the sequence: ``[B, H, S, D]``."""

    def __init__(self) -> None:
        super().__init__()
        self.q = torch.nn.Linear(D, H * HD)
        self.norm = torch.nn.LayerNorm(HD)
        self.out = torch.nn.Linear(H * HD, 2)

    def forward(self, x):
        q = self.norm(self.q(x).view(B, S, H, HD).transpose(1, 2))
        return self.out(q.transpose(1, 2).reshape(B, S, H * HD))


def _tokens() -> tuple[dict, dict]:
    x = np.random.default_rng(2).standard_normal((B, S, D)).astype("float32")
    return {"x": paddle.to_tensor(x)}, {"x": torch.tensor(x)}


def _with_norm_weights(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():  # a norm at its init (1, 0) would hide a planted fault in nothing
        module.norm.weight.uniform_(0.5, 1.5)
        module.norm.bias.normal_()
    return module


@pytest.mark.parametrize("mode", ["mean", "strict"])
def test_a_per_head_norm_in_the_other_attention_layout_passes(mode):
    rep = padiff.compare(PdHeadNorm(), _with_norm_weights(PtHeadNorm()), _tokens(), auto_weights=True,
                         options={**TOL, "compare_mode": mode})
    assert rep, rep.first_diff
    norm = [r for r in rep.records if r.paddle_path == "q_norm" and r.stage in ("forward", "backward")]
    assert {r.stage for r in norm} == {"forward", "backward"}
    assert all("middle axes" in r.stats.reconciled for r in norm)


def test_a_fault_in_the_per_head_norm_is_named_at_its_pair():
    module = _with_norm_weights(PtHeadNorm())
    _scale_output(module.norm)
    rep = padiff.compare(PdHeadNorm(), module, _tokens(), auto_weights=True, options=TOL)
    assert not rep and (rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("q_norm", "norm")
