"""How the two backward passes share the machine (see :mod:`padiff.runtime.grad_exchange`).

:func:`choose_backward_mode` is a pure function of the facts in :class:`Machine`, which
:meth:`Machine.probe` reads from the process and the models:

``OVERLAP``, when both models are on the CPU and there are at least two cores: paddle's
backward runs in a worker thread at the same time as torch's, after both forwards, so its
output gradients are compared as torch's arrive instead of all being held at once. That
is also faster when torch leaves a core free (pinned threads).

``AHEAD`` when torch's own threads already fill the cores (its default): paddle's backward
starts right after paddle's forward, in the worker thread, and runs beside torch's forward
and backward, which are given the cores paddle's one kernel thread leaves free
(:func:`torch_threads_beside_paddle`). Paddle's CPU kernels run in the calling thread, so
with torch's default threads one core sat idle through paddle's whole run and torch's
threads through the comparisons; two framework pools at full width only slow each other
down (convnet, default threads, both backward passes at once: 1.42x against 1.27x bare).
Measured on the benchmark models with default threads, same process and comparison pass:
``SEQUENTIAL`` 1.65x / 1.51x of the bare runs, ``AHEAD`` 1.24-1.28x / 1.14-1.16x
(transformer / convnet). Every gradient is held until torch takes it, as
in ``SEQUENTIAL``; when holding them could exhaust the memory left, ``OVERLAP`` instead.

``SEQUENTIAL`` on one core, and on a GPU, which keeps its current device per thread:
paddle's forward and backward run first, keeping host copies, then torch's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from padiff.adapters import PADDLE, TORCH
from padiff.runtime.grad_exchange import AHEAD, OVERLAP, SEQUENTIAL
from padiff.runtime.memory import available_memory

#: overlap anyway when the gradients a sequential backward would hold, times this, exceed the free memory
MEMORY_HEADROOM = 4


@dataclass(frozen=True)
class Machine:
    """What the choice depends on."""

    cores: int  # cores this process may run on
    on_cpu: bool  # both models compute on the CPU
    torch_threads: int  # threads torch's CPU kernels use
    free_memory: int | None  # bytes the OS could still give the process (None: unknown)

    @classmethod
    def probe(cls, layer: Any, module: Any) -> Machine:
        """The facts for these two models in this process."""
        return cls(usable_cores(), PADDLE.on_cpu(layer) and TORCH.on_cpu(module), TORCH.compute_threads(),
                   available_memory())


def choose_backward_mode(machine: Machine, grad_bytes: int) -> str:
    """How a pass whose paddle output gradients take ``grad_bytes`` on the host runs its backward passes."""
    if machine.cores < 2 or not machine.on_cpu:
        return SEQUENTIAL
    if machine.torch_threads < machine.cores:
        return OVERLAP
    free = machine.free_memory
    return OVERLAP if free is not None and grad_bytes * MEMORY_HEADROOM > free else AHEAD


def torch_threads_beside_paddle(machine: Machine) -> int:
    """Threads torch's kernels get while paddle's backward runs ahead: one core is left to paddle."""
    return max(1, min(machine.torch_threads, machine.cores - 1))


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1
