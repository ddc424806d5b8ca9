"""Numeric confirmation: settle the ties the structure could not, by running both models.

Some candidates are structurally indistinguishable in the exported graphs (equal shapes,
mirrored branches, 1x7 against 7x1 kernels, glue the two exporters decompose
differently). A tie group is the uncertain pairs whose paddle layers share a class and a
parameter-shape signature. Its cost is linear in the candidates, not in the assignments
(:mod:`padiff.graph.confirm_local`):

1. Torch weights are copied into the paddle model once (:func:`padiff.weights.pair_plan.plan_pair` /
   ``apply_plan``, following the structural proposal); torch runs once, in eval mode
   under ``no_grad``, recording each candidate's inputs and outputs.
2. Paddle runs once; at each candidate's first call its input is compared with the input
   every torch candidate of its group received, and the candidate that clearly agrees
   has its weights copied in before the layer runs, so later candidates receive what
   they should (:func:`_passes`). Layers no candidate clearly agrees with are assigned
   after the pass (one small assignment problem); when that moved weights, paddle is
   recorded again (at most :data:`MAX_ROUNDS` forwards).
3. Candidates whose inputs cannot separate them (they read the same tensor: q/k/v,
   parallel branches) are decided by running the smallest paddle block enclosing them on
   its recorded input, once per order of those few (all orders up to :data:`EXHAUSTIVE`,
   pairwise swaps beyond), against the enclosing torch block's recorded output. When
   orders tie there too, they are equivalent for this input (truly symmetric) and the
   structural choice is kept. No group is skipped for a budget.

Numbers only break ties the structure allows (:func:`allowed_partners`): a layer inside a
block whose other layers are confidently paired may only move to a torch layer inside the
block those partners sit in. When the unrestricted assignment scores better, the
structural choice is kept, the pairs are marked low-confidence and the evidence says
which move the numbers wanted and why it was refused (a port bug can make outputs agree
better at the wrong place).

The order and interleaving of a fused pair's parts are settled by one paddle forward per
layout whose weights split (within :data:`~padiff.graph.confirm_local.MAX_FUSED_RUNS`).
The paddle weights are snapshotted before and restored exactly in ``finally``; modes and
hooks of both models are restored too. Deep copies are avoided on purpose: they are not
reliable for arbitrary user models.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from padiff.graph.canonical import shape_key
from padiff.graph.confirm_local import BIG, EQUAL, GUESS, _fused, _inside
from padiff.graph.confirm_trial import block_errors_elsewhere
from padiff.graph.match import LayerInfo, MatchResult, ProposedPair
from padiff.maps.notes import MapNote
from padiff.names import common_container
from padiff.weights.spill import spilled

MAX_ROUNDS = 4  # paddle recordings for the candidate errors (a re-pairing changes later inputs)
CLEAR = 10.0  # a candidate is taken during the pass when the next one's error is this many times larger
EXHAUSTIVE = 4  # tied candidates up to this many are run in every order; more by pairwise swaps


def not_evaluated(second: float) -> bool:
    """A runner-up error that stands for "never measured" (:data:`BIG`, NaN), not for "no other allowed" (inf)."""
    return not second < BIG and second != math.inf


def _signature(info: LayerInfo) -> tuple:
    return tuple(sorted(shape_key(s) for s in info.shapes))


def tie_groups(result: MatchResult, p_layers: Mapping[str, LayerInfo]) -> list[list[ProposedPair]]:
    """Uncertain parameter pairs grouped by their paddle layer's shape signature."""
    groups: dict[tuple, list[ProposedPair]] = defaultdict(list)
    for pair in result.pairs:
        info = p_layers.get(pair.paddle_path)
        if _fused(pair) or pair.opaque:
            continue  # their order or extent is settled by settle_parts / taken as proposed
        if pair.uncertain and info is not None and info.shapes:
            groups[(info.cls, _signature(info))].append(pair)
    return [g for g in groups.values() if len(g) > 1]


