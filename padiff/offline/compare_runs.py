"""``compare_runs``: compare a recorded paddle run with a recorded torch run, no framework needed.

The result is the same :class:`~padiff.report.records.DiffReport` ``compare`` returns, made of
the same records: layers are paired through the same ``LayerMap`` types (:mod:`padiff.offline.run_map`:
a map file, a ``LayerMap``, a path dict, ``"auto"`` = the aligner's proposal from the graphs the
runs stored, or by default the order of the first step's calls), fused pairs are compared part
by part and parameters through the same weight plans as live (:mod:`padiff.offline.step_compare`),
and the same renderers and first-difference rule read the report. Ranks are paired by number and
every record carries its rank; steps or ranks present on one side only are reported as warnings.
At level ``stats`` the recorded statistics vectors are compared element by element instead of
the tensors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from padiff.errors import InputError, OptionsError
from padiff.layer_map import LayerPair
from padiff.offline import fmt
from padiff.offline.reader import RankRun, read_run
from padiff.offline.run_map import RunMap, resolve_map, skeleton_infos
from padiff.offline.run_soft import soft_pairs
from padiff.offline.shards import group_ranks
from padiff.offline.step_compare import RunPlans, StepComparer
from padiff.options import DiffOptions
from padiff.report.records import DiffReport


def resolve_pairs(pd: RankRun, pt: RankRun, layer_map: Any) -> tuple[list[LayerPair], str, list[str]]:
    """The layer pairs to compare, the route that made them, and notes (see :func:`resolve_map`)."""
    rm = resolve_map(pd, pt, layer_map)
    return rm.pairs, rm.route, rm.notes


def _tree(run: RankRun) -> list[tuple[str, str, int]]:
    return [(lay["path"], lay["cls"], int(lay.get("depth", 0))) for lay in run.skeleton.get("layers", [])]


def compare_runs(paddle_run: str | os.PathLike[str], torch_run: str | os.PathLike[str], layer_map: Any = None,
                 options: Mapping[str, Any] | None = None, *, conventions: bool = True,
                 save_map: str | os.PathLike[str] | None = None) -> DiffReport:
    """Compare two recorded runs (paddle first) and return the ``DiffReport`` (truthy when they agree).

    ``layer_map``: ``None`` (call order), ``"auto"``, a map file, a ``LayerMap`` or a path dict.
    ``options``: the ``compare`` options (``atol``, ``rtol``, ``compare_mode``, ``mismatch_ratio``,
    ``diff_phase``). ``conventions``: reconcile known framework conventions as ``compare`` does
    (:mod:`padiff.compare.conventions`: paddle's BatchNorm running variance is compared as torch's
    unbiased update gives it, and the record says so); ``False`` compares the raw values.
    ``save_map``: with ``layer_map="auto"``, write the proposal there (YAML or JSON) for a person
    to review and pass back as the map.
    """
    opts = DiffOptions.from_mapping(options)
    pd_ranks, pt_ranks = read_run(paddle_run), read_run(torch_run)
    if opts.compare_mode == "calibrated":
        _need_reference(pt_ranks, torch_run)
    pd_ranks, pd_notes = group_ranks(pd_ranks, pt_ranks)
    pt_ranks, pt_notes = group_ranks(pt_ranks, pd_ranks)
    for ranks, want, arg in ((pd_ranks, "paddle", "paddle_run"), (pt_ranks, "torch", "torch_run")):
        got = {r.framework for r in ranks.values()}
        if got != {want}:
            where = os.fspath(paddle_run if want == "paddle" else torch_run)
            raise InputError(f"{arg} must be a {want} recording, but {where} "
                             f"holds {sorted(got)}; pass the paddle run first and the torch run second.")
    rep = DiffReport(options=opts.to_dict())
    rep.warnings += [f"paddle run: {n}" for n in pd_notes] + [f"torch run: {n}" for n in pt_notes]
    for side, ranks in (("paddle", pd_ranks), ("torch", pt_ranks)):
        for r in ranks.values():
            rep.warnings += [f"{side} rank {r.meta.get('rank')}: {w}" for w in r.warnings]
    for r in sorted(set(pd_ranks) ^ set(pt_ranks)):
        side = "paddle" if r in pd_ranks else "torch"
        rep.warnings.append(f"rank {r} was recorded by the {side} run only; it is not compared.")
    common = sorted(set(pd_ranks) & set(pt_ranks))
    if not common:
        raise InputError("the two runs share no rank: nothing to compare.")
    first_pd, first_pt = pd_ranks[common[0]], pt_ranks[common[0]]
    rm = resolve_map(first_pd, first_pt, layer_map)
    _save_proposal(rm, save_map)
    # the parameter-free layers compare pairs while the models run (a map leaves them out for that reason)
    extra, soft_notes = soft_pairs(first_pd, first_pt, rm.pairs)
    rm.pairs += extra
    rm.notes += soft_notes
    rep.mapping_route, rep.mapping = rm.route, [p.to_dict() for p in rm.pairs]
    rep.mapping += [{"paddle_path": pp.paddle_param, "torch_path": pp.torch_param, "param": True} for pp in rm.params]
    rep.warnings += rm.notes
    plans = RunPlans.of(first_pd, first_pt, rm.pairs)
    rep.warnings += plans.warnings
    rep.paddle_tree, rep.torch_tree = _tree(first_pd), _tree(first_pt)
    rep.paddle_root_class = str(first_pd.skeleton.get("root_class", ""))
    rep.torch_root_class = str(first_pt.skeleton.get("root_class", ""))
    steps_seen: set[int] = set()
    stages: set[str] = set()
    for r in common:
        pd, pt = pd_ranks[r], pt_ranks[r]
        if pd.meta.get("level") != pt.meta.get("level"):
            rep.warnings.append(f"rank {r}: levels differ (paddle {pd.meta.get('level')}, torch "
                                f"{pt.meta.get('level')}); statistics are compared.")
        for s in sorted(set(pd.steps) ^ set(pt.steps)):
            side = "paddle" if s in pd.steps else "torch"
            rep.warnings.append(f"rank {r}: step {s} was recorded by the {side} run only; it is not compared.")
        for s in sorted(set(pd.steps) & set(pt.steps)):
            steps_seen.add(s)
            dp, dt = pd.steps[s].get("digests", []), pt.steps[s].get("digests", [])
            if dp != dt:
                rep.warnings.append(f"rank {r}, step {s}: the two runs were fed different inputs (root input "
                                    f"digests {dp} vs {dt}); differences may come from the data, not the models.")
            cmp = StepComparer(rep, r, s, pd, pt, opts, multi=len(common) > 1 or r != 0, conventions=conventions)
            stages |= cmp.run(rm.pairs, rm.params, plans)
    rep.steps = len(steps_seen)
    rep.stages = [s for s in fmt.STAGES if s in stages]
    return rep


def _need_reference(pt_ranks: Mapping[int, RankRun], torch_run: str | os.PathLike[str]) -> None:
    """``compare_mode="calibrated"`` judges against the torch run's float64 reference: refuse a run without one."""
    missing = sorted(r for r, run in pt_ranks.items()
                     if run.framework == "torch" and run.meta.get("reference") != "float64")
    if missing:
        raise OptionsError(
            f"compare_mode='calibrated' needs the torch run's float64 reference, but {os.fspath(torch_run)} "
            f"(rank {', '.join(map(str, missing))}) was recorded without one. Record the torch side with "
            "padiff.Recorder(model, out_dir, reference='float64') (and rec.loss(loss, fn=...) to calibrate the "
            "loss too), or compare with compare_mode='mean'.")


def _save_proposal(rm: RunMap, path: str | os.PathLike[str] | None) -> None:
    """Write the ``"auto"`` proposal for review (a map file :func:`compare_runs` and ``compare`` both take)."""
    if path is None:
        return
    if rm.proposal is None:
        raise InputError("save_map writes the proposal of layer_map='auto'; with a given map there is none to save.")
    rm.proposal.save(os.fspath(path))


__all__ = ["compare_runs", "resolve_pairs", "skeleton_infos"]
