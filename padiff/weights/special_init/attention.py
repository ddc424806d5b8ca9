"""``MultiHeadAttention`` (paddle) ↔ ``MultiheadAttention`` (torch).

Paddle holds four ``Linear`` sublayers ``q_proj``/``k_proj``/``v_proj``/``out_proj`` with
``[in, out]`` weights. Torch packs the input projections into ``in_proj_weight``
``[3E, E]`` and ``in_proj_bias`` ``[3E]`` when ``kdim == vdim == embed_dim``, and
otherwise keeps ``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` (``[E, kdim]``...)
with the packed ``in_proj_bias`` still; ``out_proj`` is a Linear. Every paddle tensor is a
link (rows of the packed tensor, transposed), so gradients convert the same way.
"""

from __future__ import annotations

from typing import Any

from padiff.adapters import StateEntry
from padiff.weights.plan import Link, PairPlan
from padiff.weights.special_init._links import check_shapes, copy, fail, rows, state_name, transpose


def plan(p_path: str, p_layer: Any, p_state: list[StateEntry], t_path: str, t_layer: Any,
         t_state: list[StateEntry]) -> PairPlan:
    """Links for q/k/v/out projections of an attention pair."""
    def err(reason: str) -> Any:
        return fail(p_path, p_layer, t_path, t_layer, reason)

    if getattr(t_layer, "bias_k", None) is not None or getattr(t_layer, "bias_v", None) is not None:
        raise err("torch uses add_bias_kv=True, which paddle's MultiHeadAttention has no counterpart for")
    e = int(t_layer.embed_dim)
    if int(p_layer.embed_dim) != e:
        raise err(f"embed_dim differs: paddle {p_layer.embed_dim}, torch {e}")
    if int(p_layer.num_heads) != int(t_layer.num_heads):
        raise err(f"num_heads differs: paddle {p_layer.num_heads}, torch {t_layer.num_heads}")
    links: list[Any] = []
    p_shapes: dict[str, tuple[int, ...]] = {}
    t_shapes = {n: tuple(p.shape) for n, p in t_layer.named_parameters()}
    packed = getattr(t_layer, "in_proj_weight", None) is not None

    def add(p_tensor: Any, fallback: str, t_name: str, conversion: str, fn: Any) -> None:
        name = state_name(p_state, p_tensor, fallback)
        links.append(Link(name, (t_name,), conversion, fn))
        p_shapes[name] = tuple(p_tensor.shape)

    for i, which in enumerate(("q", "k", "v")):
        proj = getattr(p_layer, f"{which}_proj")
        if packed:
            add(proj.weight, f"{which}_proj.weight", "in_proj_weight",
                f"special: rows {i * e}:{(i + 1) * e} of in_proj_weight, transposed", rows(i * e, (i + 1) * e, True))
        else:
            add(proj.weight, f"{which}_proj.weight", f"{which}_proj_weight",
                f"special: {which}_proj_weight transposed", transpose)
        has_t_bias = getattr(t_layer, "in_proj_bias", None) is not None
        if (proj.bias is not None) != has_t_bias:
            raise err("one side has input-projection biases and the other not "
                      "(bias=False in torch ⇔ bias_attr=False in paddle)")
        if has_t_bias:
            add(proj.bias, f"{which}_proj.bias", "in_proj_bias",
                f"special: items {i * e}:{(i + 1) * e} of in_proj_bias", rows(i * e, (i + 1) * e, False))
    out_p, out_t = p_layer.out_proj, t_layer.out_proj
    add(out_p.weight, "out_proj.weight", "out_proj.weight", "transpose (Linear layout)", transpose)
    if (out_p.bias is not None) != (out_t.bias is not None):
        raise err("one side has an out_proj bias and the other not")
    if out_p.bias is not None:
        add(out_p.bias, "out_proj.bias", "out_proj.bias", "copy", copy)
    check_shapes(links, p_shapes, t_shapes, err)
    return PairPlan(p_path, t_path, type(p_layer).__name__, type(t_layer).__name__, links,
                    special="MultiHeadAttention<->MultiheadAttention")


BUILTINS = (("MultiHeadAttention", "MultiheadAttention", True),)  # (paddle class, torch class, auto)
