"""Planning the weight copy of two whole models: which layer pairs with which, and each pair's plan.

The map's pairs come first (a mapped/opaque pair, or a pair with a special init, covers
its whole subtree), then the remaining layers that own tensors in definition order,
passing over ignored layers. Each pair gets a :class:`PairPlan` (special init, or
conversions inferred from shapes). No tensor is written here: :mod:`padiff.weights.assign`
applies the plans.
"""

from __future__ import annotations

import logging
from typing import Any

from padiff.adapters import PADDLE, TORCH, StateEntry, pair_state, subtree_state
from padiff.errors import WeightAssignError
from padiff.maps.types import LayerPair, ResolvedMap
from padiff.names import is_within, show
from padiff.weights.assign_message import build_error, skip_marks
from padiff.weights.identity_params import tensor_free_twins
from padiff.weights.opaque_plan import inner_pairs, plan_opaque
from padiff.weights.pair_plan import PairPlan, plan_fused, plan_pair, plan_param
from padiff.weights.special_init import is_special, lookup

log = logging.getLogger("padiff")


def covers_subtree(pair: LayerPair, p_layer: Any, t_layer: Any) -> bool:
    """A pair owns its whole subtree when it is opaque or has a special init (MHA, LSTM ...)."""
    return pair.opaque or lookup(p_layer, t_layer) is not None


