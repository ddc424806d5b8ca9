"""The interface padiff needs from one framework, as a :class:`typing.Protocol`.

Everything above this package (pairing, the engine, weights, the aligner's numeric
checks, the offline recorder) talks to a model and its tensors only through these
methods, so a framework difference is written once, in ``paddle_side.py`` or
``torch_side.py``, and code written against :class:`FrameworkSide` can be unit-tested
with a small fake framework (see ``tests/adapters``).

Paths are the strings ``named_sublayers()`` / ``named_modules()`` give; the root is ``""``.
Tensors are opaque to callers: they only ever reach numpy through :meth:`to_numpy`,
:meth:`host_view` or :meth:`host_ref`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from padiff.adapters.op_events import Trace
from padiff.adapters.state import StateEntry

#: ``fn(layer, args, kwargs)`` before a layer call; may return ``(args, kwargs)`` to replace the inputs
PreHook = Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]
#: ``fn(layer, args, output)`` after a layer call; its return value is ignored
PostHook = Callable[[Any, tuple[Any, ...], Any], Any]
#: ``fn(grad)`` when a tensor's gradient is computed; a tensor returned replaces the gradient
GradHook = Callable[[Any], Any]
#: ``fn(name, args, kwargs)`` for one framework function call; True keeps the name
CallFilter = Callable[[str, tuple[Any, ...], Mapping[str, Any]], bool]


class FrameworkSide(Protocol):
    """One framework (paddle or torch) as padiff sees it."""

    #: ``"paddle"`` or ``"torch"``: the word every message and record uses for the side
    name: str

    @property
    def fw(self) -> Any:
        """The framework module itself, imported on first use (adapter internals only)."""
        ...

    # --- identification --------------------------------------------------------------
    def is_model(self, obj: Any) -> bool:
        """True for a model of this framework (``paddle.nn.Layer`` / ``torch.nn.Module``)."""
        ...

    def is_tensor(self, obj: Any) -> bool:
        """True for a tensor of this framework; False (without importing it) when it is not loaded."""
        ...

    def is_compiled(self, layer: Any) -> bool:
        """A scripted / traced / loaded static layer: its insides cannot be hooked."""
        ...

    # --- tree ------------------------------------------------------------------------
    def named_layers(self, root: Any) -> list[tuple[str, Any]]:
        """``(path, layer)`` for the root (``""``) and every sublayer, definition order."""
        ...

    def children(self, layer: Any) -> list[tuple[str, Any]]:
        """``(name, layer)`` of the direct sublayers."""
        ...

    def raw_state(self, layer: Any) -> list[StateEntry]:
        """Parameters and float buffers held directly by ``layer`` (not its children)."""
        ...

    def own_buffers(self, layer: Any) -> list[tuple[str, Any]]:
        """Every buffer held directly by ``layer``, whatever its dtype or persistence."""
        ...

    def put_buffer(self, layer: Any, name: str, t: Any) -> None:
        """Register ``t`` again as ``layer``'s buffer ``name`` (a forward may have rebound it)."""
        ...

    def owned_state(self, root: Any) -> dict[str, list[StateEntry]]:
        """``{path: entries}``, each tensor owned by its top-most holder only."""
        ...

    # --- tensors -----------------------------------------------------------------------
    def to_numpy(self, t: Any) -> np.ndarray:
        """A host copy of ``t``; half types are widened to float32 for comparison."""
        ...

    def host_view(self, t: Any) -> np.ndarray:
        """Like :meth:`to_numpy`, but may share memory with ``t``: read it at once, never keep it."""
        ...

    def host_ref(self, t: Any) -> tuple[np.ndarray, Any]:
        """A read-only host array of ``t`` that may share its memory, and a token for :meth:`changed`."""
        ...

    def changed(self, token: Any) -> bool:
        """True if the tensor behind a :meth:`host_ref` token was modified in place since."""
        ...

    def from_numpy(self, arr: np.ndarray, like: Any | None = None) -> Any:
        """A tensor holding ``arr`` (with ``like``'s dtype and device when given)."""
        ...

    def set_value(self, t: Any, arr: np.ndarray) -> None:
        """Overwrite a parameter or buffer in place, keeping its dtype."""
        ...

    def shape(self, t: Any) -> tuple[int, ...]:
        """The shape of ``t`` as plain ints."""
        ...

    def numel(self, t: Any) -> int:
        """The number of elements of ``t`` (1 for a scalar)."""
        ...

    def dtype_name(self, t: Any) -> str:
        """``"float32"``, ``"bfloat16"``...: the dtype without the framework prefix."""
        ...

    def is_floating(self, t: Any) -> bool:
        """True if ``t`` holds floating-point numbers (of any width)."""
        ...

    def is_leaf(self, t: Any) -> bool:
        """True if ``t`` was not computed from tensors that require grad (a user input, a parameter)."""
        ...

    def mean(self, t: Any) -> Any:
        """The mean of every element of ``t``, as a differentiable scalar tensor."""
        ...

    def widen(self, t: Any) -> Any:
        """``t`` cast to float32 when it is float16/bfloat16 (differentiably), else ``t`` itself."""
        ...

    def cast_float32(self, t: Any) -> Any:
        """``t`` cast to float32, differentiably."""
        ...

    def clone_detached(self, t: Any) -> Any:
        """A copy of ``t`` cut from the graph."""
        ...

    def cut_graph(self, t: Any) -> Any:
        """A leaf stand-in for an input computed from other tensors that require grad."""
        ...

    # --- gradients ---------------------------------------------------------------------
    def grad(self, t: Any) -> Any | None:
        """The gradient stored on ``t``, or None."""
        ...

    def set_grad(self, t: Any, g: Any | None) -> None:
        """Store ``g`` as ``t``'s gradient (None clears it)."""
        ...

    def zero_grad_in_place(self, t: Any) -> bool:
        """Fill ``t``'s stored gradient with zeros where it is (no new tensor); False if it has none."""
        ...

    def requires_grad(self, t: Any) -> bool:
        """True if a backward pass computes a gradient for ``t`` (paddle: not ``stop_gradient``)."""
        ...

    def carries_grad(self, t: Any) -> bool:
        """Whether a gradient can flow into ``t``: it requires grad and holds floating or complex numbers."""
        ...

    def set_requires_grad(self, t: Any, flag: bool) -> None:
        """Make ``t`` require grad or not."""
        ...

    def add_grad_hook(self, t: Any, fn: GradHook) -> Any:
        """Call ``fn(grad)`` when the gradient of ``t`` is computed; returns a handle with ``remove()``."""
        ...

    def backward(self, loss: Any) -> None:
        """Run the backward pass from a scalar ``loss``."""
        ...

    def grads_of(self, outputs: list[Any], inputs: list[Any], grad_outputs: list[Any]) -> list[Any | None]:
        """Gradients of ``inputs`` from ``outputs`` given their gradients, graph kept, nothing accumulated."""
        ...

    def grad_node_name(self, t: Any) -> str:
        """Name of the backward node that produced ``t`` (``FBackward``, ``GradNodePyLayer_F``); "" for a leaf."""
        ...

    def value_version(self, t: Any) -> int:
        """A counter that in-place operations on ``t`` advance (-1 where the framework keeps none)."""
        ...

    def shares_gradient(self, a: Any, b: Any) -> bool:
        """Whether two distinct tensor objects are one tensor to autograd (one gradient for both)."""
        ...

    def custom_backward(self, t: Any) -> str:
        """The class of the user's custom autograd Function / PyLayer that produced ``t``, or ""."""
        ...

    def clear_grads(self, root: Any) -> None:
        """Drop every parameter gradient under ``root`` (the run starts from none)."""
        ...

    def step_optimizer(self, opt: Any) -> None:
        """One optimizer step then clear grads; a zero-argument callable does both itself."""
        ...

    # --- hooks ---------------------------------------------------------------------------
    def add_pre_hook(self, layer: Any, fn: PreHook) -> Any:
        """Call ``fn`` before each call of ``layer``; returns a handle with ``remove()``."""
        ...

    def add_post_hook(self, layer: Any, fn: PostHook) -> Any:
        """Call ``fn`` after each call of ``layer``; returns a handle with ``remove()``."""
        ...

    def hook_count(self, root: Any) -> int:
        """Total forward hooks registered anywhere under ``root`` (for leak checks)."""
        ...

    # --- operations --------------------------------------------------------------------------
    def record_ops(self, trace: Trace) -> contextlib.AbstractContextManager[Trace]:
        """A context in which every outermost framework operation this thread runs lands in ``trace``.

        Values (host copies) or, when ``trace.keep_values`` is False, tensor identities; leaving
        the block puts the framework back exactly as it was, errors included.
        """
        ...

    # --- machine, modes, randomness --------------------------------------------------------
    def on_cpu(self, root: Any) -> bool:
        """True if the model computes on the CPU (its parameters and the default device)."""
        ...

    def compute_threads(self) -> int:
        """Threads the framework's CPU kernels use (0: unknown)."""
        ...

    def limit_threads(self, n: int) -> contextlib.AbstractContextManager[Callable[[], None]]:
        """A context in which the framework's CPU kernels use at most ``n`` threads, put back on leaving.

        It gives a function that puts them back earlier (call it from the thread that runs the
        framework's operations, between them).
        """
        ...

    def is_training(self, layer: Any) -> bool:
        """True if ``layer`` is in train mode."""
        ...

    def set_training(self, layer: Any, flag: bool) -> None:
        """Set ``layer``'s own train/eval flag (not its children's)."""
        ...

    def no_grad(self) -> contextlib.AbstractContextManager[Any]:
        """A context in which no graph is recorded."""
        ...

    def seed(self, seed: int) -> None:
        """Seed the framework's global random generator."""
        ...

    def rng_state(self) -> Any:
        """The framework's global random state (the snapshot restores it after a run)."""
        ...

    def set_rng_state(self, state: Any) -> None:
        """Put back a state :meth:`rng_state` returned."""
        ...

    def nn_class(self, name: str) -> type | None:
        """The framework's own layer class ``<framework>.nn.<name>``, or None."""
        ...

    # --- nested structures -------------------------------------------------------------------
    def flatten(self, obj: Any) -> list[Any]:
        """Every tensor in a nested output, in a stable order (:func:`padiff.adapters.nested.flatten`)."""
        ...

    def map_tensors(self, obj: Any, fn: Callable[[Any], Any]) -> Any:
        """Rebuild a nested structure with ``fn`` applied to each tensor."""
        ...
