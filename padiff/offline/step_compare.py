"""One step of one rank: every recorded entry of a pair against the other run's, into typed records.

The records are the live engine's (:class:`~padiff.report.records.Comparison`): the same
stages, the same pair naming and items (``output``, ``grad of output[0]``, a fused pair's
``output [8:16] of axis -1`` per part, parameters by paddle name, a parameter pair as
``w <-> fc.weight``), so the same first-difference rule reads both. Fused outputs and
gradients are cut with :mod:`padiff.compare.fused` as live; parameters are converted by the
plans of :mod:`padiff.offline.run_plans`, made by the inference the live weight copy uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np

from padiff.compare.arrays import structure_mismatch
from padiff.compare.calibrated import allowed_ratio, noisy_update
from padiff.compare.conventions import BATCHNORM_VARIANCE_NOTE
from padiff.compare.fused import axis_of, describe, part_indices, take
from padiff.compare.verdict import verdict
from padiff.errors import WeightAssignError
from padiff.layer_map import LayerPair, ParamPair
from padiff.offline import fmt
from padiff.offline.capture import UNBIASED_VARIANCE
from padiff.offline.entry_compare import Reference, calibrated, compare_entry, compare_shards, entry_array
from padiff.offline.reader import RankRun
from padiff.offline.run_plans import Skeleton, pair_label, plan_param_recorded, plan_recorded, source
from padiff.offline.shards import Merged, ShardGroup, shard_note
from padiff.options import DiffOptions
from padiff.report.records import Comparison, DiffReport, Stage, Stats
from padiff.weights.plan import PairPlan


def item_name(base: str, i: int, n: int) -> str:
    """``"output"`` for a single tensor, ``"output[1]"`` among several (the live engine's naming)."""
    return f"{base}[{i}]" if n > 1 else base


def out_index(item: str) -> int:
    """The output index of a recorded ``out[k]`` item."""
    return int(item[4:-1]) if item.startswith("out[") and item.endswith("]") else 0


@dataclass
class RunPlans:
    """The plans of a comparison, made once from the first rank's skeletons and reused for every step."""

    pd: Skeleton
    pt: Skeleton
    plans: dict[int, PairPlan | None]
    warnings: list[str]

    @classmethod
    def of(cls, pd: RankRun, pt: RankRun, pairs: list[LayerPair]) -> RunPlans:
        """Plan every pair; a pair without a plan is a warning (its outputs are still compared)."""
        out = cls(Skeleton.of(pd.skeleton), Skeleton.of(pt.skeleton), {}, [])
        for k, pair in enumerate(pairs):
            if not pair.paddle_path and not pair.torch_path and not pair.opaque:
                out.plans[k] = None  # the root pair's own tensors: those of its children's pairs
                continue
            try:
                out.plans[k] = plan_recorded(pair, out.pd, out.pt, pairs)
            except WeightAssignError as e:
                out.plans[k] = None
                out.warnings.append(f"parameters not compared: {e}")
        return out


class StepComparer:
    """Compares one step of one rank and appends its records to ``rep``."""

    def __init__(self, rep: DiffReport, rank: int, step: int, pd: RankRun, pt: RankRun, opts: DiffOptions,
                 multi: bool, conventions: bool) -> None:
        self.rep, self.rank, self.step, self.pd, self.pt = rep, rank, step, pd, pt
        self.opts, self.multi, self.conventions = opts, multi, conventions
        self.pl, self.tl = pd.steps[step], pt.steps[step]
        self.use_stats = pd.meta.get("level") == "stats" or pt.meta.get("level") == "stats"
        self.p_ten = {} if self.use_stats else pd.tensors(step)
        self.t_ten = {} if self.use_stats else pt.tensors(step)
        self.p_by = {e["key"]: e for e in self.pl["entries"]}
        self.t_by = {e["key"]: e for e in self.tl["entries"]}
        self.order_p = {p: i for i, p in enumerate(self.pl.get("call_order", []))}
        self.t_flags = {lay["path"]: set(lay.get("conventions", [])) for lay in pt.skeleton.get("layers", [])}
        self.stages: set[str] = set()
        self.used_p: set[str] = set()
        self.used_t: set[str] = set()
        self.one_sided: dict[str, list[str]] = {"paddle": [], "torch": []}
        # compare_mode="calibrated": the torch run's float64 reference of this step
        self.calibrated = opts.compare_mode == "calibrated"
        has_ref = self.calibrated and not self.use_stats and getattr(pt, "has_reference", False)
        self.t_ref: dict[str, np.ndarray] = pt.reference_tensors(step) if has_ref else {}
        self.scale_before: dict[str, float] = {}  # backward key -> the pass's gradient scale when it arrived
        self.scale_after: float = 0.0  # the last pass's gradient scale (parameter gradients are judged after it)
        self.noise_grads: set[tuple[str, str]] = set()  # (pair, paddle name): gradient at rounding level

    # --- entry look-up ---------------------------------------------------------------------
    def p_entry(self, stage: str, path: str, call: int, item: str, micro: int) -> dict[str, Any] | None:
        """The paddle run's entry under the shared key (:func:`padiff.offline.fmt.entry_key`)."""
        return self.p_by.get(fmt.entry_key(stage, path, call, item, micro))

    def t_entry(self, stage: str, path: str, call: int, item: str, micro: int) -> dict[str, Any] | None:
        """The torch run's entry under the shared key."""
        return self.t_by.get(fmt.entry_key(stage, path, call, item, micro))

    def wanted(self, stage: str) -> bool:
        """Whether the options compare ``stage``."""
        if stage in ("forward", "loss"):
            return self.opts.checks_forward
        if stage in ("backward", "grad"):
            return self.opts.checks_backward
        return True

    # --- the float64 reference (compare_mode="calibrated") --------------------------------------
    def ref(self, te: dict[str, Any]) -> Reference | None:
        """The torch entry's float64 reference (None outside calibrated comparisons), with the gradient
        scale a gradient is judged at (as the live engine measures it: the largest mean |grad| so far in
        the backward pass, over paired layers' output gradients in the order torch computed them)."""
        if not self.calibrated:
            return None
        scale = self.scale_before.get(te["key"], 0.0) if te["stage"] == "backward" else \
            self.scale_after if te["stage"] == "grad" else 0.0
        return Reference.of(te, self.t_ref, scale, k=allowed_ratio(self.step))

    def _gradient_scales(self, pairs: list[LayerPair]) -> None:
        paired = {p for pair in pairs if pair.compare_output for p in pair.torch_paths if p}
        scale, micro = 0.0, None
        for e in self.tl["entries"]:
            if e["stage"] != "backward" or e["path"] not in paired:
                continue
            if e["micro"] != micro:  # a new backward pass
                scale, micro = 0.0, e["micro"]
            self.scale_before[e["key"]] = scale
            size = e["stats"][4]  # mean |grad|
            if size == size:  # not NaN
                scale = max(scale, float(size))
        self.scale_after = scale

    # --- records ---------------------------------------------------------------------------
    def add(self, stage: str, p_path: str, t_path: str, p_cls: str, t_cls: str, stats: Stats, item: str,
            order: int, micro: int = 0, dtype: str = "", call: int = 0) -> None:
        """Append one record, named as the live engine names it (plus micro-step and rank when several)."""
        if self.pl.get("micro_steps", 1) > 1 and stage not in ("grad", "weight"):
            item = f"{item}, micro-step {micro}"
        if self.multi:
            item = f"rank {self.rank}: {item}"
        self.rep.records.append(Comparison(cast(Stage, stage), self.step, p_path, t_path, p_cls, t_cls, stats,
                                           call=call, item=item, order=order,
                                           depth=0 if not p_path else p_path.count(".") + 1, dtype=dtype))
        self.stages.add(stage)

    def order(self, stage: str, path: str, call: int, micro: int) -> int:
        """Position in run order within a stage (backward runs in reverse call order)."""
        n = max(len(self.order_p), 1)
        pos = self.order_p.get(path, n)
        return micro * 10 * n + (n - pos if stage == "backward" else pos) * 4 + call

    def missing(self, side: str, stage: str, path: str, item: str) -> None:
        """A tensor of a paired layer recorded by one run only (a warning, as before)."""
        self.one_sided[side].append(f"{stage} {path or '<root>'} [{item}]")

    # --- the step --------------------------------------------------------------------------
    def run(self, pairs: list[LayerPair], params: list[ParamPair], plans: RunPlans) -> set[str]:
        """Compare the loss, every pair's outputs, gradients and parameters, and the parameter pairs."""
        if self.calibrated:
            self._gradient_scales(pairs)
        self._loss()
        for k, pair in enumerate(pairs):
            if pair.compare_output:
                for stage in ("forward", "backward"):
                    if self.wanted(stage):
                        self._outputs(stage, pair)
            plan = plans.plans.get(k)
            if plan is not None:
                for stage in ("grad", "weight"):
                    if self.wanted(stage):
                        self._params(stage, pair, plan, plans)
        for k, pp in enumerate(params):
            for stage in ("grad", "weight"):
                if self.wanted(stage):
                    self._param_pair(stage, k, pp, plans)
        self._warn_one_sided(pairs)
        return self.stages

    def _loss(self) -> None:
        if not self.wanted("loss"):
            return
        for e in self.pl["entries"]:
            if e["stage"] != "loss":
                continue
            te = self.t_entry("loss", "", e["call"], e["item"], e["micro"])
            if te is None:
                self.missing("paddle", "loss", "", e["item"])
                continue
            self.used_t.add(te["key"])
            stats = compare_entry(e, te, self.p_ten, self.t_ten, None, self.opts, self.use_stats, self.ref(te))
            self.add("loss", "", "", "loss", "loss", stats, "loss", self.order("loss", "", 0, e["micro"]),
                     e["micro"], e.get("dtype", ""))

    def _outputs(self, stage: str, pair: LayerPair) -> None:
        """A pair's layer outputs (``forward``) or output gradients (``backward``), call by call."""
        if pair.torch_parts:
            fused, parts, side = pair.paddle_path, pair.torch_parts, "torch"
        elif pair.paddle_parts:
            fused, parts, side = pair.torch_path, pair.paddle_parts, "paddle"
        else:
            self._plain_outputs(stage, pair)
            return
        fused_by = self.t_by if side == "paddle" else self.p_by
        for e in [e for e in fused_by.values() if e["stage"] == stage and e["path"] == fused]:
            self._fused_output(stage, pair, e, parts, side)

    def _plain_outputs(self, stage: str, pair: LayerPair) -> None:
        root = not pair.paddle_path and not pair.torch_path
        if root and stage == "backward":
            return  # the gradient of the model output is the loss's: the live run compares it neither
        mine = [e for e in self.pl["entries"] if e["stage"] == stage and e["path"] == pair.paddle_path]
        counts: dict[tuple[int, int], int] = {}
        for e in mine:
            counts[e["call"], e["micro"]] = counts.get((e["call"], e["micro"]), 0) + 1
        for e in mine:
            te = self.t_entry(stage, pair.torch_path, e["call"], e["item"], e["micro"])
            if te is None:
                self.missing("paddle", stage, e["path"], e["item"])
                continue
            self.used_t.add(te["key"])
            i, n = out_index(e["item"]), counts[e["call"], e["micro"]]
            base = ("model output" if root else "output") if stage == "forward" else "grad of output"
            item = item_name(base, i, n) if stage == "forward" else item_name(base, i, 2)
            stats, note = self._compare(stage, e, te, None)
            self.add(stage, pair.paddle_path, pair.torch_path, e.get("cls", pair.paddle_class),
                     te.get("cls", pair.torch_class), stats, f"{item} ({note})" if note else item,
                     self.order(stage, e["path"], e["call"], e["micro"]), e["micro"], e.get("dtype", ""), e["call"])

    def _compare(self, stage: str, e: dict[str, Any], te: dict[str, Any],
                 fn: Callable[[list[np.ndarray]], np.ndarray] | None) -> tuple[Stats, str]:
        ref = self.ref(te)
        if isinstance(self.pd, ShardGroup) or isinstance(self.pt, ShardGroup):
            return compare_shards(self.step, e, te, self.pd, self.pt, self.p_ten, self.t_ten, fn, self.opts,
                                  self.use_stats, ref)
        return compare_entry(e, te, self.p_ten, self.t_ten, fn, self.opts, self.use_stats, ref), ""

    def _fused_output(self, stage: str, pair: LayerPair, fe: dict[str, Any], parts: tuple[str, ...],
                      split: str) -> None:
        """One fused output against its parts: each part against its slice (live's :mod:`~padiff.compare.fused`)."""
        get = self.p_entry if split == "paddle" else self.t_entry
        pes = [get(stage, part, fe["call"], fe["item"], fe["micro"]) for part in parts]
        if any(pe is None for pe in pes):
            self.missing("torch" if split == "paddle" else "paddle", stage, fe["path"], fe["item"])
            return
        fused_run, part_run = (self.pt, self.pd) if split == "paddle" else (self.pd, self.pt)
        f_ten, p_ten = (self.t_ten, self.p_ten) if split == "paddle" else (self.p_ten, self.t_ten)
        whole = entry_array(fused_run, self.step, f_ten, fe, None)
        merged = self._merged_parts(part_run, fe, pes, pair.axis)  # type: ignore[arg-type]
        arrs = ([m.array for m in merged] if merged is not None
                else [entry_array(part_run, self.step, p_ten, pe, None) for pe in pes])  # type: ignore[arg-type]
        (self.used_t if split == "paddle" else self.used_p).add(fe["key"])
        self.used_t.update(pe["key"] for pe in pes if split == "torch")  # type: ignore[index]
        i, grad = out_index(fe["item"]), stage == "backward"
        n = sum(1 for e in (self.t_by if split == "paddle" else self.p_by).values()
                if e["stage"] == stage and e["path"] == fe["path"] and e["call"] == fe["call"]
                and e["micro"] == fe["micro"])
        base = item_name("output", i, n) if not grad else item_name("grad of output", i, 2)
        if whole is None or any(a is None for a in arrs):
            self._fused_stats(stage, pair, fe, pes, split, base)  # type: ignore[arg-type]
            return
        ax = axis_of(pair.axis, whole.ndim)
        # the float64 reference of the torch side: its parts' own, or the fused tensor's (cut like it)
        t_whole = self.ref(fe) if split == "paddle" else None
        t_parts = [self.ref(pe) for pe in pes] if split == "torch" else []  # type: ignore[arg-type]
        if merged is not None or isinstance(self.pt, ShardGroup):
            t_whole = Reference(why="tensor-parallel shards are merged without a float64 reference")
            t_parts = [t_whole] * len(pes)
        sizes = [int(a.shape[ax]) if ax is not None and a.ndim == whole.ndim else -1 for a in arrs]  # type: ignore[union-attr]
        index = None if ax is None or min(sizes) < 0 else part_indices(sizes, pair.groups)
        fits = index is not None and ax is not None and sum(sizes) == whole.shape[ax]
        for k, (pe, arr) in enumerate(zip(pes, arrs)):
            assert pe is not None and arr is not None
            p_path, t_path = (pe["path"], pair.torch_path) if split == "paddle" else (pair.paddle_path, pe["path"])
            p_cls = pe.get("cls", "") if split == "paddle" else fe.get("cls", "")
            t_cls = fe.get("cls", "") if split == "paddle" else pe.get("cls", "")
            order = self.order(stage, pair.paddle_path if split == "torch" else pe["path"], fe["call"], fe["micro"])
            t_ref = t_whole if split == "paddle" else (t_parts[k] if t_parts else None)
            if not fits:
                p_arr, t_arr = (arr, whole) if split == "paddle" else (whole, arr)
                stats = structure_mismatch(1, len(parts)) if ax is None else self._verdict(
                    p_arr, t_arr, t_ref, fe, gradient=grad)
                self.add(stage, p_path, t_path, p_cls, t_cls, stats, base, order, fe["micro"], fe.get("dtype", ""),
                         fe["call"])
                continue
            assert index is not None and ax is not None
            piece = take(whole, ax, index[k])
            p_arr, t_arr = (arr, piece) if split == "paddle" else (piece, arr)
            if split == "torch":
                item = (f"{base} {describe(index[k], pair.groups)}" if grad
                        else f"{base} {describe(index[k], pair.groups)} of axis {pair.axis}")
            else:
                item = base if grad else f"{base} (part {k + 1}/{len(parts)} of the concatenation)"
            if split == "paddle" and t_ref is not None and t_ref.array is not None:
                t_ref = Reference(take(t_ref.array, ax, index[k]), None, "", t_ref.allowance, t_ref.noise_scale)
            stats = self._verdict(p_arr, t_arr, t_ref, fe, gradient=False, of_gradients=grad)
            if merged is not None and merged[k].how and isinstance(part_run, ShardGroup):
                item += f" ({shard_note(merged[k], split, part_run.ranks, p_arr, t_arr, stats, self.opts)})"
            self.add(stage, p_path, t_path, p_cls, t_cls, stats, item, order, fe["micro"], fe.get("dtype", ""),
                     fe["call"])

    def _verdict(self, a: np.ndarray, b: np.ndarray, ref: Reference | None, e: dict[str, Any], *,
                 gradient: bool, of_gradients: bool = False) -> Stats:
        """One verdict under the options: calibrated against ``ref`` when the mode says so.

        ``gradient``: reconcile broadcast shapes as gradients; ``of_gradients``: the arrays are gradients
        (judged as noise against the pass's gradient scale), as the live engine's fused parts are."""
        if not self.calibrated:
            return verdict(a, b, self.opts, gradient=gradient)
        return calibrated(a, b, ref, str(e.get("dtype", "")), self.opts, gradient=gradient,
                          of_gradients=gradient or of_gradients)

    def _fused_stats(self, stage: str, pair: LayerPair, fe: dict[str, Any], pes: list[dict[str, Any]], split: str,
                     base: str) -> None:
        """A fused pair recorded at level ``stats``: the fused tensor's statistics against those of all its parts
        together (:func:`padiff.offline.fmt.combined_stats`), one record for the pair, as the parts' own slices
        of the fused tensor were not recorded."""
        counts = [int(np.prod(pe["shape"])) for pe in pes]
        n_whole = int(np.prod(fe["shape"]))
        if sum(counts) != n_whole or isinstance(self.pd, ShardGroup) or isinstance(self.pt, ShardGroup):
            self.rep.warnings.append(f"rank {self.rank}, step {self.step}: the fused pair {pair.label('paddle')} <-> "
                                     f"{pair.label('torch')} is compared at level 'full' only (its parts do not make "
                                     "up the fused tensor, or are sharded).")
            return
        together = {"key": "", "stage": stage, "shape": [n_whole],
                    "stats": fmt.combined_stats([(pe["stats"], n) for pe, n in zip(pes, counts)])}
        whole = {**fe, "shape": [n_whole]}
        p_e, t_e = (together, whole) if split == "paddle" else (whole, together)
        stats = compare_entry(p_e, t_e, {}, {}, None, self.opts, True)
        p_cls = fe.get("cls", "") if split == "torch" else "+".join(pe.get("cls", "") for pe in pes)
        t_cls = fe.get("cls", "") if split == "paddle" else "+".join(pe.get("cls", "") for pe in pes)
        self.add(stage, pair_label(pair, "paddle"), pair_label(pair, "torch"), p_cls, t_cls, stats,
                 f"{base} (its {len(pes)} parts together, by statistics)",
                 self.order(stage, pair.paddle_path, fe["call"], fe["micro"]), fe["micro"], fe.get("dtype", ""),
                 fe["call"])

    def _merged_parts(self, part_run: Any, fe: dict[str, Any], pes: list[dict[str, Any]],
                      axis: int) -> list[Merged] | None:
        """The parts of a fused pair merged from a tensor-parallel run's ranks (None when not sharded).

        A part recorded as a plain local tensor (a column-parallel output) has no placement; when the
        parts' local widths times the ranks make up the fused width, each part is merged along the axis.
        """
        if not isinstance(part_run, ShardGroup):
            return None
        world, full = len(part_run.ranks), list(fe["shape"])
        ax = axis_of(axis, len(full))
        local = [list(pe["shape"]) for pe in pes]
        wants: list[list[int] | None] = [None] * len(pes)
        if ax is not None and all(len(s) == len(full) for s in local) and \
                sum(s[ax] for s in local) * world == full[ax]:
            wants = [[d * world if i == ax else d for i, d in enumerate(s)] for s in local]
        return [part_run.merged(self.step, pe, want, self.use_stats) for pe, want in zip(pes, wants)]

    def _params(self, stage: str, pair: LayerPair, plan: PairPlan, plans: RunPlans) -> None:
        """A pair's parameter gradients or values after the step, each through its link (as live)."""
        p_label, t_label = pair_label(pair, "paddle"), pair_label(pair, "torch")
        for link in plan.links:
            ps = source(plan, "paddle", link.paddle_name, plans.pd)
            tss = [source(plan, "torch", n, plans.pt) for n in link.torch_names]
            e = self.p_entry(stage, ps.path, 0, ps.item, 0)
            tes = [self.t_entry(stage, ts.path, 0, ts.item, 0) for ts in tss]
            if e is None and all(te is None for te in tes):
                continue
            if e is None or any(te is None for te in tes):
                side = "paddle" if e is not None else "torch"
                self.missing(side, stage, ps.path if e is not None else tss[0].path,
                             ps.item if e is not None else tss[0].item)
                continue
            self.used_p.add(e["key"])
            self.used_t.update(te["key"] for te in tes if te is not None)
            stats, note = self._param_stats(stage, e, [te for te in tes if te is not None], link.fn, pair)
            if stats is None:
                continue
            if stats.note_kind == "noise" and stage == "grad":
                self.noise_grads.add((p_label, link.paddle_name))
            elif stage == "weight" and (p_label, link.paddle_name) in self.noise_grads and stats.mode == "calibrated":
                stats = noisy_update(stats)
            item = f"{link.paddle_name} ({note})" if note else link.paddle_name
            self.add(stage, p_label, t_label, plan.paddle_class, plan.torch_class, stats, item,
                     self.order(stage, pair.paddle_path, 0, 0), dtype=e.get("dtype", ""))

    def _param_stats(self, stage: str, e: dict[str, Any], tes: list[dict[str, Any]],
                     fn: Callable[[list[np.ndarray]], np.ndarray], pair: LayerPair) -> tuple[Stats | None, str]:
        if len(tes) == 1:
            fixed = e.get("torch_convention") if self.conventions and stage == "weight" else None
            if fixed and UNBIASED_VARIANCE in self.t_flags.get(tes[0]["path"], ()):
                stats = compare_entry({**e, **fixed}, tes[0], self.p_ten, self.t_ten, fn, self.opts, self.use_stats,
                                      self.ref(tes[0]))
                return replace(stats, reconciled=BATCHNORM_VARIANCE_NOTE), ""
            return self._compare(stage, e, tes[0], fn)
        arr = entry_array(self.pd, self.step, self.p_ten, e, None)
        parts = [entry_array(self.pt, self.step, self.t_ten, te, None) for te in tes]
        counts = [int(np.prod(te["shape"])) for te in tes]
        if (arr is None or any(p is None for p in parts)) and sum(counts) == int(np.prod(e["shape"])) \
                and not isinstance(self.pd, ShardGroup) and not isinstance(self.pt, ShardGroup):
            # several torch tensors put together into one (the same elements, rearranged): by statistics, as
            # a fused output (:meth:`_fused_stats`)
            together = {"key": "", "stage": stage, "shape": list(e["shape"]),
                        "stats": fmt.combined_stats([(te["stats"], n) for te, n in zip(tes, counts)])}
            return compare_entry(e, together, {}, {}, None, self.opts, True), "by statistics"
        if arr is None or any(p is None for p in parts):
            self.rep.warnings.append(f"rank {self.rank}, step {self.step}: {stage} of {e['item']} of "
                                     f"{pair.label('paddle')} <-> {pair.label('torch')} is made of several torch "
                                     "tensors: compared at level 'full' only.")
            return None, ""
        ref = None
        if self.calibrated:
            refs = [self.ref(te) for te in tes]
            arrays = [r.array for r in refs if r is not None and r.array is not None]
            if len(arrays) == len(tes):
                ref = Reference(arrays[0], None, "", max(r.allowance for r in refs if r is not None),
                                refs[0].noise_scale if refs[0] is not None else 0.0).converted(lambda _: fn(arrays))
            else:
                ref = Reference(why=next((r.why for r in refs if r is not None and r.why), "none recorded"))
        return self._verdict(arr, fn(parts), ref, tes[0], gradient=stage == "grad"), ""  # type: ignore[arg-type]

    def _param_pair(self, stage: str, k: int, pp: ParamPair, plans: RunPlans) -> None:
        try:
            ps, ts, link = plan_param_recorded(pp, plans.pd, plans.pt)
        except WeightAssignError as err:
            msg = f"parameters not compared: {err}"
            if msg not in self.rep.warnings:
                self.rep.warnings.append(msg)
            return
        e = self.p_entry(stage, ps.path, 0, ps.item, 0)
        te = self.t_entry(stage, ts.path, 0, ts.item, 0)
        if e is None or te is None:
            if e is not None or te is not None:
                self.missing("paddle" if e is not None else "torch", stage, ps.path if e else ts.path, pp.paddle_param)
            return
        self.used_p.add(e["key"])
        self.used_t.add(te["key"])
        stats, note = self._compare(stage, e, te, link.fn)
        item = f"{pp.paddle_param} <-> {pp.torch_param}" + (f" ({note})" if note else "")
        n = max(len(self.order_p), 1)
        self.add(stage, ps.path, ts.path, plans.pd.cls(ps.path), plans.pt.cls(ts.path), stats, item,
                 (n + 1) * 4 + k, dtype=e.get("dtype", ""))

    def _warn_one_sided(self, pairs: list[LayerPair]) -> None:
        paired_t = {p for pair in pairs for p in pair.torch_paths}
        t_only = [f"{e['stage']} {e['path'] or '<root>'} [{e['item']}]" for e in self.tl["entries"]
                  if e["stage"] != "loss" and e["key"] not in self.used_t and e["path"] in paired_t
                  and e["path"]]
        for side, items in (("paddle", self.one_sided["paddle"]), ("torch", self.one_sided["torch"] + t_only)):
            if items:
                self.rep.warnings.append(
                    f"rank {self.rank}, step {self.step}: {len(set(items))} tensor(s) of paired layers were recorded "
                    f"by the {side} run only and not compared (a frozen parameter, an output no gradient reached, or "
                    f"a different call count): {', '.join(sorted(set(items))[:6])}"
                    + (" ..." if len(set(items)) > 6 else ""))
