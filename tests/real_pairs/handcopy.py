"""Hand weight copies for the real pairs, and the ground truth they imply.

A real pair is two packages' own code for one architecture. padiff is scored on it only
after a copy written by hand (explicit names, explicit layout changes) has shown the two
models compute the same thing; the names that copy joins are the ground truth the
aligner's proposal is measured against. Nothing here is padiff: it is the referee.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Convert = Callable[[Sequence[np.ndarray]], np.ndarray]


def same(xs: Sequence[np.ndarray]) -> np.ndarray:
    """One torch tensor copied as it is."""
    return xs[0]


def transposed(xs: Sequence[np.ndarray]) -> np.ndarray:
    """A torch Linear weight ``[out, in]`` into paddle's ``[in, out]``."""
    return xs[0].T


def rows(start: int, stop: int, transpose: bool = False) -> Convert:
    """Rows ``start:stop`` of one torch tensor (a fused ``in_proj`` split into q/k/v)."""

    def conv(xs: Sequence[np.ndarray]) -> np.ndarray:
        part = xs[0][start:stop]
        return part.T if transpose else part

    return conv


@dataclass(frozen=True)
class Entry:
    """One paddle state entry and the torch entries (and conversion) it is written from."""

    paddle_name: str
    torch_names: tuple[str, ...]
    convert: Convert = same


def owner(name: str) -> str:
    """The path of the layer that owns a parameter or buffer (``a.b.weight`` -> ``a.b``)."""
    return name.rsplit(".", 1)[0] if "." in name else ""


def within(path: str, top: str) -> bool:
    """True when ``path`` is ``top`` or a layer inside it (the root ``""`` holds everything)."""
    return top == "" or path == top or path.startswith(top + ".")


def truth_pairs(entries: Iterable[Entry]) -> set[tuple[str, str]]:
    """The true leaf correspondence: (paddle owner, torch owner) for every copied tensor."""
    return {(owner(e.paddle_name), owner(t)) for e in entries for t in e.torch_names}


def apply_copy(layer: Any, module: Any, entries: list[Entry],
               unused_torch: Callable[[str], bool] = lambda n: n.endswith("num_batches_tracked")) -> None:
    """Write the torch model's tensors into the paddle model as ``entries`` say.

    The copy must be complete on both sides (every paddle entry written, every torch
    entry read, except counters ``unused_torch`` names), and every shape must agree:
    a hand copy that silently leaves a tensor at its random init proves nothing.
    """
    import paddle

    # parameters and buffers, each once (paddle's LSTM also lists its weights under every cell)
    # (buffers only where the state dict keeps them: not a dropout's random state)
    persistent = set(layer.state_dict())
    pd_sd = {k: v for k, v in [*layer.named_parameters(), *layer.named_buffers()] if k in persistent}
    pt_sd = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    missing = sorted(set(pd_sd) - {e.paddle_name for e in entries})
    unknown = sorted({e.paddle_name for e in entries} - set(pd_sd))
    unread = sorted(k for k in set(pt_sd) - {t for e in entries for t in e.torch_names} if not unused_torch(k))
    if missing or unknown or unread:
        raise AssertionError(f"hand copy incomplete: paddle not written {missing}, paddle unknown {unknown}, "
                             f"torch not read {unread}")
    for e in entries:
        value = e.convert([pt_sd[t] for t in e.torch_names])
        target = pd_sd[e.paddle_name]
        if tuple(target.shape) != tuple(value.shape):
            raise AssertionError(f"hand copy shape: paddle {e.paddle_name} {list(target.shape)} "
                                 f"<- torch {e.torch_names} as {list(value.shape)}")
        target.set_value(paddle.to_tensor(value.astype(np.asarray(target.numpy()).dtype)))


def reverse_definition_order(module: Any) -> Any:
    """Reverse the order of the child modules inside every torch module, forward unchanged.

    Containers whose forward iterates their children (``Sequential``, ``ModuleList``,
    ``ModuleDict``) keep their order, as reordering them would change the computation.
    Returns ``module`` (changed in place; the suite builds a fresh model for it).
    """
    import torch

    keep = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)
    for m in module.modules():
        if not isinstance(m, keep) and len(m._modules) > 1:
            m._modules = OrderedDict(reversed(list(m._modules.items())))
    return module


def as_numpy(out: Any) -> list[np.ndarray]:
    """Every floating tensor in a model output, in order (tuples, lists, dicts, tensors)."""
    if isinstance(out, dict):
        return [a for v in out.values() for a in as_numpy(v)]
    if isinstance(out, (list, tuple)):
        return [a for v in out for a in as_numpy(v)]
    if hasattr(out, "detach"):  # torch
        out = out.detach().cpu().numpy()
    elif hasattr(out, "numpy"):  # paddle
        out = out.numpy()
    arr = np.asarray(out)
    return [arr] if arr.dtype.kind == "f" else []
