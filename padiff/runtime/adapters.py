"""One small interface per framework: walk layers, own state, hooks, tensors, grads, modes.

Framework differences live here (and in ``weights.py``), nowhere else: the engine calls
``PADDLE.xxx`` / ``TORCH.xxx`` and never checks tensor types itself. Frameworks are
imported lazily so ``import padiff`` stays cheap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StateEntry:
    """One tensor a layer owns directly: a parameter or a buffer."""

    name: str
    tensor: Any
    trainable: bool
    is_buffer: bool


class Side:
    """Operations padiff needs from one framework; see :data:`PADDLE` and :data:`TORCH`."""

    name: str = ""

    # --- identification --------------------------------------------------------------
    def is_model(self, obj: Any) -> bool:
        raise NotImplementedError

    def is_tensor(self, obj: Any) -> bool:
        raise NotImplementedError

    def is_compiled(self, layer: Any) -> bool:
        """A scripted / traced / loaded static layer: its insides cannot be hooked."""
        return False

    # --- tree ------------------------------------------------------------------------
    def named_layers(self, root: Any) -> list[tuple[str, Any]]:
        """``(path, layer)`` for the root (``""``) and every sublayer, definition order."""
        raise NotImplementedError

    def children(self, layer: Any) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def raw_state(self, layer: Any) -> list[StateEntry]:
        """Parameters and float buffers held directly by ``layer`` (not its children)."""
        raise NotImplementedError

    def own_buffers(self, layer: Any) -> list[tuple[str, Any]]:
        """Every buffer held directly by ``layer``, whatever its dtype or persistence.

        Snapshots restore all of them (an integer step counter, a non-persistent EMA), not
        only the float persistent ones :meth:`raw_state` pairs for weight copies.
        """
        raise NotImplementedError

    def put_buffer(self, layer: Any, name: str, t: Any) -> None:
        """Register ``t`` again as ``layer``'s buffer ``name`` (a forward may have rebound it)."""
        layer._buffers[name] = t

    def owned_state(self, root: Any) -> dict[str, list[StateEntry]]:
        """``{path: entries}`` where each tensor is owned by its top-most holder only.

        Paddle's RNN layers hold the same parameters as their cells; ownership by the
        first (outermost) holder keeps each tensor in exactly one place.
        """
        seen: set[int] = set()
        out: dict[str, list[StateEntry]] = {}
        for path, layer in self.named_layers(root):
            own = []
            for entry in self.raw_state(layer):
                if id(entry.tensor) in seen:
                    continue
                seen.add(id(entry.tensor))
                own.append(entry)
            if own:
                out[path] = own
        return out

    # --- tensors -----------------------------------------------------------------------
    def to_numpy(self, t: Any) -> np.ndarray:
        """A host copy of ``t``; half types are widened to float32 for comparison."""
        raise NotImplementedError

    def host_view(self, t: Any) -> np.ndarray:
        """Like :meth:`to_numpy`, but may share memory with ``t``: read it at once, never keep it."""
        return self.to_numpy(t)

    def host_ref(self, t: Any) -> tuple[np.ndarray, Any]:
        """A read-only host array of ``t`` that may share its memory, and a token for :meth:`changed`.

        Keeping a reference instead of a copy costs no memory while the framework keeps the
        tensor anyway (most layer outputs are saved for backward); :meth:`changed` says whether
        the tensor was written in place since, which would make the shared array wrong.
        """
        return self.to_numpy(t), None

    def changed(self, token: Any) -> bool:
        """True if the tensor behind a :meth:`host_ref` token was modified in place since."""
        return False

    def from_numpy(self, arr: np.ndarray, like: Any | None = None) -> Any:
        raise NotImplementedError

    def on_cpu(self, root: Any) -> bool:
        """True if the model computes on the CPU (its parameters and the default device)."""
        raise NotImplementedError

    def compute_threads(self) -> int:
        """Threads the framework's CPU kernels use (0: unknown)."""
        return 0

    def set_value(self, t: Any, arr: np.ndarray) -> None:
        """Overwrite a parameter or buffer in place, keeping its dtype."""
        raise NotImplementedError

    def shape(self, t: Any) -> tuple[int, ...]:
        return tuple(int(s) for s in t.shape)

    def nn_class(self, name: str) -> type | None:
        """The framework's own layer class ``<framework>.nn.<name>``, or None (framework not loaded, no such class).

        Built-in special inits match layers by this class's identity, not by class name:
        another library's class that happens to be called ``MultiHeadAttention`` is not paddle's.
        """
        if not _module_is_loaded(self.name):
            return None
        cls = getattr(self.fw.nn, name, None)
        return cls if isinstance(cls, type) else None

    def dtype_name(self, t: Any) -> str:
        return str(t.dtype).replace("paddle.", "").replace("torch.", "")

    def grad(self, t: Any) -> Any | None:
        return t.grad

    def set_grad(self, t: Any, g: Any | None) -> None:
        raise NotImplementedError

    def requires_grad(self, t: Any) -> bool:
        raise NotImplementedError

    def carries_grad(self, t: Any) -> bool:
        """Whether a gradient can flow into ``t``: it requires grad and holds floating or complex numbers.

        Paddle marks integer results (``topk`` indices, ``argmax``) as needing grad when their
        input does, yet never computes one for them; a gradient hook there gets ``None``.
        """
        return self.requires_grad(t)

    def set_requires_grad(self, t: Any, flag: bool) -> None:
        raise NotImplementedError

    def add_grad_hook(self, t: Any, fn: Callable[[Any], Any]) -> Any:
        """Call ``fn(grad)`` when the gradient of ``t`` is computed; a return value replaces it."""
        return t.register_hook(fn)

    def clone_detached(self, t: Any) -> Any:
        raise NotImplementedError

    def cut_graph(self, t: Any) -> Any:
        """A leaf stand-in for an input computed from other tensors that require grad.

        padiff's backward then stops at the input instead of adding gradients to the
        user's tensors and parameters upstream of it; leaves are returned as they are.
        """
        if not self.is_tensor(t) or not self.requires_grad(t) or getattr(t, "is_leaf", True):
            return t
        leaf = t.detach()
        self.set_requires_grad(leaf, True)
        return leaf

    def backward(self, loss: Any) -> None:
        loss.backward()

    def widen(self, t: Any) -> Any:
        """``t`` cast to float32 when it is float16/bfloat16 (differentiably), else ``t`` itself."""
        if self.dtype_name(t) in ("float16", "bfloat16"):
            return self.cast_float32(t)
        return t

    def cast_float32(self, t: Any) -> Any:
        raise NotImplementedError

    def numel(self, t: Any) -> int:
        return int(np.prod(self.shape(t))) if self.shape(t) else 1

    # --- hooks ---------------------------------------------------------------------------
    def add_pre_hook(self, layer: Any, fn: Callable[[Any, tuple, dict], Any]) -> Any:
        """``fn(layer, args, kwargs)``; may return ``(args, kwargs)`` to replace the inputs."""
        raise NotImplementedError

    def add_post_hook(self, layer: Any, fn: Callable[[Any, tuple, Any], Any]) -> Any:
        """``fn(layer, args, output)``; return value is ignored."""
        raise NotImplementedError

    def hook_count(self, root: Any) -> int:
        """Total forward hooks registered anywhere under ``root`` (for leak checks)."""
        raise NotImplementedError

    # --- modes ---------------------------------------------------------------------------
    def is_training(self, layer: Any) -> bool:
        return bool(layer.training)

    def set_training(self, layer: Any, flag: bool) -> None:
        layer.training = flag

    def no_grad(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def seed(self, seed: int) -> None:
        raise NotImplementedError

    def rng_state(self) -> Any:
        """The framework's global random state (``seed`` is called during a run; the snapshot restores it)."""
        raise NotImplementedError

    def set_rng_state(self, state: Any) -> None:
        raise NotImplementedError

    def clear_grads(self, root: Any) -> None:
        """Drop every parameter gradient under ``root`` (the run starts from none)."""
        raise NotImplementedError

    def step_optimizer(self, opt: Any) -> None:
        """One optimizer step then clear grads; a zero-argument callable does both itself."""
        raise NotImplementedError

    # --- structure helpers -----------------------------------------------------------------
    def flatten(self, obj: Any) -> list[Any]:
        """Every tensor in a nested output, in a stable order; non-tensors are passed over.

        Dicts are walked in insertion order, so the two sides must build them alike (they
        do when the models are ports of each other).
        """
        out: list[Any] = []
        self._flatten(obj, out, 0)
        return out

    def _flatten(self, obj: Any, out: list[Any], depth: int) -> None:
        if depth > 50:
            return
        if self.is_tensor(obj):
            out.append(obj)
        elif isinstance(obj, Mapping):
            for v in obj.values():
                self._flatten(v, out, depth + 1)
        elif isinstance(obj, list | tuple):
            for v in obj:
                self._flatten(v, out, depth + 1)
        elif hasattr(obj, "__dataclass_fields__"):
            for name in obj.__dataclass_fields__:
                self._flatten(getattr(obj, name, None), out, depth + 1)

    def map_tensors(self, obj: Any, fn: Callable[[Any], Any]) -> Any:
        """Rebuild a nested structure with ``fn`` applied to each tensor."""
        if self.is_tensor(obj):
            return fn(obj)
        if isinstance(obj, dict):
            return type(obj)((k, self.map_tensors(v, fn)) for k, v in obj.items())
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*(self.map_tensors(v, fn) for v in obj))
        if isinstance(obj, list | tuple):
            return type(obj)(self.map_tensors(v, fn) for v in obj)
        return obj


