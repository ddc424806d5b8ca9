"""The choice between overlapped and sequential backward passes, as a pure function."""

from __future__ import annotations

import pytest

from padiff.runtime.engine.backward_mode import MEMORY_HEADROOM, Machine, choose_backward_mode, usable_cores
from padiff.runtime.grad_exchange import OVERLAP, SEQUENTIAL

GB = 1 << 30


@pytest.mark.parametrize("machine, grad_bytes, mode", [
    (Machine(1, True, 1, 0), GB, SEQUENTIAL),  # one core: nothing to overlap on, even with memory short
    (Machine(4, False, 1, 64 * GB), GB, SEQUENTIAL),  # a model off the CPU: a GPU keeps its device per thread
    (Machine(2, True, 1, 64 * GB), GB, OVERLAP),  # torch leaves a core free
    (Machine(2, True, 2, 64 * GB), GB, SEQUENTIAL),  # the cores are full, memory is plenty
    (Machine(2, True, 2, MEMORY_HEADROOM * GB - 1), GB, OVERLAP),  # holding every gradient could exhaust memory
    (Machine(2, True, 2, MEMORY_HEADROOM * GB), GB, SEQUENTIAL),  # just enough headroom
    (Machine(2, True, 2, None), 1 << 40, SEQUENTIAL),  # free memory unknown: the cores decide
])
def test_backward_mode(machine, grad_bytes, mode):
    assert choose_backward_mode(machine, grad_bytes) == mode


def test_usable_cores_is_at_least_one():
    assert usable_cores() >= 1
