"""The box between the two backward passes: right values, bounded memory, no deadlock."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from padiff.runtime.grad_exchange import AHEAD, OVERLAP, SEQUENTIAL, GradExchange


def _arr(key: int, n: int = 256) -> np.ndarray:
    return np.full(n, key, dtype=np.float32)  # n float32 = 4n bytes


def _run(ex: GradExchange, produce, consume, mode: str = OVERLAP, timeout: float = 20.0) -> None:
    """``ex.run`` in a watchdog thread: a deadlock fails the test instead of hanging it."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            ex.run(produce, consume, mode)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    assert not th.is_alive(), "the exchange deadlocked"
    if errors:
        raise errors[0]


@settings(max_examples=40, deadline=None)
@given(st.permutations(list(range(12))), st.integers(0, 3), st.sampled_from([OVERLAP, SEQUENTIAL, AHEAD]))
def test_every_gradient_reaches_its_taker_in_any_order(order, budget_items, mode):
    ex = GradExchange(budget_bytes=budget_items * 1024)
    boxes = [dict() for _ in range(12)]
    got: dict[int, np.ndarray | None] = {}

    def produce() -> None:
        for k in range(12):
            ex.put(boxes[k], 0, _arr(k))

    def consume() -> None:
        for k in order:
            got[k] = ex.take(boxes[k], 0)

    _run(ex, produce, consume, mode)
    assert sorted(got) == list(range(12))
    assert all(got[k] is not None and got[k][0] == k for k in got)
    assert all(not b for b in boxes)  # everything taken leaves the box


def test_paddle_waits_for_torch_so_few_gradients_are_held_at_once():
    # same order on both sides (the usual case): held bytes stay near the budget, not the total
    ex = GradExchange(budget_bytes=4 * 1024)
    boxes = [dict() for _ in range(64)]

    def produce() -> None:
        for k in range(64):
            ex.put(boxes[k], 0, _arr(k))

    def consume() -> None:
        for k in range(64):
            assert ex.take(boxes[k], 0)[0] == k

    _run(ex, produce, consume)
    assert ex.peak_held <= 5 * 1024  # budget + the one put that crossed it
    assert 10 * ex.peak_held < 64 * 1024


def test_a_gradient_paddle_never_produces_ends_the_wait_when_paddle_is_done():
    ex = GradExchange()
    box: dict = {}
    got = []
    _run(ex, lambda: None, lambda: got.append(ex.take(box, 0)))
    assert got == [None]


def test_a_gradient_paddle_does_not_record_is_not_waited_for():
    ex = GradExchange()
    release = threading.Event()
    got = []

    def produce() -> None:
        release.wait(10)  # paddle still busy: take(expected=False) must not wait for it

    def consume() -> None:
        got.append(ex.take({}, 0, expected=False))
        release.set()

    _run(ex, produce, consume)
    assert got == [None]


def test_leftover_gradients_stay_in_the_box():
    ex = GradExchange(budget_bytes=0)
    boxes = [dict(), dict()]

    def produce() -> None:
        ex.put(boxes[0], 0, _arr(0))
        ex.put(boxes[1], 0, _arr(1))

    _run(ex, produce, lambda: ex.take(boxes[1], 0))
    assert list(boxes[0]) == [0] and not boxes[1]


@pytest.mark.parametrize("mode", [OVERLAP, SEQUENTIAL])
@pytest.mark.parametrize("failing", ["paddle", "torch"])
def test_an_error_on_either_side_is_raised_and_nobody_hangs(failing, mode):
    ex = GradExchange(budget_bytes=0)
    boxes = [dict() for _ in range(4)]

    def produce() -> None:
        ex.put(boxes[0], 0, _arr(0))
        if failing == "paddle":
            raise RuntimeError("paddle backward failed")
        for k in range(1, 4):
            ex.put(boxes[k], 0, _arr(k))

    def consume() -> None:
        if failing == "torch":
            raise ValueError("torch backward failed")
        for k in range(4):
            ex.take(boxes[k], 0)

    with pytest.raises(RuntimeError if failing == "paddle" else ValueError):
        _run(ex, produce, consume, mode)


def test_paddle_error_is_raised_before_torch_error():
    ex = GradExchange()

    def produce() -> None:
        raise RuntimeError("paddle")

    def consume() -> None:
        raise ValueError("torch")

    with pytest.raises(RuntimeError, match="paddle"):
        _run(ex, produce, consume)


def test_concurrent_run_uses_a_second_thread_and_sequential_does_not():
    for mode in (OVERLAP, SEQUENTIAL):
        concurrent = mode != SEQUENTIAL
        ex = GradExchange()
        seen: dict[str, int] = {}

        def note(side: str, seen: dict[str, int] = seen) -> None:
            seen[side] = threading.get_ident()

        _run(ex, lambda note=note: note("paddle"), lambda note=note: note("torch"), mode)
        assert (seen["paddle"] != seen["torch"]) is concurrent


def test_a_forked_child_gets_its_own_backward_thread(monkeypatch):
    # a forked process (a DataLoader worker) has no copy of the parent's worker thread: reusing
    # the parent's executor there would queue paddle's backward forever
    from padiff.runtime import grad_exchange

    parent = grad_exchange._worker()
    assert grad_exchange._worker() is parent
    real_pid = grad_exchange.os.getpid()
    monkeypatch.setattr(grad_exchange.os, "getpid", lambda: real_pid + 1)
    child = grad_exchange._worker()
    assert child is not parent
    assert child.submit(lambda: 7).result(timeout=10) == 7
    child.shutdown()
    monkeypatch.undo()
    grad_exchange._WORKER = None



def test_available_memory_reads_a_positive_figure_on_linux():
    from padiff.runtime.memory import available_memory

    free = available_memory()
    assert free is None or free > 0


def test_ahead_paddle_is_never_held_back_by_the_budget_and_hands_torch_its_cores_back_once_done():
    # torch takes nothing until its own backward, after its forward: paddle running ahead must
    # not wait at the budget, and the torch side learns (once) in its own thread that paddle ended
    ex = GradExchange(budget_bytes=1024)
    grads: dict[int, np.ndarray] = {}
    seen: list[str] = []
    ex.when_paddle_done = lambda: seen.append(threading.current_thread().name)
    ex.begin(lambda: [ex.put(grads, i, _arr(i)) for i in range(16)], AHEAD)  # 16 KiB against a 1 KiB budget
    assert ex.concurrent
    got = [ex.take(grads, i) for i in range(16)]
    ex.end(lambda: None)
    assert [int(g[0]) for g in got] == list(range(16))
    assert ex.peak_held == 16 * 1024
    assert seen == [threading.current_thread().name]  # called once, by the taking thread


def test_an_exchange_left_after_torch_failed_waits_for_paddle_backward():
    ex = GradExchange()
    ended = threading.Event()

    def paddle() -> None:
        ended.wait(5)
        raise RuntimeError("paddle's own failure")

    ex.begin(paddle, AHEAD)
    ended.set()
    ex.settle()  # torch's forward raised: nothing more is taken, paddle's backward is waited for
    assert ex._done is None
