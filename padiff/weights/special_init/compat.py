"""``paddle.compat.nn.MultiheadAttention`` ↔ torch's ``MultiheadAttention``: the same tensors, copied by name.

PaConvert writes paddle's torch-compatible attention for every ``torch.nn.MultiheadAttention``.
It holds what torch's holds, in torch's layout: the packed ``in_proj_weight`` ``[3E, E]`` and
``in_proj_bias`` (or ``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` when ``kdim``/``vdim``
differ), ``bias_k``/``bias_v`` when asked for, and an ``out_proj`` ``[out, in]`` Linear
(:mod:`padiff.weights.layouts`). Registered as a special init so the layer pairs with torch's as one
unit (torch's counts as one); every tensor is a copy link, so gradients compare the same way.
"""

from __future__ import annotations

from typing import Any

from padiff.adapters import StateEntry
from padiff.weights.plan import Link, PairPlan
from padiff.weights.special_init._links import copy, fail


def plan(p_path: str, p_layer: Any, p_state: list[StateEntry], t_path: str, t_layer: Any,
         t_state: list[StateEntry]) -> PairPlan:
    """One copy link per tensor, by name; refused when the names or shapes differ."""
    t_shapes = {e.name: tuple(e.tensor.shape) for e in t_state}
    p_shapes = {e.name: tuple(e.tensor.shape) for e in p_state}
    if set(p_shapes) != set(t_shapes):
        raise fail(p_path, p_layer, t_path, t_layer,
                   f"the two attentions hold different tensors (paddle {sorted(p_shapes)}, torch {sorted(t_shapes)}):"
                   " build them with the same arguments (kdim, vdim, bias, add_bias_kv)")
    links = []
    for name, shape in p_shapes.items():
        if t_shapes[name] != shape:
            raise fail(p_path, p_layer, t_path, t_layer,
                       f"{name} is {list(shape)} in paddle but {list(t_shapes[name])} in torch")
        links.append(Link(name, (name,), "copy", copy))
    return PairPlan(p_path, t_path, type(p_layer).__name__, type(t_layer).__name__, links,
                    special="compat.nn.MultiheadAttention<->MultiheadAttention")


BUILTINS = (("compat.nn.MultiheadAttention", "MultiheadAttention", True),)  # (paddle class, torch class, auto)
