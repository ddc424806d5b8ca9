"""What both framework adapters do the same way, written once over the :class:`FrameworkSide` methods.

A subclass supplies the framework calls (``paddle_side.py``, ``torch_side.py``); this class
builds the rest from them: ownership of shared tensors, nested-structure walking, the
float32 widening of half types, cutting an input from the user's graph.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from padiff.adapters import nested
from padiff.adapters import state as _state
from padiff.adapters.protocol import FrameworkSide, GradHook
from padiff.adapters.state import StateEntry


class Side(FrameworkSide):
    """Base of :class:`~padiff.adapters.paddle_side.PaddleSide` and :class:`~padiff.adapters.torch_side.TorchSide`."""

    name: str = ""

    def is_compiled(self, layer: Any) -> bool:
        """A scripted / traced / loaded static layer: its insides cannot be hooked."""
        return False

    def put_buffer(self, layer: Any, name: str, t: Any) -> None:
        """Register ``t`` again as ``layer``'s buffer ``name`` (a forward may have rebound it)."""
        layer._buffers[name] = t

    def owned_state(self, root: Any) -> dict[str, list[StateEntry]]:
        """``{path: entries}``, each tensor owned by its top-most holder only (:func:`.state.owned_state`)."""
        return _state.owned_state(self.named_layers(root), self.raw_state)

    # --- tensors -----------------------------------------------------------------------
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

    def compute_threads(self) -> int:
        """Threads the framework's CPU kernels use (0: unknown)."""
        return 0

    def limit_threads(self, n: int) -> contextlib.AbstractContextManager[Callable[[], None]]:
        """A context in which the framework's CPU kernels use at most ``n`` threads (here: no change)."""
        return contextlib.nullcontext(lambda: None)

    def shape(self, t: Any) -> tuple[int, ...]:
        """The shape of ``t`` as plain ints."""
        return tuple(int(s) for s in t.shape)

    def numel(self, t: Any) -> int:
        """The number of elements of ``t`` (1 for a scalar)."""
        return int(np.prod(self.shape(t))) if self.shape(t) else 1

    def nn_class(self, name: str) -> type | None:
        """The framework's own layer class ``<framework>.nn.<name>``, or None (framework not loaded, no such class).

        Built-in special inits match layers by this class's identity, not by class name:
        another library's class that happens to be called ``MultiHeadAttention`` is not paddle's.
        """
        if not framework_loaded(self.name):
            return None
        cls = getattr(self.fw.nn, name, None)
        return cls if isinstance(cls, type) else None

    def framework_class(self, dotted: str) -> type | None:
        """The framework's class at ``dotted`` under its root module (``"compat.nn.Linear"``), or None.

        None when the framework is not loaded or has no such class (an older release without
        ``paddle.compat``). Convention tables name classes this way; identity, not the class
        name, then decides whether a layer is one (:meth:`is_framework_layer`).
        """
        if not framework_loaded(self.name):
            return None
        obj: Any = self.fw
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj if isinstance(obj, type) else None

    def is_framework_layer(self, layer: Any, dotted: str) -> bool:
        """True when ``layer`` is the framework's class ``dotted`` computing with its own ``forward``.

        A subclass that keeps the framework's ``forward`` (torch's ``NonDynamicallyQuantizableLinear``)
        counts; one that writes its own ``forward`` does not: its use of the weights is its own.
        """
        cls = self.framework_class(dotted)
        if cls is None or not isinstance(layer, cls):
            return False
        return getattr(type(layer), "forward", None) is getattr(cls, "forward", None)

    def run_alone(self, layer: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Call ``layer`` alone on ``inputs`` (host arrays) without gradients; every output tensor as a host array.

        Used to confirm a weight layout numerically; the caller sets and restores modes and values.
        """
        args = [self.from_numpy(a) for a in inputs]
        with self.no_grad():
            out = layer(*args)
        return [np.array(self.to_numpy(t), copy=True) for t in self.flatten(out)]

    def dtype_name(self, t: Any) -> str:
        """``"float32"``, ``"bfloat16"``...: the dtype without the framework prefix."""
        return str(t.dtype).replace("paddle.", "").replace("torch.", "")

    def is_floating(self, t: Any) -> bool:
        """True if ``t`` holds floating-point numbers (of any width)."""
        return bool(t.is_floating_point())

    def is_leaf(self, t: Any) -> bool:
        """True if ``t`` was not computed from tensors that require grad (a user input, a parameter)."""
        return bool(getattr(t, "is_leaf", True))

    def mean(self, t: Any) -> Any:
        """The mean of every element of ``t``, as a differentiable scalar tensor."""
        return t.mean()

    def widen(self, t: Any) -> Any:
        """``t`` cast to float32 when it is float16/bfloat16 (differentiably), else ``t`` itself."""
        if self.dtype_name(t) in ("float16", "bfloat16"):
            return self.cast_float32(t)
        return t

    def cut_graph(self, t: Any) -> Any:
        """A leaf stand-in for an input computed from other tensors that require grad.

        padiff's backward then stops at the input instead of adding gradients to the
        user's tensors and parameters upstream of it; leaves are returned as they are.
        """
        if not self.is_tensor(t) or not self.requires_grad(t) or self.is_leaf(t):
            return t
        leaf = t.detach()
        self.set_requires_grad(leaf, True)
        return leaf

    # --- gradients ---------------------------------------------------------------------
    def grad(self, t: Any) -> Any | None:
        """The gradient stored on ``t``, or None."""
        return t.grad

    def carries_grad(self, t: Any) -> bool:
        """Whether a gradient can flow into ``t``: it requires grad and holds floating or complex numbers.

        Paddle marks integer results (``topk`` indices, ``argmax``) as needing grad when their
        input does, yet never computes one for them; a gradient hook there gets ``None``.
        """
        return self.requires_grad(t)

    def add_grad_hook(self, t: Any, fn: GradHook) -> Any:
        """Call ``fn(grad)`` when the gradient of ``t`` is computed; a return value replaces it."""
        return t.register_hook(fn)

    def backward(self, loss: Any) -> None:
        """Run the backward pass from a scalar ``loss``."""
        loss.backward()

    def rnn_layers(self, root: Any) -> list[tuple[str, Any]]:
        """``(path, layer)`` of the framework's own recurrent layers (LSTM, GRU, simple RNN) in ``root``.

        They take a ``dropout`` between stacked layers and, in paddle, run a fused kernel whose CPU
        backward needs train mode (:mod:`padiff.runtime.rnn_mode`). None by default.
        """
        return []

    def value_version(self, t: Any) -> int:
        """A counter that in-place operations on ``t`` advance (-1 where the framework keeps none)."""
        return int(getattr(t, "_version", -1))

    def shares_gradient(self, a: Any, b: Any) -> bool:
        """Whether two distinct tensor objects are one tensor to autograd (one gradient for both).

        False by default: a torch view has a backward node of its own.
        """
        return False

    def grad_node_name(self, t: Any) -> str:
        """Name of the backward node that produced ``t`` (``FBackward``, ``GradNodePyLayer_F``); "" for a leaf."""
        node = getattr(t, "grad_fn", None)
        try:
            return str(node.name()) if node is not None else ""
        except Exception:  # noqa: BLE001 - a node without a readable name is reported unnamed
            return type(node).__name__

    # --- modes ---------------------------------------------------------------------------
    def is_training(self, layer: Any) -> bool:
        """True if ``layer`` is in train mode."""
        return bool(layer.training)

    def set_training(self, layer: Any, flag: bool) -> None:
        """Set ``layer``'s own train/eval flag (not its children's)."""
        layer.training = flag

    # --- nested structures -------------------------------------------------------------------
    def flatten(self, obj: Any) -> list[Any]:
        """Every tensor in a nested output, in a stable order; non-tensors are passed over.

        Dicts are walked in insertion order, so the two sides must build them alike (they
        do when the models are ports of each other).
        """
        return nested.flatten(obj, self.is_tensor)

    def map_tensors(self, obj: Any, fn: Callable[[Any], Any]) -> Any:
        """Rebuild a nested structure with ``fn`` applied to each tensor."""
        return nested.map_tensors(obj, self.is_tensor, fn)


def framework_loaded(name: str) -> bool:
    """True if the framework ``name`` is imported, or can be (it is then imported).

    A framework made unimportable with ``sys.modules[name] = None`` (the standard way to block a
    package) is absent, as is one whose import fails.
    """
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def framework_imported(name: str) -> bool:
    """True if the framework ``name`` is already imported (nothing is imported here).

    "Is this object a paddle model?" needs no import: an object of a framework that is not
    loaded cannot be one of its models or tensors. So a torch-only process (paddle blocked,
    broken or just not imported) never touches paddle, and the reverse.
    """
    return sys.modules.get(name) is not None


def is_float_dtype(name: str) -> bool:
    """True for a dtype name of floating-point numbers (``float16``, ``bfloat16``, ``float64``...)."""
    return any(k in name for k in ("float", "bfloat", "half", "double"))
