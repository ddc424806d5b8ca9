"""Enclosing blocks: pairs of whole subtrees for leftovers no finer pairing covers.

Leftover layers with no finer pairing (a paddle MoE holding a list of expert MLPs against a
torch module holding the experts as 3-D tensors) are covered by pairing their closest
enclosing blocks whose subtrees hold equally many parameter elements and whose insides pair
consistently; the block pair is opaque (compared at its top, its weights converted as a whole).

The one-to-one match can cross such a block: a paddle expert's Linear has the shapes of a
torch shared-expert Linear, so the match pairs them, and the smallest consistent block then
is the whole MoE, inside which nothing is paired. :func:`crossed_blocks` finds the balanced
blocks those pairs cross; matching again with both blocks left out pairs the rest (router,
shared expert) by dataflow, and the match that leaves fewer parameter elements without a
fine pair is kept (:func:`open_elements`). A block whose top has no op of its own (a paddle
``LayerList`` is never called) has no output to compare: :func:`compared_parents` proposes
the closest enclosing pair that has one, so its outputs are still compared.

Must not import paddle or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from padiff.graph.proposal import MatchResult, ProposedPair
from padiff.graph.units import LayerInfo
from padiff.names import is_within as _within


def numel(shape: Sequence[int]) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def _ancestors_or_self(path: str) -> list[str]:
    parts = path.split(".") if path else []
    return [".".join(parts[:i]) for i in range(len(parts), -1, -1)]


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def subtree_numel(layers: Mapping[str, LayerInfo], top: str) -> int:
    """Parameter elements of ``top`` and everything under it."""
    return sum(numel(s) for path, info in layers.items() if _within(path, top) for s in info.shapes)


def subtree_sizes(layers: Mapping[str, LayerInfo]) -> dict[str, int]:
    """:func:`subtree_numel` of every layer (and every ancestor of one), in one walk of the table.

    The block searches ask for the size of each ancestor of each leftover against each candidate
    block: asked of the table one at a time that is layers x leftovers x candidates, which at 24
    decoder layers took most of a minute; a path missing here holds 0 elements.
    """
    out: dict[str, int] = {}
    for path, info in layers.items():
        n = sum(numel(s) for s in info.shapes)
        for a in _ancestors_or_self(path):
            out[a] = out.get(a, 0) + n
    return out


@dataclass(frozen=True)
class Block:
    """An opaque block pair covering leftovers: both tops and why."""

    paddle_path: str
    torch_path: str
    evidence: str


def enclosing_blocks(p_left: set[str], t_left: set[str], pairs: Sequence[tuple[str, str]],
                     p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> list[Block]:
    """Closest enclosing block pairs (never the roots) for leftover parameter layers.

    For a leftover paddle layer, its ancestors are tried from the closest; a torch block
    pairs with one when its subtree holds leftover torch layers, every pair already made
    inside either block stays inside both, and both subtrees hold the same number of
    parameter elements. Torch blocks are tried from the smallest.
    """
    out: list[Block] = []
    taken_p: list[str] = []
    taken_t: list[str] = []
    t_tops = sorted({a for t in t_left for a in _ancestors_or_self(t) if a}, key=lambda a: (-a.count("."), a))
    p_size, t_size = subtree_sizes(p_layers), subtree_sizes(t_layers)
    for p in sorted(p_left):
        if any(_within(p, top) for top in taken_p):
            continue
        for a in (x for x in _ancestors_or_self(p) if x):
            size = p_size.get(a, 0)
            inner = [(pp, tp) for pp, tp in pairs if _within(pp, a)]
            fits = [b for b in t_tops if t_size.get(b, 0) == size
                    and not any(_within(b, top) or _within(top, b) for top in taken_t)
                    and any(_within(t, b) for t in t_left)
                    and all(_within(tp, b) for _, tp in inner)
                    and all(_within(pp, a) for pp, tp in pairs if _within(tp, b))]
            hit = _placed(a, fits, pairs)
            if hit is None and len(fits) > 1:
                break  # equal candidates the pairs around do not tell apart (the experts of two layers)
            if hit is not None:
                n_p = sum(1 for x in p_left if _within(x, a))
                n_t = sum(1 for x in t_left if _within(x, hit))
                if n_p == 1 and n_t == 1 and a in p_left and hit in t_left:
                    break  # one layer against one: not a block, the tree fallback pairs it

                out.append(Block(a, hit, f"enclosing blocks of {n_p} paddle and {n_t} torch layers with no finer "
                                         f"pairing; both hold {size} parameter elements; compared at their tops"))
                taken_p.append(a)
                taken_t.append(hit)
                break
    return out




def _seen_left(result: MatchResult, side: str, table: Mapping[str, LayerInfo]) -> set[str]:
    """Unpaired parameter layers of ``side`` the graphs saw (not inside control flow, executed)."""
    return {u.path for u in result.unpaired if u.side == side and u.path in table and table[u.path].shapes
            and u.kind != "unseen"}


def _plain(pairs: Iterable[ProposedPair]) -> list[tuple[str, str]]:
    return [(pr.paddle_path, pr.torch_path) for pr in pairs if not (pr.paddle_parts or pr.torch_parts or pr.opaque)]


def _placed(a: str, fits: Sequence[str], pairs: Sequence[tuple[str, str]], need_anchor: bool = False) -> str | None:
    """The torch block among ``fits`` whose parent receives the most pairs from paddle ``a``'s parent.

    None when two tie at the top (or, with ``need_anchor``, when none receives any): equal
    candidates the pairs around cannot tell apart are not guessed.
    """
    if not fits:
        return None
    score = {b: sum(1 for pp, tp in pairs if _within(pp, _parent(a)) and _within(tp, _parent(b))) for b in fits}
    ranked = sorted(fits, key=lambda b: -score[b])
    if len(ranked) > 1 and score[ranked[1]] == score[ranked[0]]:
        return None
    if need_anchor and score[ranked[0]] == 0:
        return None
    return ranked[0]


def _reached(a: str, b: str, pairs: Sequence[tuple[str, str]]) -> bool:
    """Does some pair join paddle ``a``'s parent with torch ``b``'s parent?"""
    return any(_within(pp, _parent(a)) and _within(tp, _parent(b)) for pp, tp in pairs)


def _anchored_blocks(p_left: set[str], t_left: set[str], pairs: Sequence[tuple[str, str]],
                     p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> list[Block]:
    """Balanced block pairs for leftovers, whatever the pairs inside them say; placed by the pairs around.

    As :func:`enclosing_blocks`, but a pair made inside a block does not rule it out (it may be
    the mistake). Among equally large torch blocks holding leftovers, the one whose parent
    receives the most pairs from the paddle block's parent is taken (the MoE of the same
    decoder layer, not another layer's); none receiving any, none is taken.
    """
    out: list[Block] = []
    t_tops = sorted({a for t in t_left for a in _ancestors_or_self(t) if a}, key=lambda a: (-a.count("."), a))
    p_size, t_size = subtree_sizes(p_layers), subtree_sizes(t_layers)
    for p in sorted(p_left):
        if any(_within(p, b.paddle_path) for b in out):
            continue
        for a in (x for x in _ancestors_or_self(p) if x):
            if any(_within(o.paddle_path, a) for o in out):
                break  # a block found already lies inside: climbing on only gets coarser
            size = p_size.get(a, 0)
            fits = [b for b in t_tops if t_size.get(b, 0) == size and any(_within(t, b) for t in t_left)
                    and not any(_within(b, o.torch_path) or _within(o.torch_path, b) for o in out)]
            best = _placed(a, fits, pairs, need_anchor=True)
            if best is not None:
                out.append(Block(a, best, f"both hold {size} parameter elements and unpaired layers; the pairs "
                                          "around them join their enclosing blocks"))
                break
            if any(_reached(a, b, pairs) for b in fits):
                break  # the pairs around do not tell the candidates apart: no block from here
            # no pair around reaches any of them: equal sizes by chance elsewhere in the model (a paddle expert
            # Linear as large as another layer's key projection), not rivals; the enclosing block may be placed
    return out


def crossed_blocks(result: MatchResult, p_layers: Mapping[str, LayerInfo],
                   t_layers: Mapping[str, LayerInfo]) -> list[Block]:
    """Balanced enclosing blocks of ``result``'s leftovers that some of its one-to-one pairs cross.

    The blocks found when the pairs made inside them do not count (:func:`_anchored_blocks`);
    only those a pair leaves (one end inside a top, the other outside the other top) and that
    the usual pass (:func:`enclosing_blocks`) does not find are returned.
    """
    p_left, t_left = _seen_left(result, "paddle", p_layers), _seen_left(result, "torch", t_layers)
    if not p_left or not t_left:
        return []
    plain = _plain(result.pairs)
    strict = {(b.paddle_path, b.torch_path) for b in enclosing_blocks(p_left, t_left, plain, p_layers, t_layers)}
    out = []
    for b in _anchored_blocks(p_left, t_left, plain, p_layers, t_layers):
        if (b.paddle_path, b.torch_path) in strict:
            continue
        if any(_within(pp, b.paddle_path) != _within(tp, b.torch_path) for pp, tp in plain):
            out.append(b)
    return out


def open_elements(result: MatchResult, p_layers: Mapping[str, LayerInfo]) -> int:
    """Paddle parameter elements no fine pair holds (inside opaque blocks, or unpaired)."""
    fine = {path for pr in result.pairs if not pr.opaque for path in (pr.paddle_parts or (pr.paddle_path,))}
    fine |= {pp.paddle_param.rpartition(".")[0] for pp in result.params}
    return sum(numel(s) for path, info in p_layers.items() if path not in fine for s in info.shapes)


def rematch_crossed(base: MatchResult, result: MatchResult,
                    again: Callable[[frozenset[str], frozenset[str]], MatchResult],
                    p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> MatchResult:
    """``result``, or the match ``again`` gives with the blocks ``base``'s pairs cross left out, if finer.

    ``base`` is the match before fused pairs and blocks, ``result`` after them; ``again(paddle
    paths, torch paths)`` matches once more leaving those layers out of the one-to-one pass
    (they are then paired as blocks). The new match is kept when it leaves fewer paddle
    parameter elements without a fine pair, and its blocks say why they were formed.
    """
    crossed = crossed_blocks(base, p_layers, t_layers)
    if not crossed:
        return result
    skip_p = frozenset(p for p in p_layers if any(_within(p, b.paddle_path) for b in crossed))
    skip_t = frozenset(t for t in t_layers if any(_within(t, b.torch_path) for b in crossed))
    other = again(skip_p, skip_t)
    if open_elements(other, p_layers) >= open_elements(result, p_layers):
        return result
    tops = {(b.paddle_path, b.torch_path) for b in crossed}
    why = ("the one-to-one match had paired layers inside this block with layers outside the other (equal shapes); "
           "matched again with both blocks left out, which pairs more of what surrounds them")
    pairs = [replace(pr, evidence=(*pr.evidence, why)) if (pr.paddle_path, pr.torch_path) in tops else pr
             for pr in other.pairs]
    return MatchResult(pairs, other.unpaired, other.unit_pairs, other.params)


def compared_parents(pairs: Sequence[ProposedPair], p_own: Collection[str], t_own: Collection[str],
                     p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> list[ProposedPair]:
    """Compared pairs of the closest enclosing blocks of opaque pairs whose tops have no op of their own.

    ``p_own``/``t_own``: the layers the graphs hold ops of. A paddle ``LayerList`` of experts
    is never called, so its opaque pair is compared nowhere and a fault in the experts would
    show only further on. Climbing both parents at once (never to the roots), the first pair
    of blocks holding the same parameter elements, with every pair made inside one lying
    inside the other, is proposed as a pair compared at its outputs (no weights of its own:
    the pairs inside it copy them).
    """
    plain = [(pp, tp) for pr in pairs for pp in (pr.paddle_parts or (pr.paddle_path,))
             for tp in (pr.torch_parts or (pr.torch_path,))]
    have = {(pr.paddle_path, pr.torch_path) for pr in pairs}
    p_size, t_size = subtree_sizes(p_layers), subtree_sizes(t_layers)
    out: list[ProposedPair] = []
    for pr in pairs:
        if not pr.opaque or (pr.paddle_path in p_own and pr.torch_path in t_own):
            continue
        a, b = pr.paddle_path.rpartition(".")[0], pr.torch_path.rpartition(".")[0]
        while a and b:
            inside = [(pp, tp) for pp, tp in plain if _within(pp, a) or _within(tp, b)]
            if p_size.get(a, 0) == t_size.get(b, 0) and \
                    all(_within(pp, a) and _within(tp, b) for pp, tp in inside):
                break
            a, b = a.rpartition(".")[0], b.rpartition(".")[0]
        if a and b and (a, b) not in have:
            have.add((a, b))
            side = "paddle" if pr.paddle_path not in p_own else "torch"
            out.append(ProposedPair(a, b, 0.5, (
                f"encloses the block pair {pr.paddle_path} <-> {pr.torch_path}, whose {side} top has no op of its "
                "own (never called), so its outputs are compared here; its pairs inside hold the weights",), True))
    return out


__all__ = ["Block", "compared_parents", "crossed_blocks", "enclosing_blocks", "numel", "open_elements",
           "rematch_crossed", "subtree_numel", "subtree_sizes"]