def allowed_partners(result: MatchResult, group: list[ProposedPair]) -> dict[str, str | None]:
    """For each paddle layer of a tie group: the torch container its partner must lie in (None: anywhere).

    The nearest paddle ancestor block holding confidently paired layers (outside the
    group) anchors the layer: those layers' torch partners name the torch block, and the
    numbers may only choose among candidates inside it. Pure function of the pairs.
    """
    in_group = {p.paddle_path for p in group}
    sure = [(p.paddle_path, p.torch_path) for p in result.pairs if not p.uncertain and p.paddle_path not in in_group]
    out: dict[str, str | None] = {}
    for pair in group:
        parts = pair.paddle_path.split(".")
        out[pair.paddle_path] = None
        for n in range(len(parts) - 1, 0, -1):
            block = ".".join(parts[:n])
            anchors = [t for p, t in sure if p.startswith(block + ".")]
            if anchors:
                out[pair.paddle_path] = common_container(anchors) if len(anchors) > 1 else anchors[0].rpartition(".")[0]
                break
    return out


def confirm_ties(layer: Any, module: Any, example_inp: Any, result: MatchResult,
                 p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> tuple[MatchResult, list[str]]:
    """Settle or re-pair the tie groups of ``result`` numerically; returns the new result and its notes.

    Every note is a ``numeric`` :class:`~padiff.maps.notes.MapNote` (the report lists them under
    "settled numerically"), whatever happened: settled, refused, interchangeable or not done.
    """
    from padiff.adapters import PADDLE, TORCH

    groups = tie_groups(result, p_layers)
    fused = [i for i, pr in enumerate(result.pairs) if _fused(pr) and pr.uncertain]
    if not groups and not fused:
        return result, []
    notes: list[str] = []
    p_state = PADDLE.owned_state(layer)
    keys = [(path, e.name) for path, es in p_state.items() for e in es]
    # the paddle model's values, to put back: in a temporary file when large, not a second model in memory
    snapshot = dict(zip(keys, spilled((PADDLE.host_view(e.tensor) for es in p_state.values() for e in es),
                                      views=True)))
    modes = [(side, obj, side.is_training(obj)) for side, root in ((PADDLE, layer), (TORCH, module))
             for _, obj in side.named_layers(root)]
    trial = None
    updated: dict[str, ProposedPair] = {}
    try:
        from padiff.graph.confirm_layouts import settle_orders
        from padiff.graph.confirm_trial import Trial

        for side, obj, _ in modes:
            side.set_training(obj, False)
        trial = Trial(layer, module, example_inp, result, groups)
        settle_orders(trial, fused, updated, notes, p_layers, t_layers)
        _settle_groups(trial, groups, updated, notes)
    except Exception as exc:  # noqa: BLE001 - confirmation is optional; never lose the proposal
        notes.append(f"numeric confirmation not done: {type(exc).__name__}: {str(exc)[:200]}")
        return result, [MapNote.numeric(n) for n in notes]
    finally:
        if trial is not None:
            trial.remove()
        for (path, name), arr in snapshot.items():
            entry = next(e for e in p_state[path] if e.name == name)
            PADDLE.set_value(entry.tensor, arr)
        for side, obj, mode in modes:
            side.set_training(obj, mode)
    pairs = [updated.get(p.paddle_path, p) for p in result.pairs]
    return MatchResult(pairs, result.unpaired, result.unit_pairs, result.params), [MapNote.numeric(n) for n in notes]


def _settle_groups(trial: Any, groups: list[list[ProposedPair]], updated: dict[str, ProposedPair],
                   notes: list[str]) -> None:
    """Every tie group from the candidate errors of one recording (re-recorded after re-pairings).

    Candidates the inputs cannot separate are then ordered by their enclosing block (:func:`_settle_tied`).
    """
    from padiff.graph.confirm_local import close, runner_up, tied_rows, total

    if not groups:
        return
    wheres = [allowed_partners(trial.result, g) for g in groups]
    costs = _passes(trial, groups, wheres, free=False)
    kept = dict(trial.current)
    frees: list[Any] = [None] * len(groups)
    if any(cost[i].min() < ok[i, c] and not close(cost[i].min(), ok[i, c])
           for cost, ok, cols in costs for i, c in enumerate(cols)):
        # what the numbers would choose unrestricted, measured on its own recording like the restricted choice
        frees = _passes(trial, groups, wheres, free=True)
        trial.current.update(kept)
        trial.copy(kept)
    for group, where, (every, ok, cols), fr in zip(groups, wheres, costs, frees):
        p_paths, t_paths = [p.paddle_path for p in group], [p.torch_path for p in group]
        best_err = total(ok, cols)
        free, free_err = (fr[2], total(fr[0], fr[2])) if fr is not None else (cols, best_err)
        if free_err < BIG and best_err > free_err and not close(best_err, free_err):
            wanted = [f"{p} -> {t_paths[j]} (outside torch {where[p]!r})" for p, j in zip(p_paths, free)
                      if not _inside(t_paths[j], where[p])]
            why = (f"numbers prefer {', '.join(wanted)} (output error {free_err:.2e} vs {best_err:.2e}), but the "
                   "structure places it in another block: kept; check this pair (a port bug can make outputs "
                   "agree better at the wrong place)")
            for pair, j in zip(group, cols):
                updated[pair.paddle_path] = replace(pair, torch_path=t_paths[j], uncertain=True,
                                                    confidence=min(pair.confidence, 0.4),
                                                    evidence=(*pair.evidence, why))
            notes.append(f"numeric confirmation refused a re-pairing across blocks for {', '.join(p_paths)}: {why}")
            continue
        verdicts: dict[int, tuple[bool, float, float]] = {}  # row -> (decisive, error, next best)
        tied = tied_rows(ok, cols)
        for rows in tied:
            verdicts.update(_settle_tied(trial, [p_paths[r] for r in rows], [t_paths[cols[r]] for r in rows],
                                         rows, where))
        for r in range(len(p_paths)):
            if r not in verdicts:
                err = float(ok[r, cols[r]])
                second = runner_up(ok, cols, r)
                if second >= BIG:  # no other candidate allowed here: the next one anywhere still measures
                    second = runner_up(every, cols, r)
                decisive = err < BIG and second > err and not close(second, err)
                verdicts[r] = (decisive, err, second)
        _record_group(trial, group, verdicts, where, updated, notes)


def _passes(trial: Any, groups: list[list[ProposedPair]], wheres: list[Mapping[str, str | None]],
            free: bool) -> list[tuple[Any, Any, list[int]]]:
    """Decide every group's candidates during one paddle forward, in the order the layers run.

    At a candidate's first call its input is fed to every torch candidate of its group
    (:func:`padiff.graph.confirm_local.row_costs`). When one agrees (error within
    ``LOCAL_TIE``; the structural partner first among equals), its weights are copied in
    before the layer runs, so what later candidates receive is already right. A layer no
    candidate agrees with may have a wrong input still: it is assigned after the pass among
    the candidates left, and the model is recorded again when that moved a weight (at most
    :data:`MAX_ROUNDS` forwards). ``free``: any candidate of the group may be chosen, else
    only those :func:`allowed_partners` allows. Returns per group ``(cost, allowed cost,
    chosen columns)``; the paddle model holds the chosen weights afterwards.
    """
    from padiff.graph.confirm_local import LOCAL_TIE, REL_TIE, close, row_costs, solve

    p_paths = [[p.paddle_path for p in g] for g in groups]
    t_paths = [[p.torch_path for p in g] for g in groups]
    member = {p: (g, i) for g, paths in enumerate(p_paths) for i, p in enumerate(paths)}
    masks = [np.array([[free or j == i or _inside(t, where[p]) for j, t in enumerate(tp)] for i, p in enumerate(pp)])
             for pp, tp, where in zip(p_paths, t_paths, wheres)]
    out: list[tuple[Any, Any, list[int]]] = []
    for _ in range(MAX_ROUNDS):
        costs = [np.full((len(pp), len(pp)), BIG) for pp in p_paths]
        chosen: list[dict[int, int]] = [{} for _ in groups]

        def decide(path: str, args: tuple, costs: list[Any] = costs, chosen: list[dict[int, int]] = chosen) -> None:
            if path not in member:
                return
            g, i = member[path]
            costs[g][i] = row = row_costs(args, trial.t_in, t_paths[g])
            ok = np.where(masks[g][i], row, BIG)
            left = [j for j in range(len(row)) if j not in chosen[g].values() and ok[j] < BIG]
            if not left:
                return
            ranked = sorted(left, key=lambda k: ok[k])
            cur = t_paths[g].index(trial.current[path]) if trial.current[path] in t_paths[g] else -1
            if cur in left and close(ok[cur], ok[ranked[0]]):
                j = cur  # the structural partner is as good as any: keep it (ties go to the blocks)
            elif len(ranked) == 1 or ok[ranked[1]] > CLEAR * ok[ranked[0]] + LOCAL_TIE:
                j = ranked[0]
            else:
                return  # no candidate clearly agrees: its input may still be wrong, decided after the pass
            chosen[g][i] = j
            trial.current[path] = t_paths[g][j]
            trial.copy({path: t_paths[g][j]})

        trial.p_taps.on_first = decide
        try:
            trial.forward()
        finally:
            trial.p_taps.on_first = None
        out, moved = [], False
        for g, pp in enumerate(p_paths):
            ok_g = np.where(masks[g], costs[g], BIG)
            rows = [i for i in range(len(pp)) if i not in chosen[g]]
            cols_left = [j for j in range(len(pp)) if j not in chosen[g].values()]
            pick = ok_g.copy()
            for r in rows:  # among equals, the structural partner
                if trial.current[pp[r]] in t_paths[g]:
                    c = t_paths[g].index(trial.current[pp[r]])
                    pick[r, c] = pick[r, c] * (1 - REL_TIE / 2)
            sub = solve(pick[np.ix_(rows, cols_left)]) if rows else []
            cols = [chosen[g].get(i, -1) for i in range(len(pp))]
            for r, c in zip(rows, sub):
                cols[r] = cols_left[c]
                if trial.current[pp[r]] != t_paths[g][cols[r]]:
                    moved = True
                    trial.current[pp[r]] = t_paths[g][cols[r]]
                    trial.copy({pp[r]: t_paths[g][cols[r]]})
            out.append((costs[g], ok_g, cols))
        if not moved:
            break
    return out


def _settle_tied(trial: Any, p_paths: list[str], t_paths: list[str], rows: list[int],
                 where: Mapping[str, str | None]) -> dict[int, tuple[bool, float, float]]:
    """Order candidates their inputs cannot separate by re-running the smallest block holding them."""
    p_block, t_block = common_container(p_paths), common_container(t_paths)
    if trial.recorded != trial.current:  # an earlier settlement changed what this block receives
        trial.forward()
    calls = list(trial.last_args.get(p_block, [])) if p_block else []

    def error(order: tuple[str, ...]) -> float:
        assign = dict(zip(p_paths, order))
        trial.current.update(assign)
        trial.copy(assign)
        return trial.block_error(p_block, t_block, calls)

    allowed = [o for o in itertools.permutations(t_paths)
               if all(_inside(t, where[p]) or t == old for p, t, old in zip(p_paths, o, t_paths))]
    scored: dict[tuple[str, ...], float] = {}
    if len(p_paths) <= EXHAUSTIVE:
        for order in allowed:
            scored[order] = error(order)
    else:  # pairwise swaps from the inputs' choice until none helps
        best = tuple(t_paths)
        scored[best] = error(best)
        improved = True
        while improved:
            improved = False
            for a, b in itertools.combinations(range(len(best)), 2):
                cand = list(best)
                cand[a], cand[b] = cand[b], cand[a]
                order = tuple(cand)
                if order in scored or order not in allowed:
                    continue
                scored[order] = error(order)
                if scored[order] < scored[best] - EQUAL * max(1.0, scored[best]):
                    best, improved = order, True
    ranked = sorted(scored.items(), key=lambda kv: kv[1])
    (best_order, best_err) = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else float("inf")
    decisive = second - best_err > EQUAL * max(1.0, best_err)
    if not decisive:  # the example cannot tell them apart: ask an input that can
        tied = [o for o, e in ranked if e - best_err <= EQUAL * max(1.0, best_err)]
        again = sorted(block_errors_elsewhere(trial, p_paths, tied, p_block, t_block).items(), key=lambda kv: kv[1])
        if len(again) > 1:
            (best_order, best_err), second = again[0], again[1][1]
            decisive = second - best_err > EQUAL * max(1.0, best_err)
    if not decisive:
        best_order = tuple(t_paths)  # equivalent on every input tried: keep the inputs' (structural) choice
        best_err = scored.get(best_order, best_err)
    assign = dict(zip(p_paths, best_order))
    trial.current.update(assign)
    trial.copy(assign)
    return {r: (decisive, best_err, second) for r in rows}


def _record_group(trial: Any, group: list[ProposedPair], verdicts: Mapping[int, tuple[bool, float, float]],
                  where: Mapping[str, str | None], updated: dict[str, ProposedPair], notes: list[str]) -> None:
    """The group's pairs with the numbers' verdict in their evidence, and one note for the group."""
    settled, moved, equivalent = [], [], []
    for r, pair in enumerate(group):
        decisive, err, second = verdicts[r]
        t_path = trial.current[pair.paddle_path]
        if decisive and not_evaluated(second):
            # "1e+30 for the next assignment" is no evidence: the alternative was never measured
            ev = (*pair.evidence, f"not settled numerically: output error {err:.2e}, and no other assignment "
                                  "could be evaluated on this input to compare it with; check this pair")
            updated[pair.paddle_path] = replace(pair, torch_path=t_path, evidence=ev, uncertain=True,
                                                confidence=min(pair.confidence, GUESS))
            equivalent.append(pair.paddle_path)
            continue
        old_block, new_block = pair.torch_path.rpartition(".")[0], t_path.rpartition(".")[0]
        if t_path != pair.torch_path:
            moved.append(f"{pair.paddle_path} -> {t_path}")
        if decisive and t_path != pair.torch_path and old_block != new_block and where[pair.paddle_path] is None:
            # no confidently paired layer around it says which block it belongs to
            ev = (*pair.evidence, f"re-paired numerically from torch block {old_block!r} to {new_block!r} "
                                  f"(output error {err:.2e} vs {second:.2e}); no confidently paired "
                                  "neighbour confirms the move: check this pair")
            updated[pair.paddle_path] = replace(pair, torch_path=t_path, evidence=ev, uncertain=True,
                                                confidence=min(pair.confidence, 0.5))
            settled.append(pair.paddle_path)
        elif decisive:
            ev = (*[e for e in pair.evidence if not e.startswith("tie:")],
                  f"settled numerically: output error {err:.2e} vs {second:.2e} for the next assignment")
            updated[pair.paddle_path] = replace(pair, torch_path=t_path, evidence=ev, uncertain=False,
                                                confidence=max(pair.confidence, 0.9))
            settled.append(pair.paddle_path)
        else:
            ev = (*pair.evidence, "a guess: the assignments are numerically equivalent on the example input and "
                                  "on a random input of its shapes; check this pair")
            updated[pair.paddle_path] = replace(pair, torch_path=t_path, evidence=ev, uncertain=True,
                                                confidence=min(pair.confidence, GUESS))
            equivalent.append(pair.paddle_path)
    if settled:
        verdict = ("re-paired " + ", ".join(moved)) if moved else "structural choice confirmed"
        notes.append(f"settled numerically ({verdict}): {', '.join(settled)}")
    if equivalent:
        notes.append(f"numeric confirmation found {', '.join(equivalent)} interchangeable on every input tried "
                     "(or could not compare them): kept as a guess, below 0.9")
