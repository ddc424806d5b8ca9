"""Settle the order and interleaving of a proposed fused pair's parts from the recorded outputs.

The dataflow says which layers a fused ``qkv_proj`` stands for, not in which order (or in how
many interleaved groups) their outputs make up its output. ``suggest_layer_map`` settles that
by running the live models once per layout (:mod:`padiff.graph.confirm_trial`); offline the two
runs already hold the answer: at the first recorded step, before any optimizer step, the fused
layer's output is the parts' outputs put together in the right layout. Each layout the
live aligner would try (every order x :func:`padiff.graph.fused.layout_groups`) is assembled
(:func:`padiff.compare.fused.assemble`) and the one closest to the fused output is kept, with
the same evidence text and the same rule for "numerically equivalent" as live.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from padiff.compare.fused import assemble, axis_of
from padiff.graph.confirm_local import EQUAL, _parts_of, _with_order
from padiff.graph.fused import layout_groups
from padiff.graph.match import LayerInfo, MatchResult
from padiff.offline import fmt
from padiff.offline.reader import RankRun

MAX_LAYOUTS = 64  # orders x interleavings tried per fused pair (live: the numeric budget)


def settle_fused(result: MatchResult, pd: RankRun, pt: RankRun, p_layers: Mapping[str, LayerInfo],
                 t_layers: Mapping[str, LayerInfo], notes: list[str]) -> MatchResult:
    """``result`` with each uncertain fused pair's parts in the layout the first recorded step shows."""
    common = sorted(set(pd.steps) & set(pt.steps))
    if not common or pd.meta.get("level") != "full" or pt.meta.get("level") != "full":
        if any(pr.uncertain and _parts_of(pr) for pr in result.pairs):
            notes.append("auto map: the order of fused parts needs the tensors of a step recorded at level 'full'; "
                         "kept as the dataflow gave it, review the proposal.")
        return result
    step = common[0]
    tensors: dict[str, dict[str, np.ndarray]] = {}
    pairs = list(result.pairs)
    for i, pr in enumerate(pairs):
        if not (pr.uncertain and _parts_of(pr)):
            continue
        if not tensors:
            tensors = {"paddle": pd.tensors(step), "torch": pt.tensors(step)}
        split = "paddle" if pr.paddle_parts else "torch"
        fused_path = pr.torch_path if split == "paddle" else pr.paddle_path
        whole = _output(tensors["torch" if split == "paddle" else "paddle"], fused_path)
        parts = {p: _output(tensors[split], p) for p in _parts_of(pr)}
        if whole is None or any(a is None for a in parts.values()):
            notes.append(f"order of the parts of {pr.paddle_path} <-> {pr.torch_path} not settled: the runs did not "
                         f"record every output at step {step}; check it by hand")
            continue
        ax = axis_of(getattr(pr, "axis", -1), whole.ndim)  # proposals concatenate on the last axis
        layouts = [(perm, g) for g in layout_groups(pr, p_layers, t_layers) for perm in itertools.permutations(parts)]
        if ax is None or len(layouts) > MAX_LAYOUTS:
            notes.append(f"order of the parts of {pr.paddle_path} <-> {pr.torch_path} not settled: {len(layouts)} "
                         "layouts exceed the numeric budget; check it by hand")
            continue
        scored = []
        for perm, g in layouts:
            try:
                made = assemble([parts[p] for p in perm], ax, g)  # type: ignore[misc]
            except ValueError:
                continue
            if made.shape == whole.shape:
                scored.append((float(np.mean(np.abs(made.astype(np.float64) - whole))), perm, g))
        if not scored:
            continue
        scored.sort(key=lambda s: s[0])
        (best_err, best, best_g), second = scored[0], (scored[1][0] if len(scored) > 1 else float("inf"))
        label = " + ".join(best) + (f" interleaved in {best_g} groups" if best_g > 1 else "")
        ev = tuple(e for e in pr.evidence if not e.startswith("order of the parts"))
        if second - best_err > EQUAL * max(1.0, best_err):
            ev += (f"order of the parts {label} settled numerically from the recorded outputs of step {step}: "
                   f"output error {best_err:.2e} vs {second:.2e} for the next order",)
            pairs[i] = replace(_with_order(pr, best, best_g), evidence=ev, uncertain=False,
                               confidence=max(pr.confidence, 0.9))
            notes.append(f"order of fused parts settled numerically: {label}")
        else:
            pairs[i] = replace(_with_order(pr, best, best_g),
                               evidence=(*ev, f"orders of the parts {label} are numerically equivalent for the "
                                                    "recorded input: kept"))
    return replace(result, pairs=pairs)


def _output(tensors: Mapping[str, np.ndarray], path: str) -> np.ndarray | None:
    """The first call's first output of layer ``path`` in the first micro-step."""
    arr = tensors.get(fmt.entry_key("forward", path, 0, "out[0]", 0))
    return None if arr is None else np.asarray(arr, dtype=np.float64)
