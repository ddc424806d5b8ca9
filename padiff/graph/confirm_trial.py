"""The models as numeric confirmation uses them: torch recorded once, paddle holding the proposal's weights.

:class:`Trial` copies weights pair by pair (plans cached), runs the paddle model whole or one
block of it on recorded inputs, and measures the error against the torch recording. It
restores nothing itself: :func:`padiff.graph.confirm.confirm_ties` snapshots and restores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from padiff.graph.confirm_local import (
    Taps,
    _fused,
    _inside,
    _parts_of,
    _with_order,
    distance,
    flat,
)
from padiff.graph.match import MatchResult, ProposedPair


class Trial:
    """Both models prepared for confirmation: torch recorded once, paddle holding the proposal's weights."""

    def __init__(self, layer: Any, module: Any, example_inp: Any, result: MatchResult,
                 groups: list[list[ProposedPair]]) -> None:
        from padiff.adapters import PADDLE, TORCH

        self.layer, self.module, self.inp, self.result = layer, module, example_inp, result
        self.p_objs = dict(PADDLE.named_layers(layer))
        self.t_objs = dict(TORCH.named_layers(module))
        self.p_state, self.t_state = PADDLE.owned_state(layer), TORCH.owned_state(module)
        self.compared = {p.paddle_path: p.torch_path for p in result.pairs if p.compare_output and not _fused(p)}
        self.fixed = [p for p in result.pairs if _fused(p) or p.opaque]  # copied by their own plans
        self.orders = {i: _parts_of(pr) for i, pr in enumerate(result.pairs) if _fused(pr)}
        self.grouping = {i: pr.groups for i, pr in enumerate(result.pairs) if _fused(pr)}
        self.current = {p.paddle_path: p.torch_path for p in result.pairs if p not in self.fixed}
        self.plans: dict[tuple[str, str], Any] = {}
        members_p = {p.paddle_path for g in groups for p in g}
        members_t = {p.torch_path for g in groups for p in g}
        # fused pairs' layouts are scored on their enclosing blocks: those record inputs/outputs too
        fused_p = {x for pr in self.fixed if _fused(pr) and pr.uncertain for x in (pr.paddle_path, *pr.paddle_parts)}
        fused_t = {x for pr in self.fixed if _fused(pr) and pr.uncertain for x in (pr.torch_path, *pr.torch_parts)}
        blocks_p, blocks_t = _ancestors(members_p | fused_p), _ancestors(members_t | fused_t)
        self.p_taps: Taps | None = None
        self.t_taps: Taps | None = None
        self._t_watch = (members_t, set(self.compared.values()) | members_t | blocks_t)
        self.t_final, self.t_out, self.t_in = self._record_torch(example_inp)
        self.copy(self.current)
        self.copy_fixed(self.fixed)
        self.p_taps = Taps(PADDLE, layer, members_p | blocks_p, set(self.compared))
        self.runs = 0  # paddle forwards of the whole model
        self.recorded: dict[str, str] = {}
        self.last_args: dict[str, list[tuple]] = {}  # each tapped layer's inputs in the last whole forward

    def _record_torch(self, inp: Any) -> tuple[list[np.ndarray], dict[str, Any], dict[str, Any]]:
        """One torch forward on ``inp``: the output, and each watched layer's outputs and inputs per call."""
        from padiff.adapters import TORCH

        self.t_taps = t_taps = Taps(TORCH, self.module, self._t_watch[0], self._t_watch[1], arrays=True)
        try:
            with TORCH.no_grad():
                final = flat(TORCH, self.module(**inp[1]))
            return final, dict(t_taps.outputs), dict(t_taps.args)
        finally:
            t_taps.remove()
            self.t_taps = None

    @contextlib.contextmanager
    def other_input(self, inp: Any) -> Iterator[None]:
        """Score on ``inp`` instead of the example (torch recorded on it once); the example's recording after."""
        saved = (self.inp, self.t_final, self.t_out, self.t_in)
        try:
            self.t_final, self.t_out, self.t_in = self._record_torch(inp)
            self.inp = inp
            self.recorded = {}  # paddle's recorded block inputs are the example's: run again before use
            yield
        finally:
            self.inp, self.t_final, self.t_out, self.t_in = saved
            self.recorded = {}

    def remove(self) -> None:
        for taps in (self.p_taps, self.t_taps):
            if taps is not None:
                taps.remove()

    def copy(self, assign: Mapping[str, str]) -> None:
        """Copy the torch weights of these pairs into the paddle layers."""
        from padiff.weights.pair_plan import apply_plan, plan_pair

        for p_path, t_path in assign.items():
            if p_path in self.p_state and t_path in self.t_state:
                key = (p_path, t_path)
                if key not in self.plans:
                    self.plans[key] = plan_pair(p_path, self.p_objs[p_path], self.p_state[p_path], t_path,
                                                self.t_objs[t_path], self.t_state[t_path])
                apply_plan(self.plans[key], self.p_objs[p_path], self.p_state[p_path], self.t_objs[t_path],
                           self.t_state[t_path])

    def copy_fixed(self, pairs: list[ProposedPair]) -> None:
        """Copy fused and opaque pairs by their own plans (fused parts in the order under trial)."""
        from padiff.adapters import pair_state
        from padiff.weights.pair_plan import apply_plan, plan_fused, plan_pair

        for pr in pairs:
            i = self.result.pairs.index(pr)
            pr = _with_order(pr, self.orders[i], self.grouping[i]) if i in self.orders else pr
            ps_ = pair_state(self.p_state, pr.paddle_parts or (pr.paddle_path,), pr.opaque)
            ts_ = pair_state(self.t_state, pr.torch_parts or (pr.torch_path,), pr.opaque)
            if _fused(pr):
                plan = plan_fused(pr, self.p_objs, ps_, self.t_objs, ts_)
            else:
                plan = plan_pair(pr.paddle_path, self.p_objs[pr.paddle_path], ps_, pr.torch_path,
                                 self.t_objs[pr.torch_path], ts_)
            apply_plan(plan, self.p_objs[pr.paddle_path], ps_, self.t_objs[pr.torch_path], ts_)

    def forward(self, keep_outputs: bool = False) -> list[np.ndarray]:
        """One paddle forward of the whole model (taps cleared first); its flattened output.

        ``keep_outputs``: also keep the compared layers' outputs (for :meth:`model_error`).
        """
        from padiff.adapters import PADDLE

        assert self.p_taps is not None
        self.p_taps.clear()
        self.p_taps.keep_outputs = keep_outputs
        self.runs += 1
        with PADDLE.no_grad():
            out = flat(PADDLE, self.layer(**self.inp[0]))
        self.recorded = dict(self.current)
        self.last_args = {path: list(calls) for path, calls in self.p_taps.args.items()}  # block runs clear taps
        return out

    def model_error(self, finite: bool = False) -> float:
        """Output and compared-layer error of a whole paddle forward with the weights it holds now.

        ``finite``: leave out compared layers whose outputs differ in shape (inf): a tie not yet settled
        (a ``q_norm`` against a ``k_norm``) says nothing of the weights being tried, and would make every
        trial score inf alike.
        """
        assert self.p_taps is not None
        total = distance([self.forward(keep_outputs=True)], [self.t_final])
        for p_path, t_path in self.compared.items():
            d = distance(self.p_taps.outputs.get(p_path, []), self.t_out.get(self.current.get(p_path, t_path), []))
            total += d if np.isfinite(d) or not finite else 0.0
        return total

    def block_error(self, p_block: str, t_block: str, calls: list[tuple], finite: bool = False) -> float:
        """Error of paddle block ``p_block`` re-run on its recorded inputs, against torch ``t_block``.

        ``finite``: as in :meth:`model_error`, compared layers whose outputs differ in shape are left out.
        """
        from padiff.adapters import PADDLE

        assert self.p_taps is not None
        want = self.t_out.get(t_block, [])
        if not p_block or not calls or len(want) < len(calls):
            return self.model_error(finite)
        self.p_taps.clear()
        self.p_taps.keep_outputs = True
        with PADDLE.no_grad():
            got = [flat(PADDLE, self.p_objs[p_block](*args, **kwargs)) for args, kwargs in calls]
        total = distance(got, want[:len(calls)])
        if not np.isfinite(total):
            return self.model_error(finite)
        for p_path, t_path in self.compared.items():
            if _inside(p_path, p_block):
                d = distance(self.p_taps.outputs.get(p_path, []), self.t_out.get(self.current.get(p_path, t_path), []))
                total += d if np.isfinite(d) or not finite else 0.0
        return total


