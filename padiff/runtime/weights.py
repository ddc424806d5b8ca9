"""Weight pairing and copying: torch → paddle, layouts, and the plan the engine reuses.

A :class:`PairPlan` says how the tensors one torch module owns become the tensors the
paired paddle layer owns (one-to-one with a layout conversion, or a special init). The
same plan converts weights (``assign_weight``), gradients and post-step values, so grad
and weight comparisons happen in paddle's layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from padiff.errors import WeightAssignError
from padiff.runtime.adapters import PADDLE, TORCH, StateEntry

# paddle name -> torch name for tensors whose names differ between the frameworks
NAME_ALIASES = {"_mean": "running_mean", "_variance": "running_var"}

ArrayDict = dict[str, np.ndarray]


@dataclass(frozen=True)
class Link:
    """One paddle tensor and how to compute it from the torch side's tensors."""

    paddle_name: str
    torch_names: tuple[str, ...]
    conversion: str  # "copy", "transpose", "reshape", "special:<name>" ...
    fn: Callable[[list[np.ndarray]], np.ndarray] = field(compare=False)


@dataclass
class PairPlan:
    """How one paired (paddle layer, torch module) exchange their own tensors."""

    paddle_path: str
    torch_path: str
    paddle_class: str
    torch_class: str
    links: list[Link]
    special: str = ""  # name of the special init used, if any
    layer_init: Callable[[Any, Any], None] | None = None  # a user special init (objects)

    def convert(self, torch_arrays: ArrayDict) -> ArrayDict:
        """Torch-named arrays → paddle-named arrays, for every link whose inputs are present."""
        out: ArrayDict = {}
        for link in self.links:
            if all(n in torch_arrays for n in link.torch_names):
                out[link.paddle_name] = link.fn([torch_arrays[n] for n in link.torch_names])
        return out

    @property
    def conversions(self) -> list[str]:
        """Human-readable conversions that are not plain copies (for reports)."""
        return [f"{lk.paddle_name} <- {'+'.join(lk.torch_names)}: {lk.conversion}"
                for lk in self.links if lk.conversion != "copy"]


def _copy(arrs: list[np.ndarray]) -> np.ndarray:
    return arrs[0]


def _transpose(arrs: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(arrs[0].T)


def _reshaper(shape: tuple[int, ...]) -> Callable[[list[np.ndarray]], np.ndarray]:
    return lambda arrs: arrs[0].reshape(shape)


def is_linear_pair(p_class: str, t_class: str) -> bool:
    """Paddle ``Linear`` keeps its weight as ``[in, out]``; torch ``Linear`` as ``[out, in]``."""
    return "Linear" in p_class and "Linear" in t_class


def plan_pair(p_path: str, p_layer: Any, p_state: list[StateEntry],
              t_path: str, t_layer: Any, t_state: list[StateEntry]) -> PairPlan:
    """Work out how torch ``t_state`` maps onto paddle ``p_state``.

    Special inits come first (registered by class name), then one-to-one links by name
    (with known aliases such as BatchNorm statistics), then by order with shapes. A
    weight differing only by a transpose or reshape is converted, and the conversion is
    recorded. Raises :class:`WeightAssignError` with the shapes when no plan exists.
    """
    from padiff.runtime.special_init import special_plan

    p_class, t_class = type(p_layer).__name__, type(t_layer).__name__
    special = special_plan(p_path, p_layer, p_state, t_path, t_layer, t_state)
    if special is not None:
        return special
    links = one_to_one_links(p_class, p_state, t_class, t_state)
    if links is None:
        raise WeightAssignError(_mismatch_message(p_path, p_class, p_state, t_path, t_class, t_state))
    return PairPlan(p_path, t_path, p_class, t_class, links)


def one_to_one_links(p_class: str, p_state: list[StateEntry], t_class: str,
                     t_state: list[StateEntry]) -> list[Link] | None:
    """Pair tensors one by one: by name (and aliases) first, then by order; None if impossible."""
    if len(p_state) != len(t_state):
        return None
    linear = is_linear_pair(p_class, t_class)
    t_by_name = {e.name: e for e in t_state}
    pairs: list[tuple[StateEntry, StateEntry]] = []
    by_name = all(NAME_ALIASES.get(e.name, e.name) in t_by_name for e in p_state)
    if by_name:
        pairs = [(e, t_by_name[NAME_ALIASES.get(e.name, e.name)]) for e in p_state]
    else:
        pairs = list(zip(p_state, t_state, strict=True))
    links = []
    for pe, te in pairs:
        link = _link(pe, te, linear)
        if link is None:
            return None
        links.append(link)
    return links


def _link(pe: StateEntry, te: StateEntry, linear: bool) -> Link | None:
    ps, ts = tuple(pe.tensor.shape), tuple(te.tensor.shape)
    if len(ps) == 2 and len(ts) == 2 and ps == ts[::-1] and (linear or ps != ts):
        return Link(pe.name, (te.name,), "transpose", _transpose)
    if ps == ts:
        return Link(pe.name, (te.name,), "copy", _copy)
    if int(np.prod(ps)) == int(np.prod(ts)) and [s for s in ps if s != 1] == [s for s in ts if s != 1]:
        return Link(pe.name, (te.name,), f"reshape {list(ts)} -> {list(ps)}", _reshaper(ps))
    return None


def _mismatch_message(p_path: str, p_class: str, p_state: list[StateEntry],
                      t_path: str, t_class: str, t_state: list[StateEntry]) -> str:
    def fmt(state: list[StateEntry]) -> str:
        return ", ".join(f"{e.name}{list(e.tensor.shape)}" for e in state) or "(none)"

    return (
        f"cannot pair the weights of paddle {p_path or '<root>'} ({p_class}) and torch "
        f"{t_path or '<root>'} ({t_class}): paddle has {fmt(p_state)}; torch has {fmt(t_state)}. "
        "If these layers really correspond, register a converter with "
        f"padiff.add_special_init(paddle_name={p_class!r}, torch_name={t_class!r}, func=...)."
    )


def torch_arrays(t_state: list[StateEntry], which: str = "value") -> ArrayDict:
    """Host copies of a torch module's own tensors (``which`` = ``"value"`` or ``"grad"``)."""
    out: ArrayDict = {}
    for e in t_state:
        t = e.tensor if which == "value" else TORCH.grad(e.tensor)
        if t is not None:
            out[e.name] = TORCH.to_numpy(t)
    return out


def apply_plan(plan: PairPlan, p_layer: Any, p_state: list[StateEntry], t_layer: Any,
               t_state: list[StateEntry]) -> None:
    """Copy the torch module's tensors into the paired paddle layer following ``plan``."""
    if plan.layer_init is not None:
        plan.layer_init(p_layer, t_layer)
        return
    values = plan.convert(torch_arrays(t_state))
    by_name = {e.name: e for e in p_state}
    for name, arr in values.items():
        target = by_name[name].tensor
        if tuple(target.shape) != tuple(arr.shape):
            raise WeightAssignError(
                f"paddle {plan.paddle_path or '<root>'}.{name} has shape {list(target.shape)} but the "
                f"converted torch value has {list(arr.shape)}"
            )
        PADDLE.set_value(target, arr)
