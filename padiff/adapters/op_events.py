"""What one recorded framework operation is, and how its name and arguments read across frameworks.

Both recorders (:mod:`.torch_ops`, :mod:`.paddle_ops`, reached through each side's
``record_ops``) produce :class:`OpEvent`s with a *canonical kind* (``view`` and ``reshape``
are both ``reshape``, ``Tensor.__mul__`` and ``paddle.scale`` are both ``mul``) and canonical
argument names (torch ``dim`` and paddle ``axis`` are both ``axis``; ``eps`` and ``epsilon``
both ``epsilon``), so the aligner compares like with like without knowing either framework.
Framework-free, like the other records the adapters hand out.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from padiff.adapters.frames import Frame

# framework op name (without "Tensor."/"F."/"torch."/"paddle." prefix) -> canonical kind
_KINDS: dict[str, str] = {}
for _kind, _names in {
    "mul": ("__mul__", "__rmul__", "mul", "multiply", "scale", "mul_", "multiply_", "scale_"),
    "add": ("__add__", "__radd__", "add", "add_"),
    "sub": ("__sub__", "__rsub__", "sub", "subtract", "rsub", "sub_", "subtract_"),
    "div": ("__truediv__", "__rtruediv__", "__div__", "__rdiv__", "div", "divide", "true_divide", "div_"),
    "matmul": ("__matmul__", "__rmatmul__", "matmul", "bmm", "mm"),
    "reshape": ("reshape", "view", "flatten", "reshape_", "view_as", "reshape_as"),
    "transpose": ("transpose", "permute", "t", "swapaxes", "swapdims", "moveaxis", "transpose_"),
    "pow": ("__pow__", "__rpow__", "pow", "square", "float_power"),
    "neg": ("__neg__", "neg", "negative"),
    "getitem": ("__getitem__",),
    "cat": ("cat", "concat", "concatenate"),
    "split": ("split", "chunk", "tensor_split", "unbind"),
    "cast": ("astype", "cast", "to", "float", "double", "half", "type", "bfloat16"),
    "mean": ("mean",),
    "sum": ("sum",),
    "expand": ("expand", "broadcast_to", "expand_as", "tile", "repeat"),
    "masked_fill": ("masked_fill", "masked_fill_"),
    "sdpa": ("scaled_dot_product_attention",),
    "softmax": ("softmax", "softmax_"),
    "relu": ("relu", "relu_"),
    "silu": ("silu", "swish"),
}.items():
    for _n in _names:
        _KINDS[_n] = _kind

# torch builtins carry no signature: the positional names of the arguments read across frameworks
_TORCH_POSITIONAL: dict[str, tuple[str, ...]] = {
    "gelu": ("input", "approximate"),
    "softmax": ("input", "dim"),
    "log_softmax": ("input", "dim"),
    "mean": ("input", "dim", "keepdim"),
    "sum": ("input", "dim", "keepdim"),
    "layer_norm": ("input", "normalized_shape", "weight", "bias", "eps"),
    "rms_norm": ("input", "normalized_shape", "weight", "eps"),
    "cat": ("tensors", "dim"),
    "concat": ("tensors", "dim"),
    "unsqueeze": ("input", "dim"),
    "squeeze": ("input", "dim"),
    "leaky_relu": ("input", "negative_slope"),
    "dropout": ("input", "p", "training"),
    "var": ("input", "dim"),
    "std": ("input", "dim"),
}

# defaults that matter when one side passes an argument and the other relies on the default
_DEFAULTS: dict[str, dict[str, Any]] = {
    "gelu": {"approximate": "none"},
    "layer_norm": {"epsilon": 1e-5},
    "batch_norm": {"epsilon": 1e-5},
    "rms_norm": {},
}

_ARG_NAMES = {"dim": "axis", "axis": "axis", "eps": "epsilon", "epsilon": "epsilon", "keepdim": "keepdim",
              "approximate": "approximate", "negative_slope": "negative_slope", "p": "p", "perm": "perm",
              "dims": "perm", "dim0": "dim0", "dim1": "dim1", "exponent": "exponent", "y": "other",
              "other": "other", "scale": "scale", "bias": "bias_value", "normalized_shape": "normalized_shape",
              "is_causal": "is_causal", "training": "training", "alpha": "alpha", "beta": "beta"}

# arguments that are tensors on one side and never compared as settings
_IGNORED_ARGS = {"name", "out", "input", "x", "tensors", "weight", "bias_tensor", "dtype_hint"}


def canonical_kind(name: str) -> str:
    """The framework-neutral kind of an op name (``Tensor.view`` -> ``reshape``)."""
    short = name.rsplit(".", 1)[-1]
    return _KINDS.get(short, short.rstrip("_") if not short.startswith("__") else short)


def canonical_value(key: str, value: Any) -> Any:
    """A setting as both frameworks can agree on it (``approximate=True`` is ``"tanh"``)."""
    if key == "approximate":
        if isinstance(value, bool):
            return "tanh" if value else "none"
        return str(value)
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real):  # a numpy float32 scalar is a float too, not truncated to an int
        return float(value)
    return value


def canonical_params(kind: str, named: dict[str, Any], scalars: list[Any]) -> dict[str, Any]:
    """Readable settings of one op: named arguments under canonical names, plus python scalar operands."""
    out: dict[str, Any] = dict(_DEFAULTS.get(kind, {}))
    for k, v in named.items():
        if k in _IGNORED_ARGS or not _plain(v):
            continue
        key = _ARG_NAMES.get(k, k)
        out[key] = canonical_value(key, v)
    if scalars and kind in ("mul", "add", "sub", "div", "pow"):
        out["scalar"] = canonical_value("scalar", scalars[0])
    return out


def torch_positional_names(short_name: str) -> tuple[str, ...]:
    """Names of a torch builtin's positional arguments, where padiff knows them."""
    return _TORCH_POSITIONAL.get(short_name, ())


