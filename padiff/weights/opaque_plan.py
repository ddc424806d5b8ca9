"""The weight plan of an opaque pair: the finer pairs found inside it first, shapes for the rest.

An opaque pair (an enclosing block the aligner pairs as a whole, or a ``map`` entry)
converts its whole subtree's tensors at once. Inferring that conversion from the two
subtrees' tensor lists alone pairs them in definition order, so a torch block whose
children are defined in another order than paddle's (router after experts, shared expert
first) gets the wrong tensors. When the map also pairs layers *inside* both tops (plain
pairs, fused pairs), those pairs decide where their tensors go, whatever the definition
order; only the tensors no inner pair holds are left to the shape inference. The result is
one :class:`PairPlan` over the subtree (tensor names relative to the tops), so the weight
copy, the gradient and weight comparisons and the aligner's trial copies all use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from padiff.adapters import StateEntry, pair_state, subtree_state
from padiff.errors import WeightAssignError
from padiff.names import is_within
from padiff.weights.pair_plan import plan_fused, plan_pair
from padiff.weights.plan import Link, PairPlan
from padiff.weights.special_init import lookup


class InnerPair(Protocol):
    """What a pair inside an opaque block must tell: its paths and, for a fused pair, its parts."""

    paddle_path: str
    torch_path: str
    paddle_parts: tuple[str, ...]
    torch_parts: tuple[str, ...]
    opaque: bool


def _relative(path: str, top: str) -> str:
    if path == top:
        return ""
    return path[len(top) + 1:] if top else path


def _renamer(paths: Sequence[str], top: str) -> Any:
    """Names in a pair's state (own names, or ``layer.path.name`` for several parts) -> names relative to ``top``."""
    def rename(name: str) -> str:
        full = name if len(paths) > 1 else (f"{paths[0]}.{name}" if paths[0] else name)
        return _relative(full, top)
    return rename


def inner_pairs(top_paddle: str, top_torch: str, pairs: Sequence[Any]) -> list[Any]:
    """The non-opaque pairs of ``pairs`` lying wholly inside both tops (never a top itself)."""
    out = []
    for pr in pairs:
        if pr.opaque:
            continue
        p_paths = tuple(pr.paddle_parts) or (pr.paddle_path,)
        t_paths = tuple(pr.torch_parts) or (pr.torch_path,)
        if all(is_within(p, top_paddle) and p != top_paddle for p in p_paths) and \
                all(is_within(t, top_torch) and t != top_torch for t in t_paths):
            out.append(pr)
    return out


def plan_opaque(p_top: str, t_top: str, inner: Sequence[InnerPair], p_layers: Mapping[str, Any],
                p_owned: Mapping[str, list[StateEntry]], t_layers: Mapping[str, Any],
                t_owned: Mapping[str, list[StateEntry]]) -> PairPlan:
    """One plan for the subtrees at ``p_top``/``t_top``: ``inner`` pairs' own plans, then the leftovers.

    ``inner`` are pairs inside both tops (see :func:`inner_pairs`); each is planned as it
    would be alone (plain or fused), its tensor names made relative to the tops. The
    tensors none of them holds are planned together from their shapes. A pair inside with
    a user special init (which works on layer objects) is left to the leftovers. Raises
    :class:`WeightAssignError` (from the planners) when a part does not fit.
    """
    if not inner or lookup(p_layers[p_top], t_layers[t_top]) is not None:  # a special init knows the whole block
        return plan_pair(p_top, p_layers[p_top], subtree_state(p_owned, p_top),
                         t_top, t_layers[t_top], subtree_state(t_owned, t_top))
    links: list[Link] = []
    held_p: set[str] = set()
    held_t: set[str] = set()
    for pr in inner:
        p_paths = tuple(pr.paddle_parts) or (pr.paddle_path,)
        t_paths = tuple(pr.torch_parts) or (pr.torch_path,)
        p_state, t_state = pair_state(p_owned, p_paths, False), pair_state(t_owned, t_paths, False)
        if not (p_state or t_state):
            continue
        if pr.paddle_parts or pr.torch_parts:
            plan = plan_fused(pr, p_layers, p_state, t_layers, t_state)
        else:
            plan = plan_pair(pr.paddle_path, p_layers[pr.paddle_path], p_state,
                             pr.torch_path, t_layers[pr.torch_path], t_state)
        if plan.layer_init is not None:
            continue
        p_name, t_name = _renamer(p_paths, p_top), _renamer(t_paths, t_top)
        for lk in plan.links:
            links.append(Link(p_name(lk.paddle_name), tuple(t_name(n) for n in lk.torch_names), lk.conversion, lk.fn))
        held_p |= {p_name(e.name) for e in p_state}
        held_t |= {t_name(e.name) for e in t_state}
    p_rest = [e for e in subtree_state(p_owned, p_top) if e.name not in held_p]
    t_rest = [e for e in subtree_state(t_owned, t_top) if e.name not in held_t]
    if p_rest or t_rest:
        try:
            rest = plan_pair(p_top, p_layers[p_top], p_rest, t_top, t_layers[t_top], t_rest)
        except WeightAssignError as e:  # say which tensors were left to the shapes
            if isinstance(getattr(e, "reason", None), str):
                e.reason += f" (these are the tensors none of the {len(inner)} pair(s) inside the block holds)"
            raise
        links += rest.links
    return PairPlan(p_top, t_top, type(p_layers[p_top]).__name__, type(t_layers[t_top]).__name__, links)


__all__ = ["InnerPair", "inner_pairs", "plan_opaque"]
