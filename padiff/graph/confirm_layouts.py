"""The layouts of fused pairs at scale: each settled on its own block, once per distinct block.

A fused pair (paddle's ``qkv_proj`` against torch's ``q_proj``/``k_proj``/``v_proj``) has a few
candidate layouts (orders of the parts x interleavings). Running the whole model once per layout
made confirmation cost ``layouts x fused pairs x model``: quadratic in depth for a decoder, whose
every layer holds such pairs. Instead:

1. A layout is scored by re-running only the smallest block enclosing the pair (its attention
   or MLP module) on the input that block received in the last recorded paddle forward, against
   the output the enclosing torch block gave in the one torch recording
   (:meth:`padiff.graph.confirm_trial.Trial.block_error`; the whole model only when the block
   cannot be re-run that way).
2. Pairs whose enclosing blocks are structurally identical (:func:`layout_signature`: the blocks'
   classes, every sublayer's relative path, class and tensor shapes, the pair's relative parts)
   are repeats: the first one is searched, each repeat takes its layout and is checked by one run
   of its own block on freshly recorded inputs. A repeat that does not agree then is searched
   like a first one. So the cost grows with the number of distinct blocks, not with depth times
   layouts.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from padiff.graph.confirm_local import EQUAL, GUESS, MAX_FUSED_RUNS, _parts_of, _with_order
from padiff.graph.match import LayerInfo, ProposedPair
from padiff.names import common_container

REPEAT_SLACK = 0.1  # a repeat agrees when its error is within this fraction of the gap best -> next best


def blocks_of(pair: ProposedPair) -> tuple[str, str]:
    """The paddle and torch blocks enclosing a fused pair (its parts and its single layer)."""
    p_paths, t_paths = (pair.paddle_path, *pair.paddle_parts), (pair.torch_path, *pair.torch_parts)
    return common_container([p for p in p_paths if p]), common_container([t for t in t_paths if t])


def _rel(path: str, block: str) -> str:
    if path == block:
        return ""
    return path[len(block) + 1:] if block and path.startswith(block + ".") else path


def _subtree(block: str, layers: Mapping[str, LayerInfo]) -> tuple:
    """Classes and tensor shapes of ``block`` and everything under it, by relative path."""
    return tuple((_rel(p, block), info.cls, info.shapes) for p, info in layers.items()
                 if p == block or p.startswith(block + ".") or not block)


def layout_signature(pair: ProposedPair, p_layers: Mapping[str, LayerInfo],
                     t_layers: Mapping[str, LayerInfo]) -> tuple | None:
    """What makes two fused pairs structurally the same: equal enclosing blocks, equal relative parts.

    None for a pair at the root (nothing to repeat)."""
    p_block, t_block = blocks_of(pair)
    if not p_block or not t_block:
        return None
    return (_subtree(p_block, p_layers), _subtree(t_block, t_layers), _rel(pair.paddle_path, p_block),
            _rel(pair.torch_path, t_block), tuple(_rel(x, p_block) for x in pair.paddle_parts),
            tuple(_rel(x, t_block) for x in pair.torch_parts))


def _moved(order: tuple[str, ...], src: ProposedPair, dst: ProposedPair) -> tuple[str, ...]:
    """``order`` (parts of ``src``) as the corresponding parts of ``dst``."""
    (sp, st), (dp, dt) = blocks_of(src), blocks_of(dst)
    src_block, dst_block = (sp, dp) if src.paddle_parts else (st, dt)
    return tuple(f"{dst_block}.{_rel(x, src_block)}" if dst_block else _rel(x, src_block) for x in order)


class _Recording:
    """Keeps the paddle recording fresh: re-recorded when a layout or pair changed since the last forward."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.seen: tuple | None = None

    def state(self) -> tuple:
        t = self.trial
        return (tuple(sorted(t.orders.items())), tuple(sorted(t.grouping.items())), tuple(sorted(t.current.items())))

    def fresh(self) -> None:
        if self.seen != self.state():
            self.trial.forward()
            self.seen = self.state()


