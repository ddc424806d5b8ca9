"""Recurrent layers: paddle ``LSTM``/``GRU``/``SimpleRNN`` ↔ torch ``LSTM``/``GRU``/``RNN``.

Both frameworks use the same gate order (LSTM ``i, f, g, o``; GRU ``r, z, n``, checked
numerically in the tests) and the same per-layer shapes, so the weights copy as they
are. The work is naming: torch keeps ``weight_ih_l{k}[_reverse]``...; paddle 3.x keeps
the parameters in its cells (``{k}.cell`` or ``{k}.cell_fw``/``{k}.cell_bw``) and also
exposes them at the top level under names that are wrong in some configurations (with
``proj_size``, or with ``bias_ih_attr=False``). So the cells are the source of truth and
each cell tensor is found in the paired state by identity. LSTM projections:
paddle ``weight_ho`` ``[hidden, proj]`` ← torch ``weight_hr_l{k}`` ``[proj, hidden]``
transposed. Assigning with ``set_value`` keeps paddle's flattened weight buffer in sync
(the tests run forward and backward after assignment to check it).
"""

from __future__ import annotations

from typing import Any

from padiff.adapters import PADDLE, StateEntry
from padiff.weights.plan import Link, PairPlan
from padiff.weights.special_init._links import check_shapes, copy, fail, state_name, transpose

PAIRS = (("LSTM", "LSTM"), ("GRU", "GRU"), ("SimpleRNN", "RNN"))
CELL_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _cells(p_layer: Any) -> list[tuple[int, str, str, Any]]:
    """``(layer index, torch suffix, paddle relative path, cell)`` for every cell of a paddle RNN."""
    out = []
    for k, (name, sub) in enumerate(p_layer.named_children()):
        if hasattr(sub, "cell_fw"):
            out.append((k, "", f"{name}.cell_fw", sub.cell_fw))
            out.append((k, "_reverse", f"{name}.cell_bw", sub.cell_bw))
        elif hasattr(sub, "cell"):
            out.append((k, "", f"{name}.cell", sub.cell))
    return out


def plan(p_path: str, p_layer: Any, p_state: list[StateEntry], t_path: str, t_layer: Any,
         t_state: list[StateEntry]) -> PairPlan:
    """Link every cell tensor of a paddle RNN to the torch tensor of the same layer and direction."""
    def err(reason: str) -> Any:
        return fail(p_path, p_layer, t_path, t_layer, reason)

    p_dirs = 2 if getattr(p_layer, "num_directions", 1) == 2 else 1
    t_dirs = 2 if getattr(t_layer, "bidirectional", False) else 1
    if p_dirs != t_dirs:
        raise err(f"paddle is {'bidirectional' if p_dirs == 2 else 'forward only'}, torch is "
                  f"{'bidirectional' if t_dirs == 2 else 'forward only'} (direction='bidirect' ⇔ bidirectional=True)")
    if int(p_layer.num_layers) != int(t_layer.num_layers):
        raise err(f"num_layers differs: paddle {p_layer.num_layers}, torch {t_layer.num_layers}")
    for attr in ("input_size", "hidden_size"):
        p_val, t_val = getattr(p_layer, attr, None), getattr(t_layer, attr, None)
        if p_val is not None and t_val is not None and int(p_val) != int(t_val):
            raise err(f"{attr} differs: paddle {p_val}, torch {t_val}")
    p_proj, t_proj = int(getattr(p_layer, "proj_size", 0) or 0), int(getattr(t_layer, "proj_size", 0) or 0)
    if p_proj != t_proj:
        raise err(f"proj_size differs: paddle {p_proj}, torch {t_proj}")
    t_params = dict(t_layer.named_parameters())
    t_shapes = {n: tuple(p.shape) for n, p in t_params.items()}
    links: list[Any] = []
    p_shapes: dict[str, tuple[int, ...]] = {}
    for k, sfx, rel, cell in _cells(p_layer):
        for base in CELL_NAMES:
            p_t = getattr(cell, base, None)
            t_name = f"{base}_l{k}{sfx}"
            if t_name not in t_params:
                if p_t is not None and PADDLE.requires_grad(p_t):
                    raise err(f"torch has no {t_name} (bias=False) but paddle's {rel}.{base} is trainable; "
                              "create the paddle layer with bias_ih_attr=False, bias_hh_attr=False")
                continue  # paddle's fixed zero bias matches torch's absent one
            if p_t is None:
                raise err(f"paddle {rel} has no {base} but torch has {t_name}")
            if not PADDLE.requires_grad(p_t) and base.startswith("bias"):
                raise err(f"paddle's {rel}.{base} is a fixed zero (bias_*_attr=False) but torch has {t_name}")
            name = state_name(p_state, p_t, f"{rel}.{base}")
            links.append(Link(name, (t_name,), "copy", copy))
            p_shapes[name] = tuple(p_t.shape)
        if p_proj:
            name = state_name(p_state, cell.weight_ho, f"{rel}.weight_ho")
            links.append(Link(name, (f"weight_hr_l{k}{sfx}",), "special: weight_hr transposed", transpose))
            p_shapes[name] = tuple(cell.weight_ho.shape)
    check_shapes(links, p_shapes, t_shapes, err)
    return PairPlan(p_path, t_path, type(p_layer).__name__, type(t_layer).__name__, links,
                    special=f"{type(p_layer).__name__}<->{type(t_layer).__name__}")


BUILTINS = tuple((p_name, t_name, True) for p_name, t_name in PAIRS)  # (paddle, torch, auto)
