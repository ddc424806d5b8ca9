"""Record the paddle operations one call executes, by wrapping paddle's public API for that call only.

Reached through ``PADDLE.record_ops(trace)``. Paddle has no function mode, so
:func:`record_paddle` replaces the public functions of ``paddle``, ``paddle.nn.functional``
and the compute methods of ``paddle.Tensor`` by thin wrappers for the duration of its
``with`` block, and puts every original object back on exit (errors and
``KeyboardInterrupt`` included; :func:`patched_names` lets tests check identity). Only
outermost calls on the recording thread are recorded, so an API that calls another public
API counts once, as in torch's function mode. Arguments are recorded as paddle takes them
(paddle's momentum, not torch's): reconciling conventions is the runtime's job
(:mod:`padiff.compare.conventions`).
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from padiff.adapters.frames import user_stack
from padiff.adapters.op_events import Trace
from padiff.adapters.protocol import FrameworkSide

_MODULE_PREFIXES = ("paddle.tensor", "paddle.nn.functional", "paddle.base.dygraph.generated_tensor_methods_patch",
                    "paddle.incubate.nn.functional")
_DUNDERS = {"__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__div__", "__truediv__",
            "__rdiv__", "__rtruediv__", "__floordiv__", "__pow__", "__rpow__", "__mod__", "__matmul__",
            "__rmatmul__", "__neg__", "__abs__", "__getitem__"}
_NOT_COMPUTE = {"numpy", "tolist", "item", "backward", "register_hook", "clear_grad", "clear_gradient", "gradient",
                "set_value", "value", "get_tensor", "data_ptr", "cpu", "cuda", "pin_memory", "dim", "ndimension",
                "numel", "element_size", "apply", "apply_", "copy_", "detach_",
                "stride", "get_strides", "to_dense", "to_sparse_coo", "zero_", "fill_", "retain_grads", "size",
                "to_tensor", "in_dynamic_mode", "rows", "cols", "offset", "untyped_storage", "data", "grad_fn"}
# ops that hand on the same values under a new tensor identity: the op view (values) skips them, the
# dataflow recorder (identities) keeps them, or a ``.contiguous()`` between two layers cuts the edge
_ALIASES = {"detach", "clone", "contiguous"}
_NOT_COMPUTE_PREFIXES = ("is_", "set_", "share_", "register_", "get_", "reconstruct", "_")

_METHOD_TYPES = ("method_descriptor", "builtin_function_or_method")

_local = threading.local()


def _targets(paddle: Any) -> list[tuple[Any, str, Any, str]]:  # noqa: C901  # which paddle functions to wrap, one rule per API family
    """(owner, attribute, original object, label prefix) of everything the recorder wraps."""
    out = []
    for owner, prefix in ((paddle, "paddle"), (paddle.nn.functional, "F")):
        for name, obj in list(vars(owner).items()):
            if name.startswith("_") or name in _NOT_COMPUTE or name.startswith(_NOT_COMPUTE_PREFIXES):
                continue
            if not isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)):
                continue
            if not str(getattr(obj, "__module__", "") or "").startswith(_MODULE_PREFIXES):
                continue
            out.append((owner, name, obj, prefix))
    for name, obj in list(vars(paddle.Tensor).items()):
        if name.startswith("__"):
            if name not in _DUNDERS:
                continue
        elif name in _NOT_COMPUTE or name.startswith(_NOT_COMPUTE_PREFIXES):
            continue
        if not (isinstance(obj, types.FunctionType) or type(obj).__name__ in _METHOD_TYPES):
            continue
        out.append((paddle.Tensor, name, obj, "Tensor"))
    # paddle's own layers call some functionals by names bound at import (norm.py: ``layer_norm``)
    # or by a private helper (Conv2D: ``F.conv._conv_nd``): wrap those too, labelled as the public API
    by_id = {id(obj): prefix + "." + name for _, name, obj, prefix in out if prefix == "F"}
    for mod_name, mod in sorted(sys.modules.items()):
        if not mod_name.startswith("paddle.nn.layer.") or mod is None:
            continue
        for name, obj in list(vars(mod).items()):
            if id(obj) in by_id:
                out.append((mod, name, obj, by_id[id(obj)].rpartition(".")[0]))
    conv = getattr(paddle.nn.functional, "conv", None)
    if conv is not None and isinstance(vars(conv).get("_conv_nd"), types.FunctionType):
        out.append((conv, "_conv_nd", vars(conv)["_conv_nd"], "F"))
    return out


def patched_names() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, object now there) of every attribute :func:`record_paddle` wraps."""
    import paddle

    return [(owner, name, vars(owner)[name]) for owner, name, _, _ in _targets(paddle)]