class _Planner:
    """Holds both models' trees and ownership while pairs are planned, for plans and errors."""

    def __init__(self, layer: Any, module: Any, resolved: ResolvedMap) -> None:
        self.layer, self.module, self.resolved = layer, module, resolved
        self.p_layers = dict(PADDLE.named_layers(layer))
        self.t_layers = dict(TORCH.named_layers(module))
        self.p_owned = PADDLE.owned_state(layer)
        self.t_owned = TORCH.owned_state(module)
        self.p_tops: list[str] = []  # subtrees consumed by a pair
        self.t_tops: list[str] = []
        self.p_done: set[str] = set()
        self.t_done: set[str] = set()
        self.plans: list[PairPlan] = []

    def plan(self) -> list[PairPlan]:
        pairs = sorted(self._usable_pairs(), key=lambda pr: not covers_subtree(
            pr, self.p_layers[pr.paddle_path], self.t_layers[pr.torch_path]))
        for pair in pairs:
            self._explicit(pair)
        self._params()
        p_units = self._without_identity_twins("paddle", self._units("paddle"))
        t_units = self._without_identity_twins("torch", self._units("torch"))
        p_rest, t_rest = [u for u, _ in p_units], [u for u, _ in t_units]
        for i in range(max(len(p_units), len(t_units))):
            pu = p_units[i] if i < len(p_units) else None
            tu = t_units[i] if i < len(t_units) else None
            if pu is None or tu is None:
                self._unbalanced(pu and pu[0], tu and tu[0], p_rest, t_rest)
            assert pu is not None and tu is not None
            (pp, p_sub), (tp, t_sub) = pu, tu
            p_state = subtree_state(self.p_owned, pp) if p_sub else self.p_owned[pp]
            t_state = subtree_state(self.t_owned, tp) if t_sub else self.t_owned[tp]
            if p_sub:
                self.p_tops.append(pp)
            if t_sub:
                self.t_tops.append(tp)
            self._add(pp, tp, p_state, t_state)
        return self.plans

    def _usable_pairs(self) -> list[LayerPair]:
        """The map's pairs minus machine-made ones that cut into a special layer.

        A non-opaque pair (call-order discovery, structural proposal) that puts a layer
        inside or at a special layer (MultiHeadAttention, LSTM ...) against something that
        is not its special counterpart would split the special layer's tensors; it is
        dropped, and the special layer is paired as a whole unit in definition order.
        Opaque pairs (the user's ``map``) are always kept.
        """
        p_special = [p for p, o in self.p_layers.items() if is_special(o, 0)]
        t_special = [t for t, o in self.t_layers.items() if is_special(o, 1)]
        pairs = self.resolved.pairs
        # a special layer whose every tensor is covered by pairs inside it was split with
        # care (paddle MultiHeadAttention against a torch port with four Linear layers)
        whole = {("paddle", top) for top in p_special if self._covered("paddle", top, pairs)}
        whole |= {("torch", top) for top in t_special if self._covered("torch", top, pairs)}
        out = []
        for pr in pairs:
            p_obj, t_obj = self.p_layers[pr.paddle_path], self.t_layers[pr.torch_path]
            cut = [("paddle", top) for top in p_special if is_within(pr.paddle_path, top)]
            cut += [("torch", top) for top in t_special if is_within(pr.torch_path, top)]
            if pr.opaque or all(c in whole for c in cut) or covers_subtree(pr, p_obj, t_obj):
                out.append(pr)
            else:
                log.debug("assign_weight: pair %s <-> %s cuts into a special layer; paired by unit instead",
                          pr.paddle_path, pr.torch_path)
        return out

    def _covered(self, side: str, top: str, pairs: tuple[LayerPair, ...]) -> bool:
        """True when the pairs inside ``top`` together hold every tensor of its subtree."""
        owned = self.p_owned if side == "paddle" else self.t_owned
        needed = {id(e.tensor) for e in subtree_state(owned, top)}
        held: set[int] = set()
        for pr in pairs:
            path = pr.paddle_path if side == "paddle" else pr.torch_path
            if is_within(path, top) and path != top:
                held |= {id(e.tensor) for e in owned.get(path, [])}
        return bool(needed) and needed <= held

    def _units(self, side: str) -> list[tuple[str, bool]]:
        """Layers left to pair in definition order: ``(path, covers_subtree)``.

        A layer whose class has a special init on this side (MultiHeadAttention, LSTM, a
        user-registered block ...) is one unit with its whole subtree, so an attention
        layer pairs with its counterpart even without a map; other layers count when they
        own tensors themselves.
        """
        layers, owned = (self.p_layers, self.p_owned) if side == "paddle" else (self.t_layers, self.t_owned)
        out: list[tuple[str, bool]] = []
        tops: list[str] = []
        for path, obj in layers.items():
            if not self._free(side, path) or any(is_within(path, top) for top in tops):
                continue
            if is_special(obj, 0 if side == "paddle" else 1):
                done = self.p_done if side == "paddle" else self.t_done
                if any(is_within(p, path) and p not in done for p in owned):
                    out.append((path, True))
                    tops.append(path)
            elif path in owned:
                out.append((path, False))
        return out

    def _without_identity_twins(self, side: str, units: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
        """``units`` minus layers whose twin on the other side holds no tensors (an affine-free norm).

        The twin is the other side's layer at the same path, of the same kind, holding no
        tensor (:func:`padiff.weights.identity_params.tensor_free_twins`). The pair is planned
        at once: its tensors must sit at their identity value (a unit scale, a zero bias),
        which the plan notes; any other value is refused there, naming the tensor.
        """
        if side == "paddle":
            twins = set(tensor_free_twins(PADDLE, self.layer, TORCH, self.module))
        else:
            twins = set(tensor_free_twins(TORCH, self.module, PADDLE, self.layer))
        owned = self.p_owned if side == "paddle" else self.t_owned
        kept = []
        for path, sub in units:
            if sub or path not in twins:
                kept.append((path, sub))
                continue
            (self.p_done if side == "paddle" else self.t_done).add(path)
            if side == "paddle":
                self._add(path, path, owned[path], [])
            else:
                self._add(path, path, [], owned[path])
        return kept

    def _free(self, side: str, path: str) -> bool:
        tops, done = (self.p_tops, self.p_done) if side == "paddle" else (self.t_tops, self.t_done)
        if path in done or any(is_within(path, top) for top in tops):
            return False
        return not self.resolved.skipped(side, path)

    def _explicit(self, pair: LayerPair) -> None:
        pp, tp = pair.paddle_path, pair.torch_path
        if any(is_within(pp, top) for top in self.p_tops) or any(is_within(tp, top) for top in self.t_tops):
            return  # inside a pair that already covers its subtree
        p_obj, t_obj = self.p_layers[pp], self.t_layers[tp]
        if pair.split_side:
            self._fused(pair)
            return
        if covers_subtree(pair, p_obj, t_obj):
            p_state, t_state = subtree_state(self.p_owned, pp), subtree_state(self.t_owned, tp)
            self.p_tops.append(pp)
            self.t_tops.append(tp)
            if pair.opaque and (p_state or t_state):
                self._opaque(pair, p_state, t_state)
                return
        else:
            p_state, t_state = self.p_owned.get(pp, []), self.t_owned.get(tp, [])
            self.p_done.add(pp)
            self.t_done.add(tp)
        if p_state or t_state:
            self._add(pp, tp, p_state, t_state)

    def _opaque(self, pair: LayerPair, p_state: list[StateEntry], t_state: list[StateEntry]) -> None:
        """An opaque pair: the map's pairs inside both tops place their tensors, shapes the rest."""
        pp, tp = pair.paddle_path, pair.torch_path
        inner = inner_pairs(pp, tp, self.resolved.pairs)
        try:
            plan = plan_opaque(pp, tp, inner, self.p_layers, self.p_owned, self.t_layers, self.t_owned)
        except WeightAssignError as e:
            raise self.error(pp, tp, getattr(e, "reason", str(e)), p_state, t_state, cause=e) from e
        self.plans.append(plan)

    def _params(self) -> None:
        """Parameter pairs: one plan each; the layers holding them are then done (fully covered, or an error)."""
        covered: dict[tuple[str, str], set[str]] = {}
        for pp in self.resolved.params:
            (pl, pn), (tl, tn) = pp.owner("paddle"), pp.owner("torch")
            p_state, t_state = self.p_owned.get(pl, []), self.t_owned.get(tl, [])
            try:
                self.plans.append(plan_param(pp, self.p_layers[pl], p_state, self.t_layers[tl], t_state))
            except WeightAssignError as e:
                raise self.error(pl, tl, getattr(e, "reason", str(e)), p_state, t_state, cause=e) from e
            covered.setdefault(("paddle", pl), set()).add(pn)
            covered.setdefault(("torch", tl), set()).add(tn)
        for (side, path), names in covered.items():
            owned = self.p_owned if side == "paddle" else self.t_owned
            rest = [e.name for e in owned.get(path, []) if e.name not in names]
            if rest:
                reason = (f"{side} layer {show(path)} has parameter pairs for some of its tensors but not for "
                          f"{rest}; pair those too (params section of the map), or none of them.")
                raise self.error(path if side == "paddle" else None, path if side == "torch" else None, reason,
                                 owned.get(path) if side == "paddle" else None,
                                 owned.get(path) if side == "torch" else None)
            (self.p_done if side == "paddle" else self.t_done).add(path)

    def _fused(self, pair: LayerPair) -> None:
        """One layer against several: their tensors are split or concatenated in the pair's part order."""
        p_state = pair_state(self.p_owned, pair.paddle_paths, False)
        t_state = pair_state(self.t_owned, pair.torch_paths, False)
        self.p_done.update(pair.paddle_paths)
        self.t_done.update(pair.torch_paths)
        if not p_state and not t_state:
            return
        try:
            plan = plan_fused(pair, self.p_layers, p_state, self.t_layers, t_state)
        except WeightAssignError as e:
            raise self.error(pair.paddle_path, pair.torch_path, getattr(e, "reason", str(e)), p_state,
                             t_state, cause=e) from e
        self.plans.append(plan)

    def _add(self, pp: str, tp: str, p_state: list[StateEntry], t_state: list[StateEntry]) -> None:
        try:
            plan = plan_pair(pp, self.p_layers[pp], p_state, tp, self.t_layers[tp], t_state)
        except WeightAssignError as e:
            raise self.error(pp, tp, getattr(e, "reason", str(e)), p_state, t_state, cause=e) from e
        self.plans.append(plan)

    def _unbalanced(self, pp: str | None, tp: str | None, p_rest: list[str], t_rest: list[str]) -> None:
        n_p, n_t = len(p_rest), len(t_rest)
        tied = _tied_note(PADDLE, self.layer) + _tied_note(TORCH, self.module)
        if pp is not None:
            reason = (f"the paddle model has {n_p} layers holding weights left to pair in definition order, the torch "
                      f"model only {n_t}; paddle {pp} ({type(self.p_layers[pp]).__name__}) has no torch counterpart."
                      + tied)
            raise self.error(pp, None, reason, self.p_owned.get(pp) or subtree_state(self.p_owned, pp), None)
        assert tp is not None
        reason = (f"the torch model has {n_t} layers holding weights left to pair in definition order, the paddle "
                  f"model only {n_p}; torch {tp} ({type(self.t_layers[tp]).__name__}) has no paddle counterpart."
                  + tied)
        raise self.error(None, tp, reason, None, self.t_owned.get(tp) or subtree_state(self.t_owned, tp))

    def error(self, pp: str | None, tp: str | None, reason: str, p_state: list[StateEntry] | None,
              t_state: list[StateEntry] | None, cause: BaseException | None = None) -> WeightAssignError:
        p_marks = skip_marks(PADDLE, self.layer, self.resolved, self.p_owned, self.p_tops)
        t_marks = skip_marks(TORCH, self.module, self.resolved, self.t_owned, self.t_tops)
        for plan in self.plans:
            p_marks.paired[plan.paddle_path] = plan.torch_path
            t_marks.paired[plan.torch_path] = plan.paddle_path
        return build_error(self.layer, self.module, pp, tp, reason, p_marks, t_marks, p_state, t_state, cause)


def _tied_note(side: Any, root: Any) -> str:
    """Name tensors held by two layers (tied weights), which count once: a common cause of unequal counts."""
    first: dict[int, str] = {}
    notes = []
    for path, obj in side.named_layers(root):
        for e in side.raw_state(obj):
            name = f"{path}.{e.name}" if path else e.name
            if id(e.tensor) in first and first[id(e.tensor)] != name:
                notes.append(f"{side.name} {name} is the same tensor as {first[id(e.tensor)]}")
            first.setdefault(id(e.tensor), name)
    if not notes:
        return ""
    return (" Tied weights count once: " + "; ".join(notes[:3]) + ". Tie them on the other side too, or skip "
            "the extra layer with LayerMap.ignore.")


def plan_weights(layer: Any, module: Any, resolved: ResolvedMap) -> list[PairPlan]:
    """Plan the copy of every torch tensor into its paddle counterpart; no tensor is written.

    Raises :class:`WeightAssignError` (with ``paddle_path``/``torch_path``/shapes/trees
    attached) when a pair's tensors do not correspond or the layer counts differ.
    """
    return _Planner(layer, module, resolved).plan()


