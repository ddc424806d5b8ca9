"""The torch adapter: :class:`TorchSide` and its singleton ``TORCH`` (see :mod:`padiff.adapters.protocol`).

torch is imported on first use (the ``fw`` property), never at import time, so
``import padiff`` and a paddle-only process stay free of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from padiff.adapters.base import Side, framework_imported
from padiff.adapters.op_events import Trace
from padiff.adapters.protocol import CallFilter, PostHook, PreHook
from padiff.adapters.state import StateEntry
from padiff.adapters.torch_ops import record_torch


class TorchSide(Side):
    """Adapter for ``torch.nn.Module`` models."""

    name = "torch"

    @property
    def fw(self) -> Any:
        import torch

        return torch

    def is_model(self, obj: Any) -> bool:
        return framework_imported("torch") and isinstance(obj, self.fw.nn.Module)

    def is_unbiased_batchnorm(self, module: Any) -> bool:
        """Whether ``module`` is a torch BatchNorm tracking an exponential average (``momentum`` set),
        which updates its running variance with the unbiased batch variance."""
        bn = self.fw.nn.modules.batchnorm._BatchNorm
        return isinstance(module, bn) and module.track_running_stats and module.momentum is not None

    def is_tensor(self, obj: Any) -> bool:
        return framework_imported("torch") and isinstance(obj, self.fw.Tensor)

    def is_compiled(self, layer: Any) -> bool:
        return isinstance(layer, self.fw.jit.ScriptModule) or type(layer).__name__ == "OptimizedModule"

    def rnn_layers(self, root: Any) -> list[tuple[str, Any]]:
        rnn_base = self.fw.nn.RNNBase
        return [(p, m) for p, m in root.named_modules(remove_duplicate=False) if isinstance(m, rnn_base)]

    def named_layers(self, root: Any) -> list[tuple[str, Any]]:
        return list(root.named_modules(remove_duplicate=False))

    def children(self, layer: Any) -> list[tuple[str, Any]]:
        return list(layer.named_children())

    def own_buffers(self, layer: Any) -> list[tuple[str, Any]]:
        return [(n, b) for n, b in layer.named_buffers(recurse=False) if b is not None]

    def raw_state(self, layer: Any) -> list[StateEntry]:
        out = [StateEntry(n, p, p.requires_grad, False) for n, p in layer.named_parameters(recurse=False)]
        non_persistent: set[str] = getattr(layer, "_non_persistent_buffers_set", set())
        for n, b in layer.named_buffers(recurse=False):
            if b is None or n in non_persistent or not b.is_floating_point():
                continue
            out.append(StateEntry(n, b, False, True))
        return out

    def state_version(self, layer: Any) -> int:
        """The sum of the in-place version counters of ``layer``'s buffers (its whole subtree).

        It changes when a call updates the layer's state in place (a train-mode BatchNorm's running
        statistics): such a layer keeps something of its input that its output does not show.
        """
        return sum(int(b._version) for b in layer.buffers() if b is not None)

    def to_numpy(self, t: Any) -> np.ndarray:
        return self.host_view(t).copy()

    def host_view(self, t: Any) -> np.ndarray:
        torch = self.fw
        t = self._dense(t.detach())
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        if t.is_conj():
            t = t.resolve_conj()
        arr: np.ndarray = t.cpu().numpy()
        return arr

    def on_cpu(self, root: Any) -> bool:
        return all(p.device.type == "cpu" for p in root.parameters())

    def compute_threads(self) -> int:
        return int(self.fw.get_num_threads())

    @contextlib.contextmanager
    def limit_threads(self, n: int) -> Iterator[Callable[[], None]]:
        before = int(self.fw.get_num_threads())
        if n >= before:
            yield lambda: None
            return
        limited = [True]

        def restore() -> None:
            if limited[0]:
                limited[0] = False
                self.fw.set_num_threads(before)

        self.fw.set_num_threads(max(1, n))
        try:
            yield restore
        finally:
            restore()

    def cast_float32(self, t: Any) -> Any:
        return t.float()

    def _dense(self, t: Any) -> Any:
        """Sparse and quantized tensors as the plain dense values they stand for."""
        if t.layout != self.fw.strided:
            t = t.to_dense()
        if t.is_quantized:
            t = t.dequantize()
        return t

    def from_numpy(self, arr: np.ndarray, like: Any | None = None) -> Any:
        # a read-only array may share a paddle tensor's memory: torch must not write into it
        t = self.fw.from_numpy(np.array(arr) if not arr.flags.writeable else np.ascontiguousarray(arr))
        if like is not None:
            t = t.to(dtype=like.dtype, device=like.device)
        return t

    def set_value(self, t: Any, arr: np.ndarray) -> None:
        with self.fw.no_grad():
            t.copy_(self.fw.from_numpy(np.ascontiguousarray(arr)).to(dtype=t.dtype, device=t.device).reshape(t.shape))

    def set_grad(self, t: Any, g: Any | None) -> None:
        t.grad = g

    def zero_grad_in_place(self, t: Any) -> bool:
        if t.grad is None:
            return False
        with self.fw.no_grad():
            t.grad.zero_()
        return True

    def requires_grad(self, t: Any) -> bool:
        return bool(t.requires_grad)

    def set_requires_grad(self, t: Any, flag: bool) -> None:
        t.requires_grad_(flag)

    def clone_detached(self, t: Any) -> Any:
        return t.detach().clone()

    def add_pre_hook(self, layer: Any, fn: PreHook) -> Any:
        return layer.register_forward_pre_hook(fn, with_kwargs=True)

    def add_post_hook(self, layer: Any, fn: PostHook) -> Any:
        def hook(mod: Any, args: tuple[Any, ...], out: Any) -> None:
            fn(mod, args, out)

        return layer.register_forward_hook(hook)

    def record_ops(self, trace: Trace) -> contextlib.AbstractContextManager[Trace]:
        return record_torch(self, trace)

    def hook_count(self, root: Any) -> int:
        n = 0
        for _, mod in self.named_layers(root):
            n += len(mod._forward_pre_hooks) + len(mod._forward_hooks) + len(mod._backward_hooks)
        return n

    def no_grad(self) -> contextlib.AbstractContextManager[Any]:
        ctx: contextlib.AbstractContextManager[Any] = self.fw.no_grad()
        return ctx

    def seed(self, seed: int) -> None:
        self.fw.manual_seed(seed)

    def rng_state(self) -> Any:
        torch = self.fw
        return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None)

    def set_rng_state(self, state: Any) -> None:
        torch = self.fw
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state_all(state[1])

    def clear_grads(self, root: Any) -> None:
        root.zero_grad(set_to_none=True)

    def grads_of(self, outputs: list[Any], inputs: list[Any], grad_outputs: list[Any]) -> list[Any | None]:
        return list(self.fw.autograd.grad(outputs, inputs, grad_outputs, retain_graph=True, allow_unused=True))

    def custom_backward(self, t: Any) -> str:
        cls = getattr(getattr(t, "grad_fn", None), "_forward_cls", None)
        return str(getattr(cls, "__name__", "")) if cls is not None else ""

    def step_optimizer(self, opt: Any) -> None:
        if hasattr(opt, "step") and hasattr(opt, "zero_grad"):
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            opt()

    def calls_matching(self, root: Any, inputs: Mapping[str, Any], keep: CallFilter) -> list[str]:
        """Names of the torch functions one ``no_grad`` forward calls for which ``keep(name, args, kwargs)``
        is true, each once, in the order first seen (:mod:`padiff.runtime.diagnostics` asks for random ones)."""
        from torch.overrides import TorchFunctionMode

        found: list[str] = []

        class _Watch(TorchFunctionMode):
            def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
                kwargs = kwargs or {}
                name = getattr(func, "__name__", "")
                if name not in found and keep(name, args, kwargs):
                    found.append(name)
                return func(*args, **kwargs)

        with self.fw.no_grad(), _Watch():
            root(**inputs)
        return found


TORCH = TorchSide()
