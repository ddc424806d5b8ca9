"""Parameter-free pairs must sit in corresponding blocks, not only between agreeing neighbours.

A parameter-free layer (an activation, a dropout) carries no identity of its own: the graph
pairs it by its neighbours. "2/2 graph neighbours agree" is not enough when the partner lives
in another block of the model (a module of block 1 called from block 0, an op attributed to the
wrong layer): the engine compares it where it is called, and correct weights then fail on
equivalent models. The block a layer belongs to is known from the parameter pairs around it:
the nearest enclosing block holding paired layers with parameters names, through their
partners, the block its partner must be in.

:func:`crossed_free_pairs` checks it both ways (paddle block -> torch block, torch block ->
paddle block) and objects only when both fail, so a port that nests the activation one level
higher or lower on one side (``h.0.act`` against ``layers.0.mlp.act``) is not flagged. Pure
function of the pairs: no framework.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from padiff.graph.proposal import ProposedPair
from padiff.names import common_container, is_within


def _partner_block(path: str, anchors: Sequence[tuple[str, str]]) -> str | None:
    """The block on the other side that the block around ``path`` pairs with (None: no anchor around it).

    ``anchors`` are ``(this side, other side)`` paths of parameter pairs. Walks out from the
    layer's parent to the first block holding an anchor; the anchors' partners' deepest common
    block is the answer (the partner's own parent when there is one anchor).
    """
    parts = path.split(".")
    for n in range(len(parts) - 1, -1, -1):
        block = ".".join(parts[:n])
        inside = [other for mine, other in anchors if mine != path and is_within(mine, block)]
        if inside:
            return common_container(inside, own=True) if len(inside) > 1 else inside[0].rpartition(".")[0]
    return None


def crossed_free_pairs(pairs: Sequence[ProposedPair], free: Collection[str]) -> dict[str, str]:
    """``{paddle path: reason}`` for parameter-free pairs (paddle paths in ``free``) whose partner is in another block.

    Anchors are the other pairs of the proposal that are not parameter-free, one-to-one and
    not opaque.
    """
    anchors = [(p.paddle_path, p.torch_path) for p in pairs
               if p.paddle_path not in free and not p.opaque and not p.paddle_parts and not p.torch_parts]
    back = [(t, p) for p, t in anchors]
    out: dict[str, str] = {}
    for pair in pairs:
        if pair.paddle_path not in free:
            continue
        t_block = _partner_block(pair.paddle_path, anchors)
        p_block = _partner_block(pair.torch_path, back)
        if t_block is None or p_block is None:
            continue  # nothing around it says where it belongs
        if is_within(pair.torch_path, t_block) or is_within(pair.paddle_path, p_block):
            continue
        out[pair.paddle_path] = (f"parameter-free: the graph places paddle {pair.paddle_path!r} against torch "
                                 f"{pair.torch_path!r}, but the torch layer lies outside torch {t_block or '<root>'!r} "
                                 "(the block paired with the layers around the paddle one) and the paddle layer "
                                 f"outside paddle {p_block or '<root>'!r} (likewise): neighbours alone do not place "
                                 "them together, so they are not paired")
    return out
