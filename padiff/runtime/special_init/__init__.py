"""Special init registry: weight copies for pairs whose tensors do not map one by one.

A special init is registered by the two class names. It can be a user function
``init(paddle_layer, torch_module)`` that copies weights (SPEC §3), or a built-in
array converter (``torch arrays -> paddle arrays``) which padiff also uses to compare
gradients and post-step weights of the pair in paddle's layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from padiff.errors import MappingError

LayerInit = Callable[[Any, Any], None]


@dataclass(frozen=True)
class SpecialInit:
    """A registered special init for one (paddle class name, torch class name) pair."""

    paddle_name: str
    torch_name: str
    func: LayerInit | None = None  # object-level init (user registered)
    planner: Callable[..., Any] | None = None  # builds a PairPlan from the two layers (built-in)


_REGISTRY: dict[tuple[str, str], SpecialInit] = {}


def add_special_init(paddle_name: str = "", torch_name: str = "", func: LayerInit | None = None) -> None:
    """Register ``func(paddle_layer, torch_module)`` to copy torch weights into paddle.

    ``paddle_name``/``torch_name`` are class names (``type(layer).__name__``). A later
    registration for the same names replaces the earlier one.
    """
    if not paddle_name or not torch_name or not isinstance(paddle_name, str) or not isinstance(torch_name, str):
        raise MappingError("add_special_init needs paddle_name='ClassName' and torch_name='ClassName'.")
    if not callable(func):
        raise MappingError(f"add_special_init(func=...) must be callable f(paddle_layer, torch_module), got {func!r}.")
    _REGISTRY[(paddle_name, torch_name)] = SpecialInit(paddle_name, torch_name, func=func)


def register_builtin(paddle_name: str, torch_name: str, planner: Callable[..., Any]) -> None:
    """Register a built-in array-level planner (used by padiff's own special inits)."""
    _REGISTRY.setdefault((paddle_name, torch_name), SpecialInit(paddle_name, torch_name, planner=planner))


def lookup(p_layer: Any, t_layer: Any) -> SpecialInit | None:
    """The special init registered for these two layers' classes (or their bases)."""
    for p_cls in type(p_layer).__mro__:
        for t_cls in type(t_layer).__mro__:
            hit = _REGISTRY.get((p_cls.__name__, t_cls.__name__))
            if hit is not None:
                return hit
    return None


def registered_names() -> list[tuple[str, str]]:
    """All registered (paddle, torch) class-name pairs."""
    return sorted(_REGISTRY)


def special_plan(p_path: str, p_layer: Any, p_state: list, t_path: str, t_layer: Any, t_state: list) -> Any:
    """A PairPlan from a registered special init, or None when none is registered."""
    from padiff.runtime.weights import PairPlan

    spec = lookup(p_layer, t_layer)
    if spec is None:
        return None
    p_class, t_class = type(p_layer).__name__, type(t_layer).__name__
    if spec.func is not None:
        return PairPlan(p_path, t_path, p_class, t_class, links=[], special=f"{spec.paddle_name}<->{spec.torch_name}",
                        layer_init=spec.func)
    assert spec.planner is not None
    return spec.planner(p_path, p_layer, p_state, t_path, t_layer, t_state)


def find_special_pairs(layer: Any, module: Any) -> list[tuple[Any, Any, str, str]]:
    """Pairs of sublayers with a registered special init, matched in tree order per kind."""
    from padiff.runtime.adapters import PADDLE, TORCH

    p_layers = PADDLE.named_layers(layer)
    t_layers = TORCH.named_layers(module)
    out: list[tuple[Any, Any, str, str]] = []
    used_t: set[int] = set()
    covered_p: list[str] = []
    for p_path, p_obj in p_layers:
        if any(p_path.startswith(c + ".") or (c == "" and p_path) for c in covered_p):
            continue
        for t_path, t_obj in t_layers:
            if id(t_obj) in used_t:
                continue
            if lookup(p_obj, t_obj) is not None:
                out.append((p_obj, t_obj, p_path, t_path))
                used_t.add(id(t_obj))
                covered_p.append(p_path)
                break
    return out