class PaddleSide(Side):
    """Adapter for ``paddle.nn.Layer`` models."""

    name = "paddle"

    @property
    def fw(self) -> Any:
        import paddle

        return paddle

    def is_model(self, obj: Any) -> bool:
        return _module_is_loaded("paddle") and isinstance(obj, self.fw.nn.Layer)

    def is_tensor(self, obj: Any) -> bool:
        return _module_is_loaded("paddle") and isinstance(obj, self.fw.Tensor)

    def batchnorm_update(self, layer: Any) -> Any:
        """A :class:`~padiff.runtime.conventions.BatchNormUpdate` if ``layer`` is a BatchNorm updating
        its running statistics when called now (training mode, not using global stats), else None."""
        from paddle.nn.layer import norm

        from padiff.runtime.conventions import BatchNormUpdate

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

    def named_layers(self, root: Any) -> list[tuple[str, Any]]:
        return list(root.named_sublayers(include_self=True))

    def children(self, layer: Any) -> list[tuple[str, Any]]:
        return list(layer.named_children())

    def own_buffers(self, layer: Any) -> list[tuple[str, Any]]:
        return [(n, b) for n, b in layer.named_buffers(include_sublayers=False) if b is not None]

    def raw_state(self, layer: Any) -> list[StateEntry]:
        out = [StateEntry(n, p, not p.stop_gradient, False)
               for n, p in layer.named_parameters(include_sublayers=False)]
        non_persistable = getattr(layer, "_non_persistable_buffer_names_set", set())
        for n, b in layer.named_buffers(include_sublayers=False):
            if b is None or n in non_persistable or not _is_float_dtype(str(b.dtype)):
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

    def add_pre_hook(self, layer: Any, fn: Callable[[Any, tuple, dict], Any]) -> Any:
        def hook(lay: Any, args: tuple) -> Any:
            res = fn(lay, args, {})
            if res is not None:
                return res[0]
            return None

        return layer.register_forward_pre_hook(hook)

    def add_post_hook(self, layer: Any, fn: Callable[[Any, tuple, Any], Any]) -> Any:
        def hook(lay: Any, args: tuple, out: Any) -> None:
            fn(lay, args, out)

        return layer.register_forward_post_hook(hook)

    def hook_count(self, root: Any) -> int:
        n = 0
        for _, layer in self.named_layers(root):
            n += len(getattr(layer, "_forward_pre_hooks", {})) + len(getattr(layer, "_forward_post_hooks", {}))
        return n

    def no_grad(self) -> contextlib.AbstractContextManager[Any]:
        return self.fw.no_grad()

    def seed(self, seed: int) -> None:
        self.fw.seed(seed)

    def rng_state(self) -> Any:
        return self.fw.get_rng_state()

    def set_rng_state(self, state: Any) -> None:
        self.fw.set_rng_state(state)

    def clear_grads(self, root: Any) -> None:
        for _, p in root.named_parameters():
            p.clear_gradient(False)

    def step_optimizer(self, opt: Any) -> None:
        if hasattr(opt, "step") and hasattr(opt, "clear_grad"):
            opt.step()
            opt.clear_grad()
        else:
            opt()