def _plain(v: Any) -> bool:
    if v is None or isinstance(v, (bool, str, numbers.Number)):
        return True
    if isinstance(v, (list, tuple)):
        return all(isinstance(x, (bool, str, numbers.Number)) for x in v)
    return False


@dataclass
class OpEvent:
    """One framework operation of a recorded run: what ran, on what, giving what, from where."""

    name: str  # as the user wrote it: "Tensor.__mul__", "F.gelu", "torch.matmul", "paddle.reshape"
    kind: str  # canonical, see canonical_kind
    params: dict[str, Any]
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    frame: Frame | None  # the user's innermost source frame
    layer: str  # innermost layer path active when the op ran
    index: int = 0
    after: str = ""  # the last layer (path) that finished before this op
    fingerprint: tuple[float, ...] = field(default=(), repr=False)

    def out_shape(self) -> tuple[int, ...]:
        """Shape of the first output (``()`` if it has none)."""
        return tuple(self.outputs[0].shape) if self.outputs else ()


def fingerprint(arr: np.ndarray) -> tuple[float, ...]:
    """Cheap summary (mean, mean |x|, std) used to prefer numerically close alignments."""
    if arr.size == 0 or arr.dtype.kind not in "fiub":
        return ()
    a = arr.astype(np.float64, copy=False)
    return (float(a.mean()), float(np.abs(a).mean()), float(a.std()))


#: ops and bytes of host copies one re-run keeps at most; later ops are counted only
MAX_OPS = 20_000
MAX_BYTES = 1 << 30


class Trace:
    """The ops of one recorded run in order, each tagged with the layer it ran in.

    The re-run's layer hooks call :meth:`enter`/:meth:`exit`; the recorders call :meth:`add`.
    """

    keep_values = True  # host copies of every op's inputs and outputs (the op view); see RefTrace

    def __init__(self, root_path: str) -> None:
        self.root_path = root_path
        self.dropped = 0  # ops past MAX_OPS / MAX_BYTES
        self.bytes = 0
        self.ops: list[OpEvent] = []
        self.stack: list[str] = [root_path]
        self.last_exit = ""
        self.enters: list[tuple[int, str]] = []  # (number of ops recorded before, layer path)

    @property
    def full(self) -> bool:
        """Whether the trace keeps no more ops (so recorders need not copy their tensors)."""
        return len(self.ops) >= MAX_OPS or self.bytes >= MAX_BYTES

    def enter(self, path: str) -> None:
        """A layer below the re-run one starts."""
        self.enters.append((len(self.ops), path))
        self.stack.append(path)

    def exit(self, path: str, paired: bool = True) -> None:
        """A layer below the re-run one returned (``paired``: one the compared run paired)."""
        if path in self.stack[1:]:
            del self.stack[len(self.stack) - 1 - self.stack[::-1].index(path):]
        if paired:
            self.last_exit = path

    def add(self, name: str, params: dict[str, Any], inputs: list[np.ndarray], outputs: list[np.ndarray],
            frame: Frame | None, live: tuple[list[Any], list[Any], Any] | None = None) -> None:
        """One op that ran (names already prefixed ``Tensor.``/``F.``/``torch.``/``paddle.``).

        ``live``: the op's input and output tensors themselves, in the order of ``inputs`` and
        ``outputs``, and ``(function, args, kwargs)`` of the call, for traces that follow
        gradients (:meth:`on_live`).
        """
        if self.full:
            self.dropped += 1
            return
        self.bytes += sum(a.nbytes for a in inputs) + sum(a.nbytes for a in outputs)
        kind = canonical_kind(name)
        ev = OpEvent(name, kind, canonical_params(kind, params.pop("__named__", {}), params.pop("__scalars__", [])),
                     inputs, outputs, frame, self.stack[-1], len(self.ops), self.last_exit,
                     fingerprint(outputs[0]) if outputs else ())
        self.ops.append(ev)
        if live is not None:
            self.on_live(ev, *live)

    def on_live(self, ev: OpEvent, inputs: list[Any], outputs: list[Any], call: Any) -> None:
        """The tensors and the call of op ``ev`` (a trace following gradients keeps them; this one does not)."""

    def add_refs(self, name: str, inputs: list[Any], outputs: list[Any], shape: Any) -> None:
        """One op by tensor identity only (traces that keep no values override this)."""
        raise NotImplementedError

    def next_enter(self, op_index: int, paths: set[str]) -> str:
        """The first of ``paths`` entered after op ``op_index`` ran ("" if none)."""
        for n, path in self.enters:
            if n > op_index and path in paths:
                return path
        return ""
