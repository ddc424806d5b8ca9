"""Special-init units in the proposal: MultiHeadAttention, LSTM ... paired by dataflow.

A layer with a registered special init (paddle ``MultiHeadAttention`` against torch
``MultiheadAttention``) copies its weights as a whole, so the proposal pairs it as one opaque
unit. Which torch unit goes with which paddle unit is read from the pairs the match already
made inside them (a decoder's self- and cross-attention are told apart by what their
projections read and feed), not from "the k-th of a kind": a torch port that defines
cross-attention first must not swap them. Only units with no pair inside them at all fall
back to definition order among what is left of their kind, with a low confidence that says so.

Pure Python: the caller says which paths are special units and which pairs of them are
compatible (have a special init).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from padiff.graph.match import Left, MatchResult, ProposedPair
from padiff.names import is_within


def _outermost(paths: Sequence[str]) -> list[str]:
    return [p for p in paths if not any(q != p and is_within(p, q) for q in paths)]


def _paths(pr: ProposedPair, side: str) -> tuple[str, ...]:
    if side == "paddle":
        return pr.paddle_parts or (pr.paddle_path,)
    return pr.torch_parts or (pr.torch_path,)


def pair_special_units(result: MatchResult, p_special: Sequence[str], t_special: Sequence[str],
                       compatible: Callable[[str, str], bool]) -> MatchResult:
    """``result`` with every special unit paired as one opaque pair, chosen by the pairs inside them.

    ``p_special``/``t_special`` are the special-unit paths in definition order; the root is
    never a unit here. Pairs inside a paired unit are replaced by the unit pair; the layers
    inside it leave the unpaired list.
    """
    p_units = _outermost([p for p in p_special if p])
    t_units = _outermost([t for t in t_special if t])
    if not p_units or not t_units:
        return result
    votes: Counter[tuple[str, str]] = Counter()
    for pr in result.pairs:
        for s in p_units:
            if not any(is_within(p, s) for p in _paths(pr, "paddle")):
                continue
            for t in t_units:
                if any(is_within(x, t) for x in _paths(pr, "torch")):
                    votes[(s, t)] += 1
    chosen: list[tuple[str, str, float, str]] = []
    used_p: set[str] = set()
    used_t: set[str] = set()
    for (s, t), n in sorted(votes.items(), key=lambda kv: (-kv[1], p_units.index(kv[0][0]))):
        if s in used_p or t in used_t or not compatible(s, t):
            continue
        total = sum(v for (s2, _), v in votes.items() if s2 == s)
        chosen.append((s, t, round(0.6 + 0.4 * n / total, 3),
                       f"special-init unit: {n}/{total} pairs inside it lead to this torch unit (dataflow)"))
        used_p.add(s)
        used_t.add(t)
    for s in p_units:
        if s in used_p or any(vs == s for vs, _ in votes):
            continue  # a unit whose insides point elsewhere is left as the match has it
        t = next((t for t in t_units if t not in used_t and not any(vt == t for _, vt in votes)
                  and compatible(s, t)), None)
        if t is not None:
            chosen.append((s, t, 0.3, "special-init unit: no pair inside it to follow; paired in definition "
                                      "order among the units of its kind left (check it)"))
            used_p.add(s)
            used_t.add(t)
    if not chosen:
        return result
    pairs = [pr for pr in result.pairs
             if not any(is_within(p, s) for s, _, _, _ in chosen for p in _paths(pr, "paddle"))
             and not any(is_within(x, t) for _, t, _, _ in chosen for x in _paths(pr, "torch"))]
    pairs += [ProposedPair(s, t, conf, (ev,), True, opaque=True) for s, t, conf, ev in chosen]
    unpaired: list[Left] = [u for u in result.unpaired
                            if not any(is_within(u.path, s if u.side == "paddle" else t) for s, t, _, _ in chosen)]
    return MatchResult(pairs, unpaired, result.unit_pairs, result.params)
