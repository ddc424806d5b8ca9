"""Numeric confirmation: settle the ties the structure could not, by running both models.

Some candidates are structurally indistinguishable in the exported graphs (equal shapes,
mirrored branches, glue the two exporters decompose differently). For each such tie
group (uncertain pairs whose paddle layers share a parameter-shape signature), every
assignment of the group's torch layers to its paddle layers is tried: torch weights are
copied into the paddle model with :func:`padiff.runtime.weights.plan_pair` /
``apply_plan`` following that assignment, the paddle forward runs under ``no_grad`` in
eval mode, and the outputs of all paired layers and of the model are compared with the
torch run's. The assignment with the smallest total difference wins; when several tie
numerically too, the assignments are equivalent for this input (truly symmetric) and
the structural choice is kept.

Numbers only break ties the structure allows (:func:`allowed_partners`): a layer inside a
block whose other layers are confidently paired may only move to a torch layer inside the
block those partners sit in. An assignment outside that set is still scored; when it wins,
the structural choice is kept, the pairs are marked low-confidence and the evidence says
which move the numbers wanted and why it was refused (a port bug can make outputs agree
better at the wrong place).

The paddle weights are snapshotted before and restored exactly in ``finally``; modes
and hooks of both models are restored too. Deep copies are avoided on purpose: they are
not reliable for arbitrary user models.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from padiff.graph.canonical import shape_key
from padiff.graph.fused import layout_groups
from padiff.graph.match import LayerInfo, MatchResult, ProposedPair

MAX_RUNS = 48  # paddle forwards allowed for confirmation (each tie group tries its permutations)
MAX_FUSED_RUNS = 256  # paddle forwards allowed for the layouts of fused pairs (orders x interleavings)
EQUAL = 1e-6  # relative: assignments closer than this are numerically equivalent


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


def _fused(pair: ProposedPair) -> bool:
    return bool(pair.paddle_parts or pair.torch_parts)


def _parts_of(pair: ProposedPair) -> tuple[str, ...]:
    return pair.paddle_parts or pair.torch_parts


def _with_order(pair: ProposedPair, order: tuple[str, ...], groups: int | None = None) -> ProposedPair:
    g = pair.groups if groups is None else groups
    if pair.paddle_parts:
        return replace(pair, paddle_parts=order, paddle_path=order[0], groups=g)
    return replace(pair, torch_parts=order, torch_path=order[0], groups=g)


def _fits(pair: ProposedPair, p_objs: Mapping[str, Any], p_state: Mapping[str, Any], t_objs: Mapping[str, Any],
          t_state: Mapping[str, Any]) -> bool:
    """The fused pair's weights can be split/concatenated in this order and interleaving (no forward run)."""
    from padiff.adapters import pair_state
    from padiff.errors import WeightAssignError
    from padiff.runtime.weights import plan_fused

    try:
        plan_fused(pair, p_objs, pair_state(p_state, pair.paddle_parts or (pair.paddle_path,), False), t_objs,
                   pair_state(t_state, pair.torch_parts or (pair.torch_path,), False))
    except WeightAssignError:
        return False
    return True


def _prefix(paths: list[str]) -> str:
    """Deepest container holding every path (``""`` for the root)."""
    parts = [p.split(".")[:-1] for p in paths]
    out: list[str] = []
    for level in zip(*parts):
        if len(set(level)) > 1:
            break
        out.append(level[0])
    return ".".join(out)


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
                out[pair.paddle_path] = _prefix(anchors) if len(anchors) > 1 else anchors[0].rpartition(".")[0]
                break
    return out


def _inside(path: str, block: str | None) -> bool:
    return block is None or block == "" or path.startswith(block + ".")


def _flat(side: Any, out: Any) -> list[np.ndarray]:
    return [side.to_numpy(t).astype(np.float64).ravel() for t in side.flatten(out)]


class _Recorder:
    """Post-hooks on the paired layers that keep each call's flattened outputs."""

    def __init__(self, side: Any, root: Any, paths: set[str]) -> None:
        self.side = side
        self.outputs: dict[str, list[list[np.ndarray]]] = defaultdict(list)
        self.handles: list[Any] = []
        for path, obj in side.named_layers(root):
            if path in paths:
                self.handles.append(side.add_post_hook(obj, self._hook(path)))

    def _hook(self, path: str) -> Any:
        def hook(_layer: Any, _args: tuple, out: Any) -> None:
            self.outputs[path].append(_flat(self.side, out))

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def _distance(a: list[list[np.ndarray]], b: list[list[np.ndarray]]) -> float:
    total = 0.0
    for ca, cb in zip(a, b):
        for x, y in zip(ca, cb):
            if x.shape != y.shape:
                return float("inf")
            total += float(np.abs(x - y).mean() / (np.abs(y).mean() + 1e-12))
    return total


