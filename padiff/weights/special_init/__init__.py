"""Special init registry: weight copies for pairs whose tensors do not map one by one.

A special init is registered by the two class names. It can be a user function
``init(paddle_layer, torch_module)`` that copies weights, or a built-in
array converter (``torch arrays -> paddle arrays``) which padiff also uses to compare
gradients and post-step weights of the pair in paddle's layout.

Built in (one module each): ``attention`` (``MultiHeadAttention``↔``MultiheadAttention``),
``rnn`` (``LSTM``/``GRU``/``SimpleRNN``↔``LSTM``/``GRU``/``RNN``), ``batchnorm``
(``BatchNorm1D/2D/3D``↔``BatchNorm1d/2d/3d``), ``compat`` (``paddle.compat.nn.MultiheadAttention``
↔``MultiheadAttention``, tensors copied by name). A built-in names a class under its
framework's root (``compat.nn.MultiheadAttention``) and matches it by identity. A user registration for the same class
names wins over a built-in. A layer whose class is registered counts as one unit with its
whole subtree when ``assign_weight`` pairs layers, and :func:`find_special_pairs` feeds
``LayerMap.auto``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from padiff.adapters import PADDLE, TORCH, StateEntry
from padiff.errors import MappingError
from padiff.weights.plan import PairPlan
from padiff.weights.special_init import attention, batchnorm, compat, rnn

LayerInit = Callable[[Any, Any], None]
log = logging.getLogger("padiff")


@dataclass(frozen=True)
class SpecialInit:
    """A registered special init for one (paddle class name, torch class name) pair."""

    paddle_name: str
    torch_name: str
    func: LayerInit | None = None  # object-level init (user registered)
    planner: Callable[..., PairPlan] | None = None  # builds a PairPlan from the two layers (built-in)
    auto: bool = True  # LayerMap.auto() pairs layers of this kind


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


def register_builtin(paddle_name: str, torch_name: str, planner: Callable[..., PairPlan], auto: bool = True) -> None:
    """Register a built-in array-level planner (used by padiff's own special inits).

    ``planner(p_path, p_layer, p_state, t_path, t_layer, t_state) -> PairPlan`` returns
    real links, so the same plan converts gradients. A user function registered for the
    same names wins. ``auto=False`` keeps the kind out of :meth:`LayerMap.auto` (layers
    whose tensors pair one by one anyway, such as BatchNorm).
    """
    key = (_short(paddle_name), _short(torch_name))
    _REGISTRY.setdefault(key, SpecialInit(paddle_name, torch_name, planner=planner, auto=auto))


def _short(name: str) -> str:
    """The class name of a built-in's dotted class (``compat.nn.MultiheadAttention`` → ``MultiheadAttention``)."""
    return name.rpartition(".")[2]


def unregister(paddle_name: str, torch_name: str) -> None:
    """Remove a registration (tests use it to undo ``add_special_init``); built-ins come back."""
    _REGISTRY.pop((paddle_name, torch_name), None)
    _load_builtins(force=True)


def _class_matches(spec: SpecialInit, side: int, cls: type) -> bool:
    """Does ``cls`` (one class of a layer's MRO) stand for ``spec``'s class on ``side`` (0 paddle, 1 torch)?

    A user registration (:func:`add_special_init`) names classes, so the name decides. A
    built-in special init is for the framework's own class (``paddle.nn.MultiHeadAttention``):
    identity decides, so another library's class of the same name is not taken for it.
    """
    name = spec.paddle_name if side == 0 else spec.torch_name
    if cls.__name__ != _short(name):
        return False
    if spec.planner is None:
        return True
    dotted = name if "." in name else f"nn.{name}"  # a built-in names its class under the framework's root
    return (PADDLE if side == 0 else TORCH).framework_class(dotted) is cls


def lookup(p_layer: Any, t_layer: Any) -> SpecialInit | None:
    """The special init registered for these two layers' classes (or their bases)."""
    for p_cls in type(p_layer).__mro__:
        for t_cls in type(t_layer).__mro__:
            hit = _REGISTRY.get((p_cls.__name__, t_cls.__name__))
            if hit is not None and _class_matches(hit, 0, p_cls) and _class_matches(hit, 1, t_cls):
                return hit
    return None


def is_special(obj: Any, side: int) -> bool:
    """True when ``obj``'s class (or a base) is registered on ``side`` (0 paddle, 1 torch)."""
    return any(_class_matches(spec, side, cls) for cls in type(obj).__mro__ for spec in _REGISTRY.values())


def special_kinds(obj: Any, side: int) -> list[list[str]]:
    """The registered special-init kinds ``[paddle_name, torch_name]`` that pair ``obj`` as a whole (``LayerMap.auto``
    kinds, most specific first): what a recorded skeleton keeps so a run's ``"auto"`` map adds the same pairs."""
    return [list(key) for key in _keys_for(obj, side, auto_only=True)]


def is_unit(obj: Any, side: int) -> bool:
    """True when ``obj`` is a special-init layer paired as a whole (MHA, LSTM ...; not BatchNorm)."""
    return bool(_keys_for(obj, side, auto_only=True))


def registered_names() -> list[tuple[str, str]]:
    """All registered (paddle, torch) class-name pairs."""
    return sorted(_REGISTRY)


def special_plan(p_path: str, p_layer: Any, p_state: list[StateEntry], t_path: str, t_layer: Any,
                 t_state: list[StateEntry]) -> PairPlan | None:
    """A PairPlan from a registered special init, or None when none is registered."""
    spec = lookup(p_layer, t_layer)
    if spec is None:
        return None
    p_class, t_class = type(p_layer).__name__, type(t_layer).__name__
    if spec.func is not None:
        return PairPlan(p_path, t_path, p_class, t_class, links=[], special=f"{spec.paddle_name}<->{spec.torch_name}",
                        layer_init=spec.func)
    assert spec.planner is not None
    return spec.planner(p_path, p_layer, p_state, t_path, t_layer, t_state)


def _keys_for(obj: Any, side: int, auto_only: bool) -> list[tuple[str, str]]:
    """Registry keys whose ``side`` (0 paddle, 1 torch) class name is in ``obj``'s MRO, most specific first."""
    out = []
    for cls in type(obj).__mro__:
        for key, spec in _REGISTRY.items():
            if _class_matches(spec, side, cls) and (spec.auto or not auto_only) and key not in out:
                out.append(key)
    return out


def _inside(path: str, tops: list[str]) -> bool:
    return any(top == "" or path.startswith(top + ".") for top in tops)


def find_special_pairs(layer: Any, module: Any) -> list[tuple[Any, Any, str, str]]:
    """Pairs of sublayers with a registered special init, matched per kind in tree order.

    The k-th paddle layer of a kind (e.g. ``LSTM``↔``LSTM``) pairs with the k-th torch
    module of that kind; layers inside an already paired layer are passed over on both
    sides (a torch ``MultiheadAttention`` inside a paired user block is not paired again).
    Kinds registered with ``auto=False`` (BatchNorm) are left to default pairing. When the
    counts of a kind differ, the extra layers stay unpaired and a warning is logged.
    """
    t_queues: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    for t_path, t_obj in TORCH.named_layers(module):
        for key in _keys_for(t_obj, 1, auto_only=True):
            t_queues.setdefault(key, []).append((t_path, t_obj))
    out: list[tuple[Any, Any, str, str]] = []
    covered_p: list[str] = []
    covered_t: list[str] = []
    used_t: set[int] = set()
    left_p: dict[tuple[str, str], int] = {}
    for p_path, p_obj in PADDLE.named_layers(layer):
        if _inside(p_path, covered_p):
            continue
        keys = _keys_for(p_obj, 0, auto_only=True)
        for key in keys:
            queue = t_queues.get(key, [])
            while queue and (id(queue[0][1]) in used_t or _inside(queue[0][0], covered_t)):
                queue.pop(0)
            if queue:
                t_path, t_obj = queue.pop(0)
                out.append((p_obj, t_obj, p_path, t_path))
                used_t.add(id(t_obj))
                covered_p.append(p_path)
                covered_t.append(t_path)
                break
        else:
            if keys:
                left_p[keys[0]] = left_p.get(keys[0], 0) + 1
    for key, n in left_p.items():
        log.warning("LayerMap.auto: %d paddle %s layer(s) found no torch %s left to pair with.", n, *key)
    for key, queue in t_queues.items():
        rest = [p for p, o in queue if id(o) not in used_t and not _inside(p, covered_t)]
        if rest:
            log.warning("LayerMap.auto: torch %s module(s) %s found no paddle %s to pair with.", key[1], rest, key[0])
    return out


_BUILTINS_LOADED = False


def _load_builtins(force: bool = False) -> None:
    """Register padiff's own special inits (MHA, LSTM/GRU/RNN, BatchNorm) once."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED and not force:
        return
    _BUILTINS_LOADED = True
    for mod in (attention, batchnorm, compat, rnn):
        for paddle_name, torch_name, auto in mod.BUILTINS:
            register_builtin(paddle_name, torch_name, mod.plan, auto=auto)


_load_builtins()