def _ancestors(paths: set[str]) -> set[str]:
    out = set()
    for path in paths:
        parts = path.split(".")
        out.update(".".join(parts[:n]) for n in range(1, len(parts)))
    return out


def fits(trial: Trial, pair: ProposedPair) -> bool:
    """The fused pair's weights can be split/concatenated in this order and interleaving (no forward run)."""
    from padiff.adapters import pair_state
    from padiff.errors import WeightAssignError
    from padiff.weights.pair_plan import plan_fused

    try:
        plan_fused(pair, trial.p_objs, pair_state(trial.p_state, pair.paddle_parts or (pair.paddle_path,), False),
                   trial.t_objs, pair_state(trial.t_state, pair.torch_parts or (pair.torch_path,), False))
    except WeightAssignError:
        return False
    return True


def block_errors_elsewhere(trial: Trial, p_paths: list[str], orders: list[tuple[str, ...]], p_block: str,
                           t_block: str) -> dict[tuple[str, ...], float]:
    """Each order's block error on a random input of the example's shapes (empty: no such input, or < 2 orders)."""
    from padiff.graph.separating import separating_input

    inp = separating_input(trial.inp) if len(orders) > 1 else None
    if inp is None:
        return {}
    out: dict[tuple[str, ...], float] = {}
    with trial.other_input(inp):
        trial.forward()
        calls = list(trial.last_args.get(p_block, [])) if p_block else []
        for order in orders:
            assign = dict(zip(p_paths, order))
            trial.current.update(assign)
            trial.copy(assign)
            out[order] = trial.block_error(p_block, t_block, calls)
    return out
