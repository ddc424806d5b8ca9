"""Parameter comparisons: gradients after backward (``grad``) and values after the step (``weight``).

Each pair seen in the run is compared through the weight plan that
:mod:`padiff.weights.pair_plan` makes for it, so the torch tensors are converted to paddle's
layout exactly as the weight copy converts them (transposes, fused splits, special inits).
A tensor present on one side only is a difference. Paddle's biased BatchNorm running
variance is put in torch's convention first (:mod:`padiff.compare.conventions`). The map's
parameter-level pairs (``paddle param <-> torch param``) come after the layer pairs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from padiff.adapters import PADDLE, TORCH, StateEntry, pair_state
from padiff.compare.calibrated import noisy_update
from padiff.compare.conventions import BATCHNORM_VARIANCE_NOTE, BatchNormVariance
from padiff.errors import PadiffInternalError, WeightAssignError
from padiff.layer_map import ResolvedMap
from padiff.runtime.engine.comparisons import Comparer, one_sided
from padiff.runtime.engine.pairs import PairsSeen, SeenPair
from padiff.runtime.engine.recording import SideRecorder
from padiff.runtime.engine.reference import Ref
from padiff.runtime.engine.sink import Site, SortKey
from padiff.runtime.pairing import Role
from padiff.weights.opaque_plan import inner_pairs, plan_opaque
from padiff.weights.pair_plan import PairPlan, plan_fused, plan_pair, plan_param, torch_arrays


class ParamComparer:
    """Compares the parameters of one run's pairs; weight plans are made once per pair."""

    def __init__(self, comparer: Comparer, paddle: SideRecorder, torch: SideRecorder, resolved: ResolvedMap,
                 batchnorm: BatchNormVariance) -> None:
        self.cmp = comparer
        self.sink = comparer.sink
        self.p = paddle
        self.t = torch
        self.resolved = resolved
        self.bn = batchnorm
        self._plans: dict[tuple[str, str], PairPlan | None] = {}
        self._noise_grads: set[tuple[str, str]] = set()  # (paddle path, name): gradient at rounding level, this step

    def compare(self, stage: str, seen: PairsSeen) -> None:
        """Every pair's parameter gradients (``stage="grad"``) or values (``"weight"``), in paddle layout."""
        if stage == "grad":
            self._noise_grads.clear()
        for (p_path, t_path), pair in seen.items():
            self._pair(stage, p_path, t_path, pair)
        self._param_pairs(stage)

    def _pair(self, stage: str, p_path: str, t_path: str, pair: SeenPair) -> None:
        p_role, t_role = pair.paddle, pair.torch
        plan = self._plan(p_role, t_role)
        if plan is None:
            return
        if t_role.pair is not None and t_role.pair.split_side:
            p_path, t_path = t_role.pair.label("paddle"), t_role.pair.label("torch")
        site = Site.of_roles(p_path, t_path, p_role, t_role)
        grad = stage == "grad"
        p_state, t_state = self._state(self.p, p_role), self._state(self.t, t_role)
        # views of both models' memory, compared at once: no host copy of either model's gradients or values
        converted = plan.convert(torch_arrays(t_state, "grad" if grad else "value", view=True))
        refs, why, allowance = self._reference(t_role, plan, grad)
        t_dtype = TORCH.dtype_name(t_state[0].tensor) if t_state else ""
        t_present = {e.name for e in t_state if (TORCH.grad(e.tensor) if grad else e.tensor) is not None}
        for k, e in enumerate(p_state):
            link = next((lk for lk in plan.links if lk.paddle_name == e.name), None)
            if link is None:
                continue
            t_has = all(n in t_present for n in link.torch_names)
            if grad and not e.trainable and not t_has:
                continue  # a buffer, or a parameter frozen on both sides
            # frozen on the paddle side only: no paddle grad, which is a difference like the mirror case
            p_t = (PADDLE.grad(e.tensor) if e.trainable else None) if grad else e.tensor
            if p_t is None and not t_has:
                continue
            key = SortKey.pair_param(pair.index, k, reverse=grad)
            if p_t is None or e.name not in converted:
                side = "torch" if p_t is None else "paddle"
                self.sink.add(stage, site, one_sided(f"{stage} exists only on the {side} side"), item=e.name, key=key)
                continue
            p_arr = PADDLE.host_view(p_t)
            fixed = None if grad else self._batchnorm_corrected(p_path, t_path, e.name, link.torch_names, p_arr)
            ref = None if refs is None else Ref(refs.get(e.name), why, allowance)
            stats = (self.cmp.stats(p_arr, converted[e.name], ref=ref, dtype=t_dtype, of_gradients=grad)
                     if fixed is None
                     else replace(self.cmp.stats(fixed, converted[e.name], ref=ref, dtype=t_dtype),
                                  reconciled=BATCHNORM_VARIANCE_NOTE))
            if stats.note_kind == "noise" and grad:
                self._noise_grads.add((p_path, e.name))
            elif not grad and (p_path, e.name) in self._noise_grads and stats.mode == "calibrated":
                stats = noisy_update(stats)
            self.sink.add(stage, site, stats, item=e.name, key=key, dtype=PADDLE.dtype_name(e.tensor))

    def _reference(self, t_role: Role, plan: PairPlan,
                   grad: bool) -> tuple[dict[str, np.ndarray] | None, str, float]:
        """The float64 copy's tensors of this pair in paddle's layout (``None`` outside calibrated runs),
        why an entry has none, and the error the optimizers' weight-decay conventions explain (values)."""
        ref = self.cmp.reference
        if ref is None:
            return None, "", 0.0
        why = ref.params_why(grad) if grad else (ref.params_why(False) or ref.weights_why())
        if why:
            return {}, why, 0.0
        state = self._state(ref.rec, t_role)
        allowance = 0.0 if grad else max((ref.decay_allowance.get(id(e.tensor), 0.0) for e in state), default=0.0)
        try:
            return plan.convert(torch_arrays(state, "grad" if grad else "value")), "no float64 counterpart", allowance
        except Exception as e:  # noqa: BLE001 - a conversion the float64 copy cannot take: no reference
            return {}, f"the float64 copy's tensors could not be converted: {type(e).__name__}", 0.0

    def _param_pairs(self, stage: str) -> None:
        """Each parameter pair of the map: its gradient (``grad``) or value after the step (``weight``)."""
        for k, pp in enumerate(self.resolved.params):
            (pl, pn), (tl, tn) = pp.owner("paddle"), pp.owner("torch")
            p_e = next(e for e in self.p.owned.get(pl, []) if e.name == pn)
            t_e = next(e for e in self.t.owned.get(tl, []) if e.name == tn)
            if stage == "grad" and not p_e.trainable:
                continue
            p_layer, t_layer = self.p.layer_at(pl), self.t.layer_at(tl)
            plan = self._param_plan(k, pp, p_layer, p_e, t_layer, t_e)
            if plan is None:
                continue
            p_t = PADDLE.grad(p_e.tensor) if stage == "grad" else p_e.tensor
            t_t = TORCH.grad(t_e.tensor) if stage == "grad" else t_e.tensor
            if p_t is None and t_t is None:
                continue
            site = Site(pl, tl, type(p_layer).__name__, type(t_layer).__name__, 0 if pl == "" else pl.count(".") + 1)
            item, key = f"{pp.paddle_param} <-> {pp.torch_param}", SortKey.param_pair(k)
            if p_t is None or t_t is None:
                side = "torch" if p_t is None else "paddle"
                self.sink.add(stage, site, one_sided(f"{stage} exists only on the {side} side"), item=item, key=key)
                continue
            converted = plan.links[0].fn([TORCH.to_numpy(t_t)])
            ref = self._param_pair_reference(stage == "grad", tl, tn, plan)
            stats = self.cmp.stats(PADDLE.to_numpy(p_t), converted, ref=ref, dtype=TORCH.dtype_name(t_e.tensor),
                                   of_gradients=stage == "grad")
            self.sink.add(stage, site, stats, item=item, key=key, dtype=PADDLE.dtype_name(p_e.tensor))

    def _param_pair_reference(self, grad: bool, t_path: str, t_name: str, plan: PairPlan) -> Ref | None:
        """The float64 copy's tensor of a map's parameter pair in paddle's layout (None outside calibrated runs)."""
        ref = self.cmp.reference
        if ref is None:
            return None
        why = ref.params_why(grad) if grad else (ref.params_why(False) or ref.weights_why())
        if why:
            return Ref(None, why)
        twin = next((e.tensor for e in ref.rec.owned.get(t_path, []) if e.name == t_name), None)
        value = None if twin is None else (TORCH.grad(twin) if grad else twin)
        if value is None:
            return Ref(None, "no float64 counterpart")
        allowance = 0.0 if grad else ref.decay_allowance.get(id(twin), 0.0)
        try:
            return Ref(plan.links[0].fn([np.asarray(TORCH.to_numpy(value), dtype=np.float64)]), "", allowance)
        except Exception as e:  # noqa: BLE001 - a conversion the float64 copy cannot take: no reference
            return Ref(None, f"the float64 copy's tensor could not be converted: {type(e).__name__}")

    def _param_plan(self, k: int, pp: Any, p_layer: Any, p_e: StateEntry, t_layer: Any,
                    t_e: StateEntry) -> PairPlan | None:
        """Parameter pair ``k``'s plan, made once (a square weight oriented by the equal values before any step)."""
        key = ("param", str(k))
        if key not in self._plans:
            try:
                self._plans[key] = plan_param(pp, p_layer, [p_e], t_layer, [t_e], settle="values")
            except WeightAssignError as e:
                self.sink.warn(f"parameters not compared: {e}")
                self._plans[key] = None
        return self._plans[key]

    def _batchnorm_corrected(self, p_path: str, t_path: str, name: str, torch_names: tuple[str, ...] | list[str],
                             value: np.ndarray) -> np.ndarray | None:
        """Paddle's running variance in torch's convention, when this entry is one and torch's twin too."""
        if len(torch_names) != 1:
            return None
        p_owner, _, p_leaf = _join(p_path, name).rpartition(".")
        t_owner = _join(t_path, torch_names[0]).rpartition(".")[0]
        try:
            t_layer = self.t.layer_at(t_owner)
        except PadiffInternalError:
            return None
        if not TORCH.is_unbiased_batchnorm(t_layer):
            return None
        return self.bn.corrected(p_owner, p_leaf, value)

    def _state(self, rec: SideRecorder, role: Role) -> list[StateEntry]:
        if role.pair is not None and role.pair.split_side:
            return pair_state(rec.owned, role.pair.paths(rec.side.name), False)
        return pair_state(rec.owned, (role.path,), role.unit)

    def _plan(self, p_role: Role, t_role: Role) -> PairPlan | None:
        key = (p_role.path, t_role.path)
        if key not in self._plans:
            self._plans[key] = self._make_plan(p_role, t_role)
        return self._plans[key]

    def _make_plan(self, p_role: Role, t_role: Role) -> PairPlan | None:
        """The pair's weight plan; None (with a warning) where parameters cannot be compared one by one."""
        p_state, t_state = self._state(self.p, p_role), self._state(self.t, t_role)
        if not (p_state or t_state):
            return None
        fused = t_role.pair if t_role.pair is not None and t_role.pair.split_side else None
        try:
            if fused is not None:  # fused plans look up every part's class
                plan = plan_fused(fused, self.p.layer_table(), p_state, self.t.layer_table(), t_state)
            elif p_role.pair is not None and p_role.pair.opaque:  # the map's pairs inside it place their tensors
                plan = plan_opaque(p_role.path, t_role.path, inner_pairs(p_role.path, t_role.path, self.resolved.pairs),
                                   self.p.layer_table(), self.p.owned, self.t.layer_table(), self.t.owned)
            else:
                # the models hold the same weights here: a square weight's orientation is read from them
                plan = plan_pair(p_role.path, self.p.layer_at(p_role.path), p_state,
                                 t_role.path, self.t.layer_at(t_role.path), t_state, settle="values")
        except WeightAssignError as e:
            self.sink.warn(f"parameters not compared: {e}")
            return None
        for note in plan.notes:
            self.sink.warn_once(note)
        if plan.layer_init is not None:
            self.sink.warn(f"{p_role.path} <-> {t_role.path}: weights use a user special init, so its parameter "
                           "gradients and values are compared through the outputs only.")
            return None
        return plan


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