class TorchSide(Side):
    """Adapter for ``torch.nn.Module`` models."""

    name = "torch"

    @property
    def fw(self) -> Any:
        import torch

        return torch

    def is_model(self, obj: Any) -> bool:
        return _module_is_loaded("torch") and isinstance(obj, self.fw.nn.Module)

    def is_unbiased_batchnorm(self, module: Any) -> bool:
        """Whether ``module`` is a torch BatchNorm tracking an exponential average (``momentum`` set),
        which updates its running variance with the unbiased batch variance."""
        bn = self.fw.nn.modules.batchnorm._BatchNorm
        return isinstance(module, bn) and module.track_running_stats and module.momentum is not None

    def is_tensor(self, obj: Any) -> bool:
        return _module_is_loaded("torch") and isinstance(obj, self.fw.Tensor)

    def is_compiled(self, layer: Any) -> bool:
        return isinstance(layer, self.fw.jit.ScriptModule) or type(layer).__name__ == "OptimizedModule"

    def named_layers(self, root: Any) -> list[tuple[str, Any]]:
        return list(root.named_modules(remove_duplicate=False))

    def children(self, layer: Any) -> list[tuple[str, Any]]:
        return list(layer.named_children())

    def own_buffers(self, layer: Any) -> list[tuple[str, Any]]:
        return [(n, b) for n, b in layer.named_buffers(recurse=False) if b is not None]

    def raw_state(self, layer: Any) -> list[StateEntry]:
        out = [StateEntry(n, p, p.requires_grad, False) for n, p in layer.named_parameters(recurse=False)]
        non_persistent = getattr(layer, "_non_persistent_buffers_set", set())
        for n, b in layer.named_buffers(recurse=False):
            if b is None or n in non_persistent or not b.is_floating_point():
                continue
            out.append(StateEntry(n, b, False, True))
        return out

    def to_numpy(self, t: Any) -> np.ndarray:
        torch = self.fw
        t = self._dense(t.detach())
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        if t.is_conj():
            t = t.resolve_conj()
        return t.cpu().numpy().copy()

    def host_view(self, t: Any) -> np.ndarray:
        torch = self.fw
        t = self._dense(t.detach())
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        if t.is_conj():
            t = t.resolve_conj()
        return t.cpu().numpy()

    def on_cpu(self, root: Any) -> bool:
        return all(p.device.type == "cpu" for p in root.parameters())

    def compute_threads(self) -> int:
        return int(self.fw.get_num_threads())

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

    def requires_grad(self, t: Any) -> bool:
        return bool(t.requires_grad)

    def set_requires_grad(self, t: Any, flag: bool) -> None:
        t.requires_grad_(flag)

    def clone_detached(self, t: Any) -> Any:
        return t.detach().clone()

    def add_pre_hook(self, layer: Any, fn: Callable[[Any, tuple, dict], Any]) -> Any:
        return layer.register_forward_pre_hook(fn, with_kwargs=True)

    def add_post_hook(self, layer: Any, fn: Callable[[Any, tuple, Any], Any]) -> Any:
        def hook(mod: Any, args: tuple, out: Any) -> None:
            fn(mod, args, out)

        return layer.register_forward_hook(hook)

    def hook_count(self, root: Any) -> int:
        n = 0
        for _, mod in self.named_layers(root):
            n += len(mod._forward_pre_hooks) + len(mod._forward_hooks) + len(mod._backward_hooks)
        return n

    def no_grad(self) -> contextlib.AbstractContextManager[Any]:
        return self.fw.no_grad()

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

    def step_optimizer(self, opt: Any) -> None:
        if hasattr(opt, "step") and hasattr(opt, "zero_grad"):
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            opt()

    def random_calls(self, root: Any, inputs: Mapping[str, Any]) -> list[str]:
        """Names of random torch functions one ``no_grad`` forward calls (dropout in train mode, rand...)."""
        from torch.overrides import TorchFunctionMode

        found: list[str] = []

        class _Watch(TorchFunctionMode):
            def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
                kwargs = kwargs or {}
                name = getattr(func, "__name__", "")
                if _draws_random(name, args, kwargs) and name not in found:
                    found.append(name)
                return func(*args, **kwargs)

        with self.fw.no_grad(), _Watch():
            root(**inputs)
        return found


