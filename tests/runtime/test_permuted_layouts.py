"""Outputs in another axis order (README "Layouts"): reconciled where the values then agree, else a shape failure."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

import padiff
from padiff.compare.arrays import compare_arrays
from padiff.compare.reconcile import MAX_LAYOUTS_TRIED, permuted_layouts

ATOL, RTOL = 1e-5, 1e-4
TOL = {"atol": ATOL, "rtol": RTOL}
N, K, C, V = 5, 4, 6, 30


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("mode", ["mean", "strict"])
def test_swapped_leading_axes_are_reconciled_when_the_values_agree(mode):
    t = _rng().standard_normal((N, K, C)).astype("float32")
    s = compare_arrays(t.transpose(1, 0, 2).copy(), t, ATOL, RTOL, mode)
    assert s.passed and "permuted as [1, 0, 2]" in s.reconciled, s


def test_a_permuted_layout_whose_values_disagree_is_a_shape_difference():
    t = _rng().standard_normal((N, K, C)).astype("float32")
    p = t.transpose(1, 0, 2).copy()
    p[0, 0, 0] += 1.0
    s = compare_arrays(p, t, ATOL, RTOL, "strict")
    assert not s.passed and s.note_kind == "shape" and not s.reconciled


def test_a_permutation_then_a_merge_is_reconciled_both_ways():
    t = _rng().standard_normal((2, 3, 4, 5)).astype("float32")  # [B, H, S, D]
    merged = t.transpose(0, 2, 1, 3).reshape(2, 4, 15)  # [B, S, H*D]
    assert compare_arrays(merged, t, ATOL, RTOL, "strict").passed
    assert compare_arrays(t, merged, ATOL, RTOL, "strict").passed


def test_the_layouts_tried_are_capped_and_need_equal_sizes():
    assert permuted_layouts(np.zeros((2, 3)), np.zeros((3, 3))) == []
    many = permuted_layouts(np.zeros((2, 2, 2, 2, 2)), np.zeros((2, 2, 2, 2, 2)).reshape(4, 2, 4))
    assert 0 < len(many) <= MAX_LAYOUTS_TRIED


class PdLookup(paddle.nn.Layer):
    """Looks up ``ids`` as given, ``[N, K]``: the embedding returns ``[N, K, C]``."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.emb = paddle.nn.Embedding(V, C)
        self.head = paddle.nn.Linear(C, 3)
        self.scale = scale

    def forward(self, ids):
        e = self.emb(ids) * self.scale
        return self.head(e.sum(axis=1))


class PtLookup(torch.nn.Module):
    """Looks up the transposed index array, ``[K, N]``: ``[K, N, C]``, summed over its first axis."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(V, C)
        self.out = torch.nn.Linear(C, 3)

    def forward(self, ids):
        return self.out(self.table(ids.T.contiguous()).sum(dim=0))


def _ids() -> tuple[dict, dict]:
    ids = _rng(3).integers(0, V, (N, K)).astype("int64")
    return {"ids": paddle.to_tensor(ids)}, {"ids": torch.tensor(ids)}


def test_an_embedding_looked_up_with_transposed_indices_is_reconciled():
    rep = padiff.compare(PdLookup(), PtLookup(), _ids(), auto_weights=True, options=TOL)
    assert rep, rep.first_diff
    emb = [r for r in rep.records if r.paddle_path == "emb" and r.stage in ("forward", "backward")]
    assert {r.stage for r in emb} == {"forward", "backward"}
    assert all("permuted" in r.stats.reconciled for r in emb), [r.stats for r in emb]


def test_a_fault_in_the_transposed_lookup_is_still_named_at_its_pair():
    torch_side = PtLookup()
    torch_side.table.register_forward_hook(lambda m, args, out: out * 1.05)
    rep = padiff.compare(PdLookup(), torch_side, _ids(), auto_weights=True, options=TOL)
    assert not rep and (rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("emb", "table")
