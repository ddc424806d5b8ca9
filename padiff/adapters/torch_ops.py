"""Record the torch operations one call executes, through a ``TorchFunctionMode``.

Reached through ``TORCH.record_ops(trace)``. Only the outermost operations are recorded
(inside the mode's handler torch runs with the mode switched off), i.e. what the user's
code and ``nn.Module.forward`` bodies call: ``F.linear``, ``Tensor.__mul__``,
``Tensor.view``. Leaving the ``with`` block pops the mode, whatever happened inside.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from padiff.adapters.frames import user_stack
from padiff.adapters.op_events import Trace, torch_positional_names
from padiff.adapters.protocol import FrameworkSide

_NOISE = {"__set__", "detach_", "requires_grad_", "size", "dim",
          "numel", "__len__", "is_floating_point", "item", "tolist", "numpy", "cpu", "stride", "data_ptr",
          "element_size", "__bool__", "__format__", "__repr__", "__iter__", "is_contiguous", "is_complex",
          "__setitem__", "__hash__", "__eq__", "__ne__", "__index__", "__int__", "__float__", "dim_order"}
# ops that hand on the same values under a new tensor identity: the op view (values) skips them, the
# dataflow recorder (identities) keeps them, or a ``.contiguous()`` between two layers cuts the edge
_ALIASES = {"contiguous", "clone", "detach", "__get__"}
# tensor properties read through ``__get__`` that hand on data: the property -> the kind it records as
_PROPERTIES = {"data": "Tensor.detach", "T": "Tensor.t", "mT": "Tensor.transpose", "real": "Tensor.detach"}


@contextmanager
def record_torch(side: FrameworkSide, trace: Trace) -> Iterator[Trace]:
    """Within the block, every outermost torch operation lands in ``trace``."""
    torch = side.fw
    from torch.overrides import TorchFunctionMode

    class _Recording(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            kwargs = kwargs or {}
            short = getattr(func, "__name__", "")
            if short in _NOISE or not short or (trace.keep_values and (trace.full or short in _ALIASES)):
                return func(*args, **kwargs)
            if not trace.keep_values:
                out = func(*args, **kwargs)
                label = _property(func) if short == "__get__" else _label(torch, func, short)
                if label:
                    trace.add_refs(label, _tensors(torch, (args, kwargs)), _tensors(torch, out), side.shape)
                return out
            in_ts = _tensors(torch, (args, kwargs))
            try:
                inputs = [side.to_numpy(t) for t in in_ts]
            except Exception:  # noqa: BLE001 - a tensor padiff cannot read is not recorded
                inputs = None
            out = func(*args, **kwargs)
            if inputs:
                try:
                    out_ts = _tensors(torch, out)
                    outs = [side.to_numpy(t) for t in out_ts]
                    if outs:
                        trace.add(_label(torch, func, short), _params(func, short, args, kwargs), inputs, outs,
                                  _frame(), (in_ts, out_ts, (func, args, kwargs)))
                except Exception:  # noqa: BLE001 - recording must never break the user's model
                    pass
            return out

    with _Recording():
        yield trace


def _label(torch: Any, func: Any, short: str) -> str:
    if getattr(torch.Tensor, short, None) is func:
        return f"Tensor.{short}"
    if getattr(torch.nn.functional, short, None) is func:
        return f"F.{short}"
    return f"torch.{short}"


def _property(func: Any) -> str:
    """The label a tensor property read records as (``x.T`` -> ``Tensor.t``), or "" for one that is not data."""
    owner = getattr(func, "__self__", None)
    return _PROPERTIES.get(str(getattr(owner, "__name__", "")), "")


def _tensors(torch: Any, obj: Any, depth: int = 0) -> list[Any]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if depth > 2:
        return []
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(torch, v, depth + 1)]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(torch, v, depth + 1)]
    return []


def _params(func: Any, short: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    named: dict[str, Any] = {}
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
        named = dict(bound.arguments)
    except (TypeError, ValueError):
        names = torch_positional_names(short)
        for i, v in enumerate(args):
            if 0 < i < len(names):
                named[names[i]] = v
        named.update(kwargs)
    scalars = [v for v in args[1:] if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not scalars and args and isinstance(args[0], (int, float)) and not isinstance(args[0], bool):
        scalars = [args[0]]
    return {"__named__": named, "__scalars__": scalars}


def _frame() -> Any:
    frames = user_stack(limit=1)
    return frames[-1] if frames else None
