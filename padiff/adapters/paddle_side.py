"""The paddle adapter: :class:`PaddleSide` and its singleton ``PADDLE`` (see :mod:`padiff.adapters.protocol`).

paddle is imported on first use (the ``fw`` property), never at import time, so
``import padiff`` and a torch-only process stay free of it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from padiff.adapters.base import Side, framework_imported, is_float_dtype
from padiff.adapters.op_events import Trace
from padiff.adapters.paddle_ops import record_paddle
from padiff.adapters.protocol import PostHook, PreHook
from padiff.adapters.state import BatchNormUpdate, StateEntry


class PaddleSide(Side):
    """Adapter for ``paddle.nn.Layer`` models."""

    name = "paddle"

    @property
    def fw(self) -> Any:
        import paddle

        return paddle

    def is_model(self, obj: Any) -> bool:
        return framework_imported("paddle") and isinstance(obj, self.fw.nn.Layer)

    def is_tensor(self, obj: Any) -> bool:
        return framework_imported("paddle") and isinstance(obj, self.fw.Tensor)

    def batchnorm_update(self, layer: Any) -> BatchNormUpdate | None:
        """A :class:`~padiff.adapters.state.BatchNormUpdate` if ``layer`` is a BatchNorm updating
        its running statistics when called now (training mode, not using global stats), else None."""
        from paddle.nn.layer import norm

        if not isinstance(layer, (norm._BatchNormBase, norm.BatchNorm)) or not layer.training:
            return None
        if getattr(layer, "_use_global_stats", None) or getattr(layer, "_is_test", False):
            return None
        fmt = str(getattr(layer, "_data_format", None) or getattr(layer, "_data_layout", "NCHW"))
        return BatchNormUpdate(float(layer._momentum), 1 if fmt.startswith("NC") else -1, "_variance")

    def is_compiled(self, layer: Any) -> bool:
        # paddle.jit.load gives a TranslatedLayer, or a PirTranslatedLayer under PIR (not a subclass);
        # paddle.jit.to_static replaces forward by a StaticFunction (unless to_static is disabled)
        if type(layer).__name__ in ("TranslatedLayer", "PirTranslatedLayer"):
            return True
        forward = layer.__dict__.get("forward", getattr(type(layer), "forward", None))
        return "StaticFunction" in type(forward).__name__ and _to_static_enabled(self.fw)

    def rnn_layers(self, root: Any) -> list[tuple[str, Any]]:
        from paddle.nn.layer.rnn import RNNBase

        return [(p, lay) for p, lay in root.named_sublayers(include_self=True) if isinstance(lay, RNNBase)]

    def named_layers(self, root: Any) -> list[tuple[str, Any]]:
        return list(root.named_sublayers(include_self=True))

    def children(self, layer: Any) -> list[tuple[str, Any]]:
        return list(layer.named_children())

    def own_buffers(self, layer: Any) -> list[tuple[str, Any]]:
        return [(n, b) for n, b in layer.named_buffers(include_sublayers=False) if b is not None]

    def raw_state(self, layer: Any) -> list[StateEntry]:
        out = [StateEntry(n, p, not p.stop_gradient, False)
               for n, p in layer.named_parameters(include_sublayers=False)]
        non_persistable: set[str] = getattr(layer, "_non_persistable_buffer_names_set", set())
        for n, b in layer.named_buffers(include_sublayers=False):
            if b is None or n in non_persistable or not is_float_dtype(str(b.dtype)):
                continue
            out.append(StateEntry(n, b, False, True))
        return out

    def to_numpy(self, t: Any) -> np.ndarray:
        paddle = self.fw
        if t.is_sparse():  # .numpy() of a sparse paddle tensor crashes the process
            t = t.to_dense()
        if t.dtype in (paddle.float16, paddle.bfloat16):
            t = t.astype("float32")
        arr = t.detach().numpy() if hasattr(t, "detach") else t.numpy()
        # Tensor.numpy() already returns a fresh host copy; copying it again cost as much as
        # the paddle side's whole share of a comparison (profiled on the benchmark models)
        ptr = getattr(t, "data_ptr", None)
        if ptr is not None and arr.size and arr.ctypes.data == ptr():
            arr = arr.copy()
        return np.asarray(arr)

    def host_view(self, t: Any) -> np.ndarray:
        # the tensor's own memory where DLPack can hand it over (dense, not half precision): the weight
        # copy's undo values and the parameter gradients are read once, so a 0.5B model's worth of
        # host copies is saved each time
        return self.host_ref(t)[0]

    def host_ref(self, t: Any) -> tuple[np.ndarray, Any]:
        if t.is_sparse() or t.dtype in (self.fw.float16, self.fw.bfloat16, self.fw.bool):
            return self.to_numpy(t), None  # converted for comparison: a copy either way
        detached = t.detach()  # shares the storage and the in-place version counter, not the graph
        if not hasattr(detached, "_inplace_version"):
            return self.to_numpy(t), None
        try:
            arr = np.from_dlpack(detached)
        except Exception:  # noqa: BLE001 - a dtype or layout DLPack cannot carry: copy
            return self.to_numpy(t), None
        arr.flags.writeable = False
        return arr, (detached, detached._inplace_version())

    def changed(self, token: Any) -> bool:
        return token is not None and token[0]._inplace_version() != token[1]

    def on_cpu(self, root: Any) -> bool:
        if not str(self.fw.get_device()).startswith("cpu"):
            return False
        return all(p.place.is_cpu_place() for p in root.parameters())

    def cast_float32(self, t: Any) -> Any:
        return t.astype("float32")

    def from_numpy(self, arr: np.ndarray, like: Any | None = None) -> Any:
        t = self.fw.to_tensor(np.ascontiguousarray(arr))
        if like is not None and t.dtype != like.dtype:
            t = t.astype(like.dtype)
        return t

    def set_value(self, t: Any, arr: np.ndarray) -> None:
        if self.dtype_name(t) in ("float16", "bfloat16"):
            # paddle rejects a float32 array for a half tensor: cast on the paddle side
            t.set_value(self.fw.to_tensor(np.ascontiguousarray(arr, dtype=np.float32)).astype(t.dtype))
            return
        t.set_value(np.ascontiguousarray(arr).astype(self.to_numpy_dtype(t), copy=False))

    def to_numpy_dtype(self, t: Any) -> Any:
        name = self.dtype_name(t)
        return np.float32 if name in ("float16", "bfloat16") else np.dtype(name)

    def set_grad(self, t: Any, g: Any | None) -> None:
        if g is None:
            t.clear_gradient(False) if hasattr(t, "clear_gradient") else None
            with contextlib.suppress(Exception):
                t.grad = None
            return
        t.grad = g

    def zero_grad_in_place(self, t: Any) -> bool:
        if getattr(t, "grad", None) is None:
            return False
        t.clear_gradient(True)  # set_to_zero: the stored gradient is zeroed, not released
        return True

    def requires_grad(self, t: Any) -> bool:
        return not t.stop_gradient

    def carries_grad(self, t: Any) -> bool:
        return not t.stop_gradient and (t.is_floating_point() or t.is_complex())

    def channel_variance(self, t: Any, axis: int) -> tuple[np.ndarray, int]:
        """Biased variance of ``t`` per index of ``axis`` (over every other dim), and the elements per index.

        Computed where the tensor lives, so only one value per channel reaches the host.
        """
        axis %= len(t.shape)
        dims = [i for i in range(len(t.shape)) if i != axis]
        with self.no_grad():
            v = self.fw.var(t.astype("float32"), axis=dims, unbiased=False)
        return self.to_numpy(v).astype(np.float64), int(t.size // max(1, int(t.shape[axis])))

    def set_requires_grad(self, t: Any, flag: bool) -> None:
        t.stop_gradient = not flag

    def clone_detached(self, t: Any) -> Any:
        return t.detach().clone()

    def add_pre_hook(self, layer: Any, fn: PreHook) -> Any:
        # with_kwargs: ``fn`` sees the keyword arguments too, and the (args, kwargs) it returns replace both
        return layer.register_forward_pre_hook(fn, with_kwargs=True)

    def add_post_hook(self, layer: Any, fn: PostHook) -> Any:
        def hook(lay: Any, args: tuple[Any, ...], out: Any) -> None:
            fn(lay, args, out)

        return layer.register_forward_post_hook(hook)

    def record_ops(self, trace: Trace) -> contextlib.AbstractContextManager[Trace]:
        return record_paddle(self, trace)

    def hook_count(self, root: Any) -> int:
        n = 0
        for _, layer in self.named_layers(root):
            n += len(getattr(layer, "_forward_pre_hooks", {})) + len(getattr(layer, "_forward_post_hooks", {}))
        return n

    def no_grad(self) -> contextlib.AbstractContextManager[Any]:
        ctx: contextlib.AbstractContextManager[Any] = self.fw.no_grad()
        return ctx

    def seed(self, seed: int) -> None:
        self.fw.seed(seed)

    def rng_state(self) -> Any:
        return self.fw.get_rng_state()

    def set_rng_state(self, state: Any) -> None:
        self.fw.set_rng_state(state)

    def clear_grads(self, root: Any) -> None:
        for _, p in root.named_parameters():
            p.clear_gradient(False)

    def grads_of(self, outputs: list[Any], inputs: list[Any], grad_outputs: list[Any]) -> list[Any | None]:
        try:
            return list(self.fw.grad(outputs, inputs, grad_outputs, retain_graph=True, allow_unused=True))
        except RuntimeError as exc:
            # paddle refuses two inputs sharing one gradient record (an in-place op can hand back
            # a second Python tensor for it; nothing public tells them apart): ask for the halves
            if "AlreadyExists" not in str(exc) or len(inputs) < 2:
                raise
        mid = len(inputs) // 2
        return self.grads_of(outputs, inputs[:mid], grad_outputs) + \
            self.grads_of(outputs, inputs[mid:], grad_outputs)

    def value_version(self, t: Any) -> int:
        return int(getattr(t, "inplace_version", -1))

    def shares_gradient(self, a: Any, b: Any) -> bool:
        """paddle's full slice (``q[..., :head_dim]``) returns a second tensor object on the same memory
        with the *same* backward node: paddle gives both one gradient (and refuses both as inputs of
        ``paddle.grad``)."""
        if a is b or a.stop_gradient or b.stop_gradient or list(a.shape) != list(b.shape):
            return False
        try:
            node_a, node_b = a.grad_fn, b.grad_fn
            return node_a is not None and node_a is node_b and a.data_ptr() == b.data_ptr()
        except Exception:  # noqa: BLE001 - a tensor without a readable node or memory shares nothing
            return False

    def custom_backward(self, t: Any) -> str:
        name = self.grad_node_name(t)
        return name[len("GradNodePyLayer_"):] if name.startswith("GradNodePyLayer_") else ""

    def step_optimizer(self, opt: Any) -> None:
        if hasattr(opt, "step") and hasattr(opt, "clear_grad"):
            opt.step()
            opt.clear_grad()
        else:
            opt()


def _to_static_enabled(paddle: Any) -> bool:
    try:
        from paddle.jit.dy2static.program_translator import ProgramTranslator

        return bool(ProgramTranslator().enable_to_static)
    except Exception:  # noqa: BLE001 - another paddle layout: assume the default (enabled)
        return True


PADDLE = PaddleSide()
