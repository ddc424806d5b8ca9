"""Validation of what a user passes to padiff's entry points.

Everything is checked before anything runs, so misuse is a clear ``PadiffError`` that
says what to do, never a traceback from inside a framework.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from padiff.adapters import PADDLE, TORCH
from padiff.errors import InputError, OptionsError


def check_models(layer: Any, module: Any, call: str = "compare") -> None:
    """The paddle model first, the torch model second; say so when they are swapped.

    Compiled models (torch.jit, torch.compile, paddle.jit) are refused: padiff hooks every
    layer call and needs the eager model.
    """
    if PADDLE.is_model(module) and TORCH.is_model(layer):
        raise InputError("the models are swapped: pass the paddle layer first and the torch module second "
                         f"({call}(paddle_layer, torch_module, ...); paddle first everywhere in padiff).")
    if not PADDLE.is_model(layer):
        raise InputError(f"layer must be a paddle.nn.Layer, got {type(layer).__name__}.")
    if not TORCH.is_model(module):
        raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
    for side, root in ((PADDLE, layer), (TORCH, module)):
        for path, sub in side.named_layers(root):
            if side.is_compiled(sub):
                how = ("paddle.jit.save/load, or call paddle.jit.enable_to_static(False) first for a "
                       "paddle.jit.to_static model" if side is PADDLE else
                       "torch.jit.script/trace (for torch.compile: pass module._orig_mod)")
                raise InputError(
                    f"the {side.name} model{' at ' + path if path else ''} is compiled ({type(sub).__name__}): "
                    f"padiff hooks every layer call and needs the eager model. Pass the model from before {how}."
                )


def check_example_inp(example_inp: Any, layer: Any, module: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``example_inp`` must be ``(paddle_kwargs, torch_kwargs)``; checks halves, tensor kinds and keys."""
    hint = "example_inp must be a pair of dicts (paddle_input, torch_input), e.g. ({'x': paddle_x}, {'x': torch_x})"
    if isinstance(example_inp, Mapping) or not isinstance(example_inp, Sequence) or isinstance(example_inp, str):
        raise InputError(f"{hint}; got {type(example_inp).__name__}.")
    if len(example_inp) != 2:
        raise InputError(f"{hint}; got a sequence of length {len(example_inp)}.")
    p_inp, t_inp = example_inp
    if not isinstance(p_inp, Mapping) or not isinstance(t_inp, Mapping):
        raise InputError(f"{hint}; got ({type(p_inp).__name__}, {type(t_inp).__name__}).")
    p_tensors, t_tensors = PADDLE.flatten(dict(p_inp)), TORCH.flatten(dict(t_inp))
    p_wrong, t_wrong = TORCH.flatten(dict(p_inp)), PADDLE.flatten(dict(t_inp))
    if p_wrong and t_wrong:
        raise InputError("the halves of example_inp are swapped: the first dict holds torch tensors and the second "
                         "paddle tensors. Pass (paddle_input, torch_input).")
    if p_wrong:
        raise InputError("the paddle half of example_inp (the first dict) holds torch tensors; convert them with "
                         "paddle.to_tensor(t.numpy()).")
    if t_wrong:
        raise InputError("the torch half of example_inp (the second dict) holds paddle tensors; convert them with "
                         "torch.from_numpy(t.numpy()).")
    for half, tensors, side, which, convert in ((p_inp, p_tensors, "paddle", "first", "paddle.to_tensor(a)"),
                                                (t_inp, t_tensors, "torch", "second", "torch.from_numpy(a)")):
        bad_keys = [k for k in half if not isinstance(k, str)]
        if bad_keys:
            raise InputError(f"the keys of the {which} dict of example_inp must be the {side} forward's argument "
                             f"names (strings), got {bad_keys[0]!r}.")
        # non-tensor inputs (ints, flags) are allowed; numpy arrays without any tensor are a forgotten conversion
        if not tensors and any(_holds_ndarray(v) for v in half.values()):
            raise InputError(f"the {which} dict of example_inp holds numpy arrays but no {side} tensor; convert "
                             f"them with {convert}.")
    _check_keys(layer, dict(p_inp), "paddle", "first")
    _check_keys(module, dict(t_inp), "torch", "second")
    return dict(p_inp), dict(t_inp)


def _holds_ndarray(value: Any, depth: int = 0) -> bool:
    import numpy as np

    if isinstance(value, np.ndarray):
        return True
    if depth < 5 and isinstance(value, list | tuple):
        return any(_holds_ndarray(v, depth + 1) for v in value)
    if depth < 5 and isinstance(value, Mapping):
        return any(_holds_ndarray(v, depth + 1) for v in value.values())
    return False


def _check_keys(model: Any, inputs: dict[str, Any], side: str, which: str) -> None:
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                           inspect.Parameter.KEYWORD_ONLY)]
    unknown = [k for k in inputs if k not in accepted]
    if unknown:
        raise InputError(
            f"the {side} model's forward does not take {', '.join(repr(k) for k in unknown)} (from the {which} dict "
            f"of example_inp); it takes {', '.join(repr(a) for a in accepted) or 'no keyword arguments'}."
        )
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty
               and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
               and n not in inputs]
    if missing:
        raise InputError(f"the {which} dict of example_inp lacks {', '.join(repr(m) for m in missing)}, which the "
                         f"{side} model's forward requires.")


def pair_of_callables(value: Any, name: str) -> tuple[Any, Any] | None:
    """``[paddle_fn, torch_fn]`` (e.g. ``loss_fn``), or None."""
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise OptionsError(f"{name} must be [paddle_fn, torch_fn], a pair of callables, got {_describe(value)}.")
    if not all(callable(f) for f in value):
        raise OptionsError(f"both items of {name} must be callables taking the model output.")
    return value[0], value[1]


def _describe(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    return type(value).__name__


def optimizer_pair(value: Any) -> tuple[Any, Any] | None:
    """``[paddle_opt, torch_opt]``: optimizers or zero-argument step-and-clear callables, or None."""
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise OptionsError("optimizer must be [paddle_opt, torch_opt]: two optimizers, or two zero-argument callables "
                           f"that step and clear grads; got {_describe(value)}.")
    for opt, side in zip(value, ("paddle", "torch")):
        ok = callable(opt) or (hasattr(opt, "step") and (hasattr(opt, "clear_grad") or hasattr(opt, "zero_grad")))
        if not ok:
            raise OptionsError(f"the {side} optimizer must be an optimizer or a zero-argument callable, "
                               f"got {type(opt).__name__}.")
    p_opt, t_opt = value
    if hasattr(p_opt, "zero_grad") and not hasattr(p_opt, "clear_grad") and hasattr(t_opt, "clear_grad"):
        raise OptionsError("optimizer is swapped: pass [paddle_opt, torch_opt].")
    return p_opt, t_opt
