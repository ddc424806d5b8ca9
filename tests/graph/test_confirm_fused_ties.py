"""A fused pair's layout is settled numerically even while a tie around it is still crossed.

Qwen3-MoE with torch definition order reversed: the fused ``qkv_proj`` (interleaved per key-value
head) sits before ``q_norm``/``k_norm``, whose structural pairing is crossed until the tie is settled.
The crossed norms compare outputs of different shapes (query heads against key-value heads): that
term must not make every layout of the fused pair score inf alike, or the first (plain concatenation)
is kept.
"""

from __future__ import annotations

import paddle
import paddle.nn as pnn
import torch
import torch.nn as tnn
from models import fused_pairs as fp

from padiff.adapters import PADDLE, TORCH
from padiff.graph.confirm import confirm_ties
from padiff.graph.match import MatchResult, ProposedPair
from padiff.graph.suggest import layer_infos


class PScale(pnn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.weight = self.create_parameter([fp.GQA_HD])

    def forward(self, x):
        return x * self.weight


class TScale(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = tnn.Parameter(torch.randn(fp.GQA_HD))

    def forward(self, x):
        return x * self.weight


class PNormedGQA(fp.PGQAFused):
    def __init__(self) -> None:
        super().__init__()
        self.q_norm, self.k_norm = PScale(), PScale()

    def forward(self, x):
        b, s = x.shape[0], x.shape[1]
        rep = fp.GQA_HEADS // fp.GQA_KV
        mix = self.qkv_proj(x).reshape([b, s, fp.GQA_KV, (rep + 2) * fp.GQA_HD])
        q, k, v = paddle.split(mix, [rep * fp.GQA_HD, fp.GQA_HD, fp.GQA_HD], axis=-1)
        q = self.q_norm(q.reshape([b, s, fp.GQA_HEADS, fp.GQA_HD]))
        return self.o_proj(fp._p_gqa(q, self.k_norm(k), v))


class TNormedGQA(fp.TGQASplit):
    def __init__(self) -> None:
        super().__init__(reverse=True)
        self.k_norm, self.q_norm = TScale(), TScale()

    def forward(self, x):
        b, s = x.shape[0], x.shape[1]
        q = self.q_norm(self.q_proj(x).reshape(b, s, fp.GQA_HEADS, fp.GQA_HD))
        k = self.k_norm(self.k_proj(x).reshape(b, s, fp.GQA_KV, fp.GQA_HD))
        v = self.v_proj(x).reshape(b, s, fp.GQA_KV, fp.GQA_HD)
        return self.o_proj(fp._t_gqa(q, k, v))


def test_a_fused_layout_is_settled_while_a_tie_beside_it_still_compares_outputs_of_other_shapes() -> None:
    paddle.seed(1)
    torch.manual_seed(2)
    layer, module = PNormedGQA(), TNormedGQA()
    p_layers, t_layers = layer_infos(PADDLE, layer), layer_infos(TORCH, module)
    tie = ("tie: equal candidates",)
    pairs = [ProposedPair("qkv_proj", "q_proj", 0.6, ("fused against split",), True, uncertain=True,
                          torch_parts=("q_proj", "k_proj", "v_proj")),
             ProposedPair("q_norm", "k_norm", 0.4, tie, True, uncertain=True),  # crossed, as the structure may
             ProposedPair("k_norm", "q_norm", 0.4, tie, True, uncertain=True),
             ProposedPair("o_proj", "o_proj", 0.9, (), True)]
    result, notes = confirm_ties(layer, module, fp.inputs(), MatchResult(pairs, []), p_layers, t_layers)
    got = {p.paddle_path: p for p in result.pairs}
    assert got["qkv_proj"].groups == fp.GQA_KV, notes
    assert got["qkv_proj"].torch_parts == ("q_proj", "k_proj", "v_proj")
    assert not got["qkv_proj"].uncertain
    assert (got["q_norm"].torch_path, got["k_norm"].torch_path) == ("q_norm", "k_norm")