@contextmanager
def record_paddle(side: FrameworkSide, trace: Trace) -> Iterator[Trace]:
    """Within the block, every outermost call of paddle's public compute API lands in ``trace``."""
    paddle = side.fw
    targets = _targets(paddle)
    applied: list[tuple[Any, str, Any]] = []
    _local.depth = 0
    thread = threading.get_ident()
    try:
        for owner, name, orig, prefix in targets:
            setattr(owner, name, _wrap(side, orig, f"{prefix}.{name}", trace, thread))
            applied.append((owner, name, orig))
        yield trace
    finally:
        for owner, name, orig in reversed(applied):
            try:
                setattr(owner, name, orig)
            except Exception:  # noqa: BLE001 - every other attribute must still come back
                pass


def _wrap(side: FrameworkSide, orig: Any, label: str, trace: Trace, thread: int) -> Any:
    paddle = side.fw

    alias = label.rpartition(".")[2] in _ALIASES

    def recorded(*args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "depth", 1) or threading.get_ident() != thread or (
                trace.keep_values and (trace.full or alias)):
            return orig(*args, **kwargs)
        lab = label
        if lab == "F._conv_nd":  # Conv1D/2D/3D's shared helper: name it by the conv it runs
            lab = "F." + str(kwargs.get("op_type", "conv2d")).replace("depthwise_", "")
        _local.depth = 1
        try:
            if not trace.keep_values:
                out = orig(*args, **kwargs)
                trace.add_refs(lab, _tensors(paddle, (args, kwargs)), _tensors(paddle, out), side.shape)
                return out
            in_ts = _tensors(paddle, (args, kwargs))
            try:
                inputs = [side.to_numpy(t) for t in in_ts]
            except Exception:  # noqa: BLE001 - a tensor padiff cannot read is not recorded
                inputs = []
            out = orig(*args, **kwargs)
            if inputs:
                try:
                    out_ts = _tensors(paddle, out)
                    outs = [side.to_numpy(t) for t in out_ts]
                    if outs:
                        trace.add(lab, _params(orig, args, kwargs), inputs, outs, _frame(),
                                  (in_ts, out_ts, (orig, args, kwargs)))
                except Exception:  # noqa: BLE001 - recording must never break the user's model
                    pass
            return out
        finally:
            _local.depth = 0

    try:
        functools.update_wrapper(recorded, orig)
    except (AttributeError, TypeError):
        pass
    return recorded


def _tensors(paddle: Any, obj: Any, depth: int = 0) -> list[Any]:
    if isinstance(obj, paddle.Tensor):
        return [obj]
    if depth > 2:
        return []
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(paddle, v, depth + 1)]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(paddle, v, depth + 1)]
    return []


@functools.lru_cache(maxsize=4096)
def _signature(fn: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _params(fn: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    named: dict[str, Any] = {}
    sig = _signature(fn)
    if sig is not None:
        try:
            bound = sig.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            named = dict(bound.arguments)
        except TypeError:
            named = dict(kwargs)
    else:
        named = dict(kwargs)
    scalars = [v for v in args[1:] if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {"__named__": named, "__scalars__": scalars}


def _frame() -> Any:
    frames = user_stack(limit=1)
    return frames[-1] if frames else None
