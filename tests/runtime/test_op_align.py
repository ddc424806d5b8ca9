"""The op aligner on hand-built op sequences: milliseconds, no framework."""

from __future__ import annotations

import numpy as np

from padiff.adapters.op_events import Trace, canonical_kind, canonical_params
from padiff.runtime.ops.align import agreement, align, first_divergence

cmp = agreement(1e-6, 1e-5, "mean")


def _seq(*ops):
    tr = Trace("")
    for name, ins, outs in ops:
        tr.add(name, {}, list(ins), list(outs), ("model.py", len(tr.ops) + 1, "forward"))
    return tr.ops


X = np.random.default_rng(0).standard_normal((2, 3, 2, 4)).astype("float32")  # [B, S, H, D]
W = np.random.default_rng(1).standard_normal((2, 2, 4, 4)).astype("float32")


def test_kinds_and_settings_read_alike_across_frameworks():
    assert canonical_kind("Tensor.view") == canonical_kind("Tensor.reshape") == "reshape"
    assert canonical_kind("Tensor.__mul__") == canonical_kind("paddle.scale") == "mul"
    assert canonical_params("gelu", {"approximate": True}, []) == canonical_params("gelu", {"approximate": "tanh"}, [])
    assert canonical_params("gelu", {}, []) == canonical_params("gelu", {"approximate": False}, [])
    assert canonical_params("softmax", {"axis": -1}, []) == canonical_params("softmax", {"dim": -1}, [])


def test_an_op_only_one_side_runs_is_named_when_the_next_inputs_differ():
    # torch transposes the heads before merging them, paddle forgets to: the reshape after it gets other inputs
    flat = X.reshape(2, 3, 8)
    heads = X.transpose(0, 2, 1, 3)  # [B, H, S, D]
    p = _seq(("Tensor.matmul", [heads, W], [heads @ W]),
             ("Tensor.reshape", [heads @ W], [(heads @ W).reshape(2, 3, 8)]))
    merged = (heads @ W).transpose(0, 2, 1, 3)
    t = _seq(("Tensor.matmul", [heads, W], [heads @ W]),
             ("Tensor.transpose", [heads @ W], [merged]),
             ("Tensor.reshape", [merged], [merged.reshape(2, 3, 8)]))
    assert flat.shape == (2, 3, 8)
    assert align(p, t) == [(0, 0), (1, 2)]
    div = first_divergence(p, t, cmp)
    assert div is not None and not div.inputs_agree
    assert [o.name for o in div.only_torch] == ["Tensor.transpose"] and div.only_paddle == ()
    assert div.torch.name == "Tensor.transpose" and div.paddle.name == "Tensor.reshape"


def test_rounding_noise_is_not_a_cause():
    a = np.linspace(-1, 1, 64, dtype="float32")
    noisy = (a * (1 + 1e-7)).astype("float32")
    assert not agreement(0.0, 1e-9, "strict")(np.tanh(noisy), np.tanh(a)).passed  # the tolerance alone flags it
    p = _seq(("paddle.tanh", [a], [np.tanh(a)]), ("Tensor.__mul__", [np.tanh(a)], [np.tanh(a) * 0.5]))
    t = _seq(("torch.tanh", [a], [np.tanh(noisy)]), ("Tensor.mul", [np.tanh(noisy)], [np.tanh(noisy) * 0.6]))
    div = first_divergence(p, t, agreement(0.0, 1e-9, "strict"))
    assert div is not None and div.paddle.kind == "mul" and div.inputs_agree


def test_agreeing_sequences_have_no_divergence():
    a = np.arange(6, dtype="float32")
    p = _seq(("paddle.exp", [a], [np.exp(a)]))
    t = _seq(("torch.exp", [a], [np.exp(a)]))
    assert first_divergence(p, t, cmp) is None


def test_numeric_settings_keep_their_kind_and_value():
    params = canonical_params("mul", {"scale": np.float32(0.5), "axis": np.int64(1), "p": True}, [])
    assert params == {"scale": 0.5, "axis": 1, "p": True}
    assert type(params["scale"]) is float and type(params["axis"]) is int
