"""Numbers decide only when they discriminate (README "Numeric confirmation").

A grouped ``qkv_proj`` (paddle, one ``[q | k | v]`` block per key-value head) against separate
q/k/v Linears (torch): on an example whose positions all hold the same values, attention is
uniform, so queries and keys in either order give the same output and the example cannot settle
the layout. padiff scores the tied layouts again on a random input of the example's shapes and
settles them there. Where even that cannot separate them (one position: attention reads only
the values), the layout is a guess, proposed below 0.9 with the reason.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch
from models import fused_pairs as fp

import padiff
from padiff.graph.separating import random_like, separating_input

TOL = {"atol": 1e-5, "rtol": 1e-4}
QKV = ("body.q_proj", "body.k_proj", "body.v_proj")


class KeysFirst(fp.TGQASplit):
    """The same attention with k computed before q: the parts come out of the graph as k, q, v."""

    def forward(self, x):
        b, s = x.shape[0], x.shape[1]
        k = self.k_proj(x).reshape(b, s, fp.GQA_KV, fp.GQA_HD)
        q = self.q_proj(x).reshape(b, s, fp.GQA_HEADS, fp.GQA_HD)
        v = self.v_proj(x).reshape(b, s, fp.GQA_KV, fp.GQA_HD)
        return self.o_proj(fp._t_gqa(q, k, v))


def _case(keys_first: bool) -> fp.Case:
    paddle.seed(1)
    torch.manual_seed(2)
    inner = KeysFirst() if keys_first else fp.TGQASplit()
    return fp.Case(fp.PBlock(fp.PGQAFused()), fp.TBlock(inner), fp.inputs(), None, "body.k_proj")


def _same_at_every_position(seq: int = 5) -> tuple[dict, dict]:
    row = np.random.default_rng(0).standard_normal((2, 1, fp.D)).astype("float32")
    arr = row.repeat(seq, axis=1)
    return {"x": paddle.to_tensor(arr)}, {"x": torch.from_numpy(arr.copy())}


def _fused(lm: padiff.LayerMap) -> padiff.LayerPair:
    (pair,) = [p for p in lm.pairs if p.split_side]
    return pair


@pytest.mark.parametrize("keys_first", [False, True], ids=["q-first", "k-first"])
def test_a_grouped_qkv_the_example_cannot_settle_is_settled_on_a_separating_input(keys_first: bool) -> None:
    case = _case(keys_first)
    lm = padiff.suggest_layer_map(case.paddle, case.torch, _same_at_every_position())
    pair = _fused(lm)
    assert (pair.paddle_path, pair.torch_parts, pair.groups) == ("inner.qkv_proj", QKV, 2), pair
    assert pair.confidence >= 0.9 and any("random input" in e for e in pair.evidence), pair.evidence
    # the map is right for every input, not only for the example it was proposed on
    assert padiff.auto_diff(case.paddle, case.torch, fp.inputs(seed=3), auto_weights=True, layer_map=lm,
                            options=TOL) is True
    case = _case(keys_first)
    assert padiff.auto_diff(case.paddle, case.torch, _same_at_every_position(), auto_weights=True,
                            layer_map="auto", options=TOL) is True


def test_a_fault_in_one_part_is_still_named_after_settling_on_a_separating_input() -> None:
    case = _case(False)
    handle = case.torch.body.k_proj.register_forward_hook(lambda _m, _i, out: out * 1.05)
    try:
        rep = padiff.compare(case.paddle, case.torch, fp.inputs(seed=3), auto_weights=True,
                             layer_map=padiff.suggest_layer_map(case.paddle, case.torch, _same_at_every_position()),
                             options=TOL)
    finally:
        handle.remove()
    assert rep.first_diff is not None
    assert (rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("inner.qkv_proj", "body.k_proj")


def test_layouts_no_input_of_these_shapes_separates_are_a_guess_below_0_9() -> None:
    case = _case(True)  # one position: attention returns the values, queries and keys are never read
    lm = padiff.suggest_layer_map(case.paddle, case.torch, _same_at_every_position(seq=1))
    pair = _fused(lm)
    assert pair.confidence < 0.9 and any("a guess" in e for e in pair.evidence), pair


def test_random_values_keep_what_the_models_rely_on() -> None:
    rng = np.random.default_rng(0)
    ids = np.full((2, 6), 7, dtype="int64")  # one token everywhere
    got = random_like(ids, rng)
    assert got.dtype == ids.dtype and got.min() >= 0 and got.max() <= 7 and len(np.unique(got)) > 1
    mask = np.tril(np.ones((4, 4), dtype="int64"))
    assert np.array_equal(random_like(mask, rng), mask)
    flags = np.array([True, False])
    assert np.array_equal(random_like(flags, rng), flags)
    const = np.full((3, 5), 2.0, dtype="float32")
    moved = random_like(const, rng)
    assert moved.dtype == const.dtype and moved.std() > 0.1


def test_the_separating_input_is_the_same_on_both_sides_and_needs_paired_tensors() -> None:
    p_in, t_in = separating_input(_same_at_every_position())  # type: ignore[misc]
    assert np.array_equal(p_in["x"].numpy(), t_in["x"].numpy())
    assert not np.allclose(p_in["x"].numpy()[:, 0], p_in["x"].numpy()[:, 1])
    arr = np.zeros((2, 3), dtype="float32")
    assert separating_input(({"x": paddle.to_tensor(arr)}, {"x": torch.zeros(3, 2)})) is None