def confirm_ties(layer: Any, module: Any, example_inp: Any, result: MatchResult,  # noqa: C901, PLR0915  # the trial-copy loop over tie groups; to be split by its owner (graph/confirm.py)
                 p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> tuple[MatchResult, list[str]]:
    """Settle or re-pair the tie groups of ``result`` numerically; returns the new result and notes."""
    from padiff.adapters import PADDLE, TORCH

    groups = tie_groups(result, p_layers)
    fused = [i for i, pr in enumerate(result.pairs) if _fused(pr) and pr.uncertain]
    if not groups and not fused:
        return result, []
    notes: list[str] = []
    p_objs = dict(PADDLE.named_layers(layer))
    t_objs = dict(TORCH.named_layers(module))
    p_state, t_state = PADDLE.owned_state(layer), TORCH.owned_state(module)
    snapshot = {(path, e.name): PADDLE.to_numpy(e.tensor) for path, es in p_state.items() for e in es}
    modes = [(side, obj, side.is_training(obj)) for side, root in ((PADDLE, layer), (TORCH, module))
             for _, obj in side.named_layers(root)]
    compared = {p.paddle_path: p.torch_path for p in result.pairs if p.compare_output and not _fused(p)}
    fixed = [p for p in result.pairs if _fused(p) or p.opaque]  # copied by their own plans
    orders = {i: _parts_of(result.pairs[i]) for i in fused}
    grouping = {i: result.pairs[i].groups for i in fused}
    p_rec = t_rec = None
    try:
        for side, obj, _ in modes:
            side.set_training(obj, False)
        t_rec = _Recorder(TORCH, module, set(compared.values()))
        with TORCH.no_grad():
            t_final = _flat(TORCH, module(**example_inp[1]))
        t_out = dict(t_rec.outputs)
        t_rec.remove()
        p_rec = _Recorder(PADDLE, layer, set(compared))

        def copy(assign: Mapping[str, str]) -> None:
            from padiff.adapters import pair_state
            from padiff.runtime.weights import apply_plan, plan_fused, plan_pair

            for p_path, t_path in assign.items():
                if p_path in p_state and t_path in t_state:
                    plan = plan_pair(p_path, p_objs[p_path], p_state[p_path], t_path, t_objs[t_path], t_state[t_path])
                    apply_plan(plan, p_objs[p_path], p_state[p_path], t_objs[t_path], t_state[t_path])
            for pr in fixed:
                i = result.pairs.index(pr)
                pr = _with_order(pr, orders[i], grouping[i]) if i in orders else pr
                ps_ = pair_state(p_state, pr.paddle_parts or (pr.paddle_path,), pr.opaque)
                ts_ = pair_state(t_state, pr.torch_parts or (pr.torch_path,), pr.opaque)
                if _fused(pr):
                    plan = plan_fused(pr, p_objs, ps_, t_objs, ts_)
                else:
                    plan = plan_pair(pr.paddle_path, p_objs[pr.paddle_path], ps_, pr.torch_path,
                                     t_objs[pr.torch_path], ts_)
                apply_plan(plan, p_objs[pr.paddle_path], ps_, t_objs[pr.torch_path], ts_)

        def error(assign: Mapping[str, str]) -> float:
            copy(assign)
            p_rec.outputs.clear()  # type: ignore[union-attr]
            with PADDLE.no_grad():
                p_final = _flat(PADDLE, layer(**example_inp[0]))
            total = _distance([p_final], [t_final])
            for p_path, t_path in compared.items():
                t_now = assign.get(p_path, t_path)
                total += _distance(p_rec.outputs.get(p_path, []), t_out.get(t_now, []))  # type: ignore[union-attr]
            return total

        current = {p.paddle_path: p.torch_path for p in result.pairs if p not in fixed}
        copy(current)
        runs = 0
        updated: dict[str, ProposedPair] = {}
        fused_runs = 0
        for i in fused:
            pr = result.pairs[i]
            layouts = [(perm, g) for g in layout_groups(pr, p_layers, t_layers)
                       for perm in itertools.permutations(_parts_of(pr))
                       if _fits(_with_order(pr, perm, g), p_objs, p_state, t_objs, t_state)]
            if not layouts or fused_runs + len(layouts) > MAX_FUSED_RUNS:
                notes.append(f"order of the parts of {pr.paddle_path} <-> {pr.torch_path} not settled: "
                             f"{len(layouts)} layouts (orders x interleavings) exceed the numeric budget; check it "
                             "by hand")
                continue
            scored = []
            for perm, g in layouts:
                orders[i], grouping[i] = perm, g
                scored.append((error(current), perm, g))
                fused_runs += 1
            scored.sort(key=lambda s: s[0])
            (best_err, best, best_g), second = scored[0], (scored[1][0] if len(scored) > 1 else float("inf"))
            orders[i], grouping[i] = best, best_g
            decisive = second - best_err > EQUAL * max(1.0, best_err)
            label = " + ".join(best) + (f" interleaved in {best_g} groups" if best_g > 1 else "")
            ev = tuple(e for e in pr.evidence if not e.startswith("order of the parts"))
            if decisive:
                ev += (f"order of the parts {label} settled numerically: output error {best_err:.2e} vs "
                       f"{second:.2e} for the next order",)
                updated[pr.paddle_path] = replace(_with_order(pr, best, best_g), evidence=ev, uncertain=False,
                                                  confidence=max(pr.confidence, 0.9))
                notes.append(f"order of fused parts settled numerically: {label}")
            else:
                ev += (f"orders of the parts {label} are numerically equivalent for this input: kept",)
                updated[pr.paddle_path] = replace(_with_order(pr, best, best_g), evidence=ev)
        copy(current)
        for group in groups:
            p_paths = [p.paddle_path for p in group]
            t_paths = [p.torch_path for p in group]
            perms = list(itertools.permutations(t_paths))
            if runs + len(perms) > MAX_RUNS:
                notes.append(f"numeric confirmation skipped for {p_paths}: {len(perms)} assignments exceed the budget")
                continue
            scored = []
            for perm in perms:
                assign = dict(current)
                assign.update(zip(p_paths, perm))
                scored.append((error(assign), perm))
                runs += 1
            scored.sort(key=lambda s: s[0])
            where = allowed_partners(result, group)
            ok = [sc for sc in scored if all(_inside(t, where[p]) or t == old
                                             for p, t, old in zip(p_paths, sc[1], t_paths))]
            refused = scored[0] if scored[0] not in ok else None
            best_err, best = ok[0]
            second = ok[1][0] if len(ok) > 1 else float("inf")
            decisive = second - best_err > EQUAL * max(1.0, best_err)
            if refused is not None and best_err - refused[0] > EQUAL * max(1.0, refused[0]):
                wanted = [f"{p} -> {t} (outside torch {where[p]!r})" for p, t, old in zip(p_paths, refused[1], t_paths)
                          if t != old and not _inside(t, where[p])]
                why = (f"numbers prefer {', '.join(wanted)} (output error {refused[0]:.2e} vs {best_err:.2e}), but the "
                       "structure places it in another block: kept; check this pair (a port bug can make outputs "
                       "agree better at the wrong place)")
                current.update(zip(p_paths, best))
                copy(current)
                for pair, t_path in zip(group, best):
                    updated[pair.paddle_path] = replace(pair, torch_path=t_path, uncertain=True,
                                                        confidence=min(pair.confidence, 0.4),
                                                        evidence=(*pair.evidence, why))
                notes.append(f"numeric confirmation refused a re-pairing across blocks for {', '.join(p_paths)}: {why}")
                continue
            current.update(zip(p_paths, best))
            copy(current)
            for pair, t_path in zip(group, best):
                old_block, new_block = pair.torch_path.rpartition(".")[0], t_path.rpartition(".")[0]
                unanchored = where[pair.paddle_path] is None
                if decisive and t_path != pair.torch_path and old_block != new_block and unanchored:
                    # no confidently paired layer around it says which block it belongs to
                    ev = (*pair.evidence, f"re-paired numerically from torch block {old_block!r} to {new_block!r} "
                                          f"(output error {best_err:.2e} vs {second:.2e}); no confidently paired "
                                          "neighbour confirms the move: check this pair")
                    updated[pair.paddle_path] = replace(pair, torch_path=t_path, evidence=ev, uncertain=True,
                                                        confidence=min(pair.confidence, 0.5))
                elif decisive:
                    ev = (*[e for e in pair.evidence if not e.startswith("tie:")],
                          f"settled numerically: output error {best_err:.2e} vs {second:.2e} for the next assignment")
                    updated[pair.paddle_path] = replace(pair, torch_path=t_path, evidence=ev, uncertain=False,
                                                        confidence=max(pair.confidence, 0.9))
                else:
                    ev = (*pair.evidence, "numerically equivalent assignments for this input (symmetric): kept")
                    updated[pair.paddle_path] = replace(pair, torch_path=t_path, evidence=ev)
            moved = [f"{p} -> {t}" for p, t, old in zip(p_paths, best, t_paths) if t != old]
            verdict = ("re-paired " + ", ".join(moved)) if moved else "structural choice confirmed"
            notes.append(f"settled numerically ({verdict}): {', '.join(p_paths)}" if decisive else
                         f"numeric confirmation found {', '.join(p_paths)} interchangeable for this input")
    except Exception as exc:  # noqa: BLE001 - confirmation is optional; never lose the proposal
        notes.append(f"numeric confirmation not done: {type(exc).__name__}: {str(exc)[:200]}")
        return result, notes
    finally:
        for rec in (p_rec, t_rec):
            if rec is not None:
                rec.remove()
        for (path, name), arr in snapshot.items():
            entry = next(e for e in p_state[path] if e.name == name)
            PADDLE.set_value(entry.tensor, arr)
        for side, obj, mode in modes:
            side.set_training(obj, mode)
    pairs = [updated.get(p.paddle_path, p) for p in result.pairs]
    return MatchResult(pairs, result.unpaired, result.unit_pairs, result.params), notes
