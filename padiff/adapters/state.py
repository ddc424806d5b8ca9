"""What a layer owns, as plain records: parameters and buffers, and the sets a pair exchanges.

Framework-free: the adapters fill :class:`StateEntry` records, and these functions only
regroup and rename them (by layer path), so weights, comparisons and map tools agree on
which tensors belong to which side of a pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StateEntry:
    """One tensor a layer owns directly: a parameter or a buffer."""

    name: str
    tensor: Any
    trainable: bool
    is_buffer: bool


def owned_state(layers: Iterable[tuple[str, Any]],
                raw_state: Callable[[Any], list[StateEntry]]) -> dict[str, list[StateEntry]]:
    """``{path: entries}`` where each tensor is owned by its top-most holder only.

    ``layers`` is ``(path, layer)`` in definition order, root first; ``raw_state`` gives what one
    layer holds directly. Paddle's RNN layers hold the same parameters as their cells;
    ownership by the first (outermost) holder keeps each tensor in exactly one place.
    """
    seen: set[int] = set()
    out: dict[str, list[StateEntry]] = {}
    for path, layer in layers:
        own = []
        for entry in raw_state(layer):
            if id(entry.tensor) in seen:
                continue
            seen.add(id(entry.tensor))
            own.append(entry)
        if own:
            out[path] = own
    return out


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


@dataclass(frozen=True)
class BatchNormUpdate:
    """How one BatchNorm layer updates its running statistics in this call (see :mod:`padiff.compare.conventions`)."""

    momentum: float  # paddle's: running = momentum * running + (1 - momentum) * batch
    channel_axis: int
    variance_name: str  # the state entry holding the running variance
