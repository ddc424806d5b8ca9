"""The choice between overlapped and sequential backward passes, as a pure function."""

from __future__ import annotations

import pytest

from padiff.runtime.engine.backward_mode import (
    MEMORY_HEADROOM,
    Machine,
    choose_backward_mode,
    torch_threads_beside_paddle,
    usable_cores,
)
from padiff.runtime.grad_exchange import AHEAD, OVERLAP, SEQUENTIAL

GB = 1 << 30


@pytest.mark.parametrize("machine, grad_bytes, mode", [
    (Machine(1, True, 1, 0), GB, SEQUENTIAL),  # one core: nothing to overlap on, even with memory short
    (Machine(4, False, 1, 64 * GB), GB, SEQUENTIAL),  # a model off the CPU: a GPU keeps its device per thread
    (Machine(2, True, 1, 64 * GB), GB, OVERLAP),  # torch leaves a core free
    (Machine(2, True, 2, 64 * GB), GB, AHEAD),  # torch fills the cores, memory is plenty
    (Machine(2, True, 2, MEMORY_HEADROOM * GB - 1), GB, OVERLAP),  # holding every gradient could exhaust memory
    (Machine(2, True, 2, MEMORY_HEADROOM * GB), GB, AHEAD),  # just enough headroom
    (Machine(2, True, 2, None), 1 << 40, AHEAD),  # free memory unknown: the cores decide
])
def test_backward_mode(machine, grad_bytes, mode):
    assert choose_backward_mode(machine, grad_bytes) == mode


def test_usable_cores_is_at_least_one():
    assert usable_cores() >= 1


@pytest.mark.parametrize("machine, threads", [
    (Machine(2, True, 2, None), 1),  # paddle's kernel thread takes one of two cores
    (Machine(8, True, 8, None), 7),
    (Machine(8, True, 4, None), 4),  # torch already leaves cores free: unchanged
    (Machine(1, True, 1, None), 1),
])
def test_torch_keeps_the_cores_paddle_leaves_free(machine, threads):
    assert torch_threads_beside_paddle(machine) == threads
