"""A tiny framework of plain Python objects, behind the adapter interface.

Code written against :class:`padiff.adapters.FrameworkSide` runs on it unchanged, so the
engine's recording and call modules are tested here without paddle or torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from padiff.adapters import Side, StateEntry


class Tensor:
    """An array, whether a gradient flows into it, and the hooks on its gradient."""

    def __init__(self, value: Any, requires_grad: bool = False, dtype: str = "float32") -> None:
        self.value = np.asarray(value, dtype=np.float64)
        self.requires_grad = requires_grad
        self.dtype = dtype
        self.grad: Any = None
        self.grad_hooks: list[Callable[[Any], Any]] = []

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    def mean(self) -> Tensor:
        return Tensor(self.value.mean(), self.requires_grad)

    def __add__(self, other: Tensor) -> Tensor:
        return Tensor(self.value + other.value, self.requires_grad or other.requires_grad)

    def __mul__(self, other: Tensor) -> Tensor:
        return Tensor(self.value * other.value, self.requires_grad or other.requires_grad)

    def sum(self) -> Tensor:
        return Tensor(self.value.sum(), self.requires_grad)

    def fire_grad(self, g: Any) -> list[Any]:
        """What each gradient hook returned for gradient ``g``."""
        return [h(g) for h in self.grad_hooks]


class _Handle:
    def __init__(self, hooks: list[Any], fn: Any) -> None:
        self.hooks, self.fn = hooks, fn

    def remove(self) -> None:
        if self.fn in self.hooks:
            self.hooks.remove(self.fn)


class Layer:
    """A layer: children by name, a forward function, pre and post hooks."""

    def __init__(self, forward: Callable[..., Any] | None = None, **children: Layer) -> None:
        self.children = dict(children)
        self.fn = forward
        self.pre: list[Any] = []
        self.post: list[Any] = []
        self.params: list[StateEntry] = []
        self.training = False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        assert self.fn is not None
        return self.fn(self, *args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for h in list(self.pre):
            res = h(self, args, kwargs)
            if res is not None:
                args, kwargs = res
        out = self.forward(*args, **kwargs)
        for h in list(self.post):
            h(self, args, out)
        return out


class FakeSide(Side):
    """The adapter of the fake framework."""

    name = "fake"

    @property
    def fw(self) -> Any:
        return None

    def is_model(self, obj: Any) -> bool:
        return isinstance(obj, Layer)

    def is_tensor(self, obj: Any) -> bool:
        return isinstance(obj, Tensor)

    def named_layers(self, root: Any) -> list[tuple[str, Any]]:
        out = [("", root)]

        def walk(layer: Layer, prefix: str) -> None:
            for name, child in layer.children.items():
                path = f"{prefix}{name}"
                out.append((path, child))
                walk(child, path + ".")

        walk(root, "")
        return out

    def children(self, layer: Any) -> list[tuple[str, Any]]:
        return list(layer.children.items())

    def raw_state(self, layer: Any) -> list[StateEntry]:
        return list(layer.params)

    def own_buffers(self, layer: Any) -> list[tuple[str, Any]]:
        return []

    def to_numpy(self, t: Any) -> np.ndarray:
        return np.array(t.value, dtype=np.float32)

    def from_numpy(self, arr: np.ndarray, like: Any | None = None) -> Any:
        return Tensor(arr)

    def set_value(self, t: Any, arr: np.ndarray) -> None:
        t.value = np.asarray(arr, dtype=np.float64)

    def is_floating(self, t: Any) -> bool:
        return "float" in t.dtype

    def set_grad(self, t: Any, g: Any | None) -> None:
        t.grad = g

    def requires_grad(self, t: Any) -> bool:
        return t.requires_grad

    def set_requires_grad(self, t: Any, flag: bool) -> None:
        t.requires_grad = flag

    def carries_grad(self, t: Any) -> bool:
        return t.requires_grad and self.is_floating(t)

    def add_grad_hook(self, t: Any, fn: Callable[[Any], Any]) -> Any:
        t.grad_hooks.append(fn)
        return _Handle(t.grad_hooks, fn)

    def backward(self, loss: Any) -> None:
        raise RuntimeError("no autograd in the fake framework")

    def clear_grads(self, root: Any) -> None:
        for _, layer in self.named_layers(root):
            for e in layer.params:
                e.tensor.grad = None

    def step_optimizer(self, opt: Any) -> None:
        opt()

    def clone_detached(self, t: Any) -> Any:
        return Tensor(t.value.copy())

    def cast_float32(self, t: Any) -> Any:
        return Tensor(t.value, t.requires_grad, "float32")

    def add_pre_hook(self, layer: Any, fn: Any) -> Any:
        layer.pre.append(fn)
        return _Handle(layer.pre, fn)

    def add_post_hook(self, layer: Any, fn: Any) -> Any:
        layer.post.append(fn)
        return _Handle(layer.post, fn)

    def hook_count(self, root: Any) -> int:
        return sum(len(m.pre) + len(m.post) for _, m in self.named_layers(root))

    def on_cpu(self, root: Any) -> bool:
        return True

    def no_grad(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def seed(self, seed: int) -> None:
        np.random.seed(seed)

    def rng_state(self) -> Any:
        return np.random.get_state()

    def set_rng_state(self, state: Any) -> None:
        np.random.set_state(state)


FAKE = FakeSide()


def add(layer: Layer, x: Tensor, y: float = 1.0) -> Tensor:
    return Tensor(x.value + y, x.requires_grad)


def chain(layer: Layer, x: Tensor) -> Any:
    """Calls ``a``, then ``b`` twice, and returns two tensors, the second cut from the graph."""
    h = layer.children["b"](layer.children["b"](layer.children["a"](x)))
    return h, Tensor(h.value * 2, False)
