"""Shared helpers for the reliability tests: tiny model pairs, weight copy, user-state capture.

Weights are copied here, by hand, from torch to paddle (parameters in definition order,
2-D weights transposed when that is what makes the shapes fit), so these tests do not
depend on ``auto_weights`` / ``assign_weight``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import paddle
import torch


def rand(*shape: int, seed: int = 0, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def pair_inputs(**arrays: np.ndarray) -> tuple[dict, dict]:
    """``example_inp`` with the same keys on both sides."""
    return ({k: paddle.to_tensor(a) for k, a in arrays.items()},
            {k: torch.tensor(a) for k, a in arrays.items()})


def copy_weights(layer: paddle.nn.Layer, module: torch.nn.Module) -> None:
    """Copy torch parameters and float buffers into paddle, in definition order.

    A paddle ``Linear`` weight is ``[in, out]``, torch's ``[out, in]``: it is transposed.
    """
    p_layers = dict(layer.named_sublayers(include_self=True))
    p_state = [(n, v) for n, v in layer.state_dict().items() if "float" in str(v.dtype)]
    t_state = [v for v in module.state_dict().values() if v.is_floating_point()]
    assert len(p_state) == len(t_state), (len(p_state), len(t_state))
    for (name, p), t in zip(p_state, t_state):
        arr = t.detach().float().numpy() if t.dtype in (torch.float16, torch.bfloat16) else t.detach().numpy()
        owner, _, leaf = name.rpartition(".")
        if isinstance(p_layers.get(owner), paddle.nn.Linear) and leaf == "weight":
            arr = arr.T
        assert tuple(p.shape) == arr.shape, (name, p.shape, arr.shape)
        p.set_value(paddle.to_tensor(np.ascontiguousarray(arr)).astype(p.dtype))


# --- the small pair most tests use -------------------------------------------------------
class PNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = paddle.nn.Linear(4, 6)
        self.fc2 = paddle.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(paddle.tanh(self.fc1(x)))


class TNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 6)
        self.fc2 = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def net_pair(seed: int = 0) -> tuple[PNet, TNet, tuple[dict, dict]]:
    torch.manual_seed(seed)
    layer, module = PNet(), TNet()
    copy_weights(layer, module)
    return layer, module, pair_inputs(x=rand(3, 4, seed=seed))


# --- what a user owns ----------------------------------------------------------------------
def user_state(layer: Any, module: Any, example_inp: Any = None) -> dict[str, Any]:
    """Everything padiff must leave as it found it: hooks, modes, flags, grads, values, inputs."""
    from padiff.adapters import PADDLE, TORCH

    out: dict[str, Any] = {
        "global.grad_enabled": (torch.is_grad_enabled(), paddle.is_grad_enabled()),
        "global.default_dtype": (torch.get_default_dtype(), paddle.get_default_dtype()),
    }
    for side, root in ((PADDLE, layer), (TORCH, module)):
        if not side.is_model(root):
            continue
        out[f"{side.name}.hooks"] = side.hook_count(root)
        if side is TORCH:
            out["torch.backward_hooks"] = sum(len(m._backward_hooks) + len(m._backward_pre_hooks)
                                              for m in root.modules())
        out[f"{side.name}.modes"] = [(p, side.is_training(m)) for p, m in side.named_layers(root)]
        for p, es in side.owned_state(root).items():
            for e in es:
                key = f"{side.name}.{p}.{e.name}"
                out[key + ".value"] = side.to_numpy(e.tensor).tolist()
                if not e.is_buffer:
                    out[key + ".flag"] = side.requires_grad(e.tensor)
                    g = side.grad(e.tensor)
                    out[key + ".grad"] = None if g is None else side.to_numpy(g).tolist()
    if example_inp is not None:
        for side, half in zip((PADDLE, TORCH), example_inp):
            if not isinstance(half, dict):
                continue
            out[f"{side.name}.input_keys"] = list(half)
            for k, v in half.items():
                if side.is_tensor(v):
                    out[f"{side.name}.input.{k}"] = (side.requires_grad(v), side.to_numpy(v).tolist(),
                                                     None if side.grad(v) is None else side.to_numpy(side.grad(v))
                                                     .tolist())
    return out


def assert_same_state(before: dict[str, Any], after: dict[str, Any], *, except_values: bool = False,
                      except_grads: bool = False) -> None:
    """Every key of ``before`` equal in ``after`` (values/grads optionally excused), with a readable diff."""
    diffs = []
    for key, val in before.items():
        if except_values and key.endswith(".value"):
            continue
        if except_grads and key.endswith(".grad"):
            continue
        if after.get(key) != val:
            diffs.append(key)
    assert not diffs, f"padiff changed the user's {diffs[:8]}"


def cwd_listing() -> set[str]:
    return set(os.listdir(os.getcwd()))