def _module_is_loaded(name: str) -> bool:
    import sys

    if name in sys.modules:
        return True
    try:
        __import__(name)
    except ImportError:
        return False
    return True


_RANDOM_FUNCS = frozenset({
    "rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "randperm", "bernoulli", "bernoulli_",
    "multinomial", "normal", "normal_", "uniform_", "exponential_", "geometric_", "cauchy_", "log_normal_",
    "poisson", "random_",
})


def _draws_random(name: str, args: tuple, kwargs: Mapping[str, Any]) -> bool:
    """Whether a torch function call draws random numbers (dropout and rrelu only when training)."""
    if name in _RANDOM_FUNCS:
        return True
    if "dropout" in name or name.startswith("rrelu"):
        training = kwargs.get("training", kwargs.get("train", args[2] if len(args) > 2 else True))
        p = kwargs.get("p", args[1] if len(args) > 1 and isinstance(args[1], float | int) else 1.0)
        return bool(training) and (not isinstance(p, float | int) or p > 0)
    return False


def _to_static_enabled(paddle: Any) -> bool:
    try:
        from paddle.jit.dy2static.program_translator import ProgramTranslator

        return bool(ProgramTranslator().enable_to_static)
    except Exception:  # noqa: BLE001 - another paddle layout: assume the default (enabled)
        return True