def _error(trial: Any, pair: ProposedPair, calls: list[tuple]) -> float:
    p_block, t_block = blocks_of(pair)
    # a tie beside the pair not settled yet (crossed norms of other shapes) says nothing of its layout
    return float(trial.block_error(p_block, t_block, calls, finite=True))


def settle_orders(trial: Any, fused: list[int], updated: dict[str, ProposedPair], notes: list[str],
                  p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> None:
    """The order and interleaving of each uncertain fused pair's parts (see the module docstring).

    Within :data:`MAX_FUSED_RUNS` block runs for the searched pairs; a pair with more layouts is
    left as proposed, with a note.
    """
    from padiff.graph.confirm_trial import fits
    from padiff.graph.fused import layout_groups

    rec = _Recording(trial)
    runs = 0
    first: dict[tuple, tuple[int, float, float]] = {}  # signature -> (pair index, best error, next best)
    repeats: list[tuple[int, int]] = []

    def search(i: int) -> tuple[float, float] | None:
        nonlocal runs
        pr = trial.result.pairs[i]
        layouts = [(perm, g) for g in layout_groups(pr, p_layers, t_layers)
                   for perm in itertools.permutations(_parts_of(pr))
                   if fits(trial, _with_order(pr, perm, g))]
        if not layouts or runs + len(layouts) > MAX_FUSED_RUNS:
            why = (f"order of the parts of {pr.paddle_path} <-> {pr.torch_path} not settled: {len(layouts)} layouts "
                   "(orders x interleavings) " + ("exceed the numeric budget" if layouts else "fit its weights")
                   + "; check it by hand")
            notes.append(why)
            updated[pr.paddle_path] = replace(pr, evidence=(*pr.evidence, f"a guess: {why}"), uncertain=True,
                                              confidence=min(pr.confidence, GUESS))
            return None
        rec.fresh()  # the block's input as the pairs settled so far give it
        calls = list(trial.last_args.get(blocks_of(pr)[0], []))
        scored = []
        for perm, g in layouts:
            trial.orders[i], trial.grouping[i] = perm, g
            trial.copy_fixed([pr])
            scored.append((_error(trial, pr, calls), perm, g))
            runs += 1
        scored.sort(key=lambda s: s[0])
        (best_err, best, best_g), second, how, used = _untie(trial, i, pr, scored)
        runs += used
        if used:
            rec.seen = None  # the recording now holds the other input's block inputs
        trial.orders[i], trial.grouping[i] = best, best_g
        trial.copy_fixed([pr])
        _verdict(pr, best, best_g, best_err, second, how, updated, notes)
        return best_err, second

    for i in fused:
        sig = layout_signature(trial.result.pairs[i], p_layers, t_layers)
        if sig is not None and sig in first:
            repeats.append((i, first[sig][0]))
            continue
        got = search(i)
        if got is not None and sig is not None:
            first[sig] = (i, *got)
    if not repeats:
        return
    by_index = {v[0]: v for v in first.values()}
    for i, j in repeats:  # every repeat takes its first's layout, then one recording checks them all
        src, dst = trial.result.pairs[j], trial.result.pairs[i]
        trial.orders[i], trial.grouping[i] = _moved(trial.orders[j], src, dst), trial.grouping[j]
        if fits(trial, _with_order(dst, trial.orders[i], trial.grouping[i])):
            trial.copy_fixed([dst])
    rec.fresh()
    alike = 0
    for i, j in repeats:
        src, dst = trial.result.pairs[j], trial.result.pairs[i]
        _, best_err, second = by_index[j]
        order, g = trial.orders[i], trial.grouping[i]
        ok = fits(trial, _with_order(dst, order, g))
        err = _error(trial, dst, list(trial.last_args.get(blocks_of(dst)[0], []))) if ok else float("inf")
        decisive = second - best_err > EQUAL * max(1.0, best_err)
        if ok and (not decisive or err <= best_err + REPEAT_SLACK * (second - best_err)):
            how = (f"as settled for {src.paddle_path} <-> {src.torch_path}, whose block is structurally identical; "
                   f"this block's output error {err:.2e}")
            _verdict(dst, order, g, err, second if decisive else err, how, updated, notes, quiet=True)
            alike += 1
        else:
            search(i)  # not alike after all: searched on its own
    if alike:
        notes.append(repeats_note(alike, len(first)))


Scored = tuple[float, tuple[str, ...], int]  # (block output error, order of the parts, interleaving groups)


def _untie(trial: Any, i: int, pr: ProposedPair, scored: list[Scored]) -> tuple[Scored, float, str, int]:
    """The best layout and the next one's error, with the layouts the example ties scored again elsewhere.

    Returns ``(best, next error, how it was decided ("" on the example), block runs spent)``.
    """
    best, second = scored[0], (scored[1][0] if len(scored) > 1 else float("inf"))
    if second - best[0] > EQUAL * max(1.0, best[0]):
        return best, second, "", 0
    tied = [(perm, g) for err, perm, g in scored if err - best[0] <= EQUAL * max(1.0, best[0])]
    again = sorted(_on_separating_input(trial, i, pr, tied), key=lambda s: s[0])
    if not again:
        return best, second, "", 0
    second = again[1][0] if len(again) > 1 else float("inf")
    how = (f"on a random input of the example's shapes ({len(tied)} layouts tied on the example): block output "
           f"error {again[0][0]:.2e} vs {second:.2e} for the next order")
    return again[0], second, how, len(again)


def _on_separating_input(trial: Any, i: int, pr: ProposedPair,
                         tied: list[tuple[tuple[str, ...], int]]) -> list[tuple[float, tuple[str, ...], int]]:
    """The tied layouts scored again, each on its block, on a random input of the example's shapes.

    Empty when fewer than two tie or no such input can be made (:func:`padiff.graph.separating.separating_input`).
    """
    from padiff.graph.separating import separating_input

    inp = separating_input(trial.inp) if len(tied) > 1 else None
    if inp is None:
        return []
    out = []
    with trial.other_input(inp):
        trial.forward()
        calls = list(trial.last_args.get(blocks_of(pr)[0], []))
        for perm, g in tied:
            trial.orders[i], trial.grouping[i] = perm, g
            trial.copy_fixed([pr])
            out.append((_error(trial, pr, calls), perm, g))
    return out


def _verdict(pr: ProposedPair, best: tuple[str, ...], g: int, best_err: float, second: float, how: str,
             updated: dict[str, ProposedPair], notes: list[str], quiet: bool = False) -> None:
    decisive = second - best_err > EQUAL * max(1.0, best_err)
    label = " + ".join(best) + (f" interleaved in {g} groups" if g > 1 else "")
    ev = tuple(e for e in pr.evidence if not e.startswith("order of the parts"))
    if decisive:
        ev += (f"order of the parts {label} settled numerically: " + (how or f"output error {best_err:.2e} vs "
                                                                          f"{second:.2e} for the next order"),)
        updated[pr.paddle_path] = replace(_with_order(pr, best, g), evidence=ev, uncertain=False,
                                          confidence=max(pr.confidence, 0.9))
        if not quiet:
            notes.append(f"order of fused parts settled numerically: {label}")
    else:  # never kept silently: a guess lowers the pair's confidence and says why
        ev += (f"order of the parts {label}: a guess; the layouts that fit are numerically equivalent on the "
               "example input and on a random input of its shapes (either works for inputs of these shapes)"
               + (f" ({how})" if how else "") + "; check it by hand",)
        updated[pr.paddle_path] = replace(_with_order(pr, best, g), evidence=ev, uncertain=True,
                                          confidence=min(pr.confidence, GUESS))
        if not quiet:
            notes.append(f"order of the fused parts of {pr.paddle_path} not settled: equivalent on every input "
                         f"tried; kept {label} as a guess")


def repeats_note(alike: int, distinct: int) -> str:
    return (f"{alike} fused pairs in structurally identical blocks took the layout settled for the first of "
            f"their kind ({distinct} searched), each checked by one run of its own block")
