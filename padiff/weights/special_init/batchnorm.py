"""BatchNorm: paddle ``_mean``/``_variance`` (non-trainable parameters) ← torch ``running_mean``/``running_var``.

The tensors pair one by one; registering the pair makes the statistics' renaming
explicit and lets a user map a BatchNorm pair in a ``LayerMap``. Registered with
``auto=False``: default pairing handles BatchNorm, so ``LayerMap.auto`` leaves it alone.
"""

from __future__ import annotations

from typing import Any

from padiff.adapters import StateEntry
from padiff.weights.plan import Link, PairPlan
from padiff.weights.special_init._links import check_shapes, copy, fail, state_name

NAMES = (("weight", "weight"), ("bias", "bias"), ("_mean", "running_mean"), ("_variance", "running_var"))
CLASS_PAIRS = (("BatchNorm1D", "BatchNorm1d"), ("BatchNorm2D", "BatchNorm2d"), ("BatchNorm3D", "BatchNorm3d"),
               ("BatchNorm", "BatchNorm1d"), ("BatchNorm", "BatchNorm2d"), ("BatchNorm", "BatchNorm3d"),
               ("SyncBatchNorm", "SyncBatchNorm"))


def plan(p_path: str, p_layer: Any, p_state: list[StateEntry], t_path: str, t_layer: Any,
         t_state: list[StateEntry]) -> PairPlan:
    """Link weight, bias and the running statistics of a BatchNorm pair."""
    def err(reason: str) -> Any:
        return fail(p_path, p_layer, t_path, t_layer, reason)

    links, p_shapes, t_shapes = [], {}, {}
    for p_name, t_name in NAMES:
        p_t, t_t = getattr(p_layer, p_name, None), getattr(t_layer, t_name, None)
        if p_t is None and t_t is None:
            continue
        if t_t is None:
            what = "affine=False" if t_name in ("weight", "bias") else "track_running_stats=False"
            raise err(f"torch has no {t_name} ({what}) but paddle has {p_name}; configure both alike")
        if p_t is None:
            raise err(f"paddle has no {p_name} but torch has {t_name}; configure both alike "
                      "(weight_attr/bias_attr=False in paddle ⇔ affine=False in torch)")
        name = state_name(p_state, p_t, p_name)
        links.append(Link(name, (t_name,), "copy" if p_name == t_name else f"copy ({p_name} <- {t_name})", copy))
        p_shapes[name], t_shapes[t_name] = tuple(p_t.shape), tuple(t_t.shape)
    check_shapes(links, p_shapes, t_shapes, err)
    return PairPlan(p_path, t_path, type(p_layer).__name__, type(t_layer).__name__, links,
                    special=f"{type(p_layer).__name__}<->{type(t_layer).__name__}")


BUILTINS = tuple((p_name, t_name, False) for p_name, t_name in CLASS_PAIRS)  # (paddle, torch, auto)