def _is_float_dtype(name: str) -> bool:
    return any(k in name for k in ("float", "bfloat", "half", "double"))


PADDLE = PaddleSide()
TORCH = TorchSide()
SIDES: dict[str, Side] = {"paddle": PADDLE, "torch": TORCH}


def iter_sides() -> Iterator[Side]:
    """Paddle first, torch second, as everywhere in padiff."""
    yield PADDLE
    yield TORCH


def subtree_state(owned: Mapping[str, list[StateEntry]], top: str) -> list[StateEntry]:
    """Every tensor owned inside the layer at ``top``, named relative to it (``q_proj.weight``).

    Opaque pairs and special inits see their whole subtree as one set of tensors.
    """
    out: list[StateEntry] = []
    prefix = top + "." if top else ""
    for path, entries in owned.items():
        if path == top or (path.startswith(prefix) and prefix) or top == "":
            rel = path[len(prefix):] if prefix else path
            for e in entries:
                name = f"{rel}.{e.name}" if rel else e.name
                out.append(StateEntry(name, e.tensor, e.trainable, e.is_buffer))
    return out


def parts_state(owned: Mapping[str, list[StateEntry]], parts: Sequence[str]) -> list[StateEntry]:
    """Tensors of the split side of a fused pair, in the parts' order, each named by its layer path.

    ``q_proj.weight, q_proj.bias, k_proj.weight ...``: the order of the parts (not definition
    order) decides how they concatenate into the fused layer's tensors.
    """
    out: list[StateEntry] = []
    for path in parts:
        for e in owned.get(path, []):
            out.append(StateEntry(f"{path}.{e.name}" if path else e.name, e.tensor, e.trainable, e.is_buffer))
    return out


def pair_state(owned: Mapping[str, list[StateEntry]], paths: Sequence[str], subtree: bool) -> list[StateEntry]:
    """The tensors one side of a pair exchanges: several parts, a whole subtree, or one layer's own."""
    if len(paths) > 1:
        return parts_state(owned, paths)
    if subtree:
        return subtree_state(owned, paths[0])
    return list(owned.get(paths[0], []))
