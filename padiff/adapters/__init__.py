"""The bottom layer: one adapter per framework, and the framework-free records they hand out.

Every other part of padiff imports from here, and this package imports nothing else of
padiff. Framework differences live here: callers use ``PADDLE.xxx`` / ``TORCH.xxx`` (the
:class:`~padiff.adapters.protocol.FrameworkSide` interface) and never check tensor types
themselves. Frameworks are imported lazily, so ``import padiff`` stays cheap and a process
recording one framework never loads the other.

- :mod:`.protocol`: the interface, as a :class:`typing.Protocol`;
- :mod:`.base`: what both adapters do alike; :mod:`.paddle_side`, :mod:`.torch_side`: the adapters;
- :mod:`.state`: ``StateEntry`` and the sets of tensors a pair exchanges; :mod:`.nested`: walking outputs;
- :mod:`.op_events`: the op records a recording fills (``OpEvent``, ``Trace``, canonical kinds);
  :mod:`.paddle_ops`, :mod:`.torch_ops`: the recordings behind each side's ``record_ops``;
- :mod:`.frames`: the user's call stack (``user_stack``), for records and ops alike.
"""

from __future__ import annotations

from collections.abc import Iterator

from padiff.adapters.base import Side
from padiff.adapters.paddle_side import PADDLE, PaddleSide
from padiff.adapters.protocol import FrameworkSide
from padiff.adapters.state import StateEntry, pair_state, parts_state, subtree_state
from padiff.adapters.torch_side import TORCH, TorchSide

SIDES: dict[str, Side] = {"paddle": PADDLE, "torch": TORCH}

__all__ = [
    "PADDLE",
    "SIDES",
    "TORCH",
    "FrameworkSide",
    "PaddleSide",
    "Side",
    "StateEntry",
    "TorchSide",
    "iter_sides",
    "pair_state",
    "parts_state",
    "subtree_state",
]


def iter_sides() -> Iterator[Side]:
    """Paddle first, torch second, as everywhere in padiff."""
    yield PADDLE
    yield TORCH
