"""Both backward passes at once: paddle's output gradients handed to torch's hooks as they come.

Comparing a gradient needs paddle's and torch's values of it at the same time. Running paddle's
backward to the end first means holding a host copy of every paired output gradient, which
is about as large as the model's activations. Here paddle's backward runs in a worker thread
beside torch's (both frameworks release the GIL while computing): each paddle gradient is
put in a box, and the torch hook of its partner takes it out, waiting if paddle has not got
there yet. Paddle waits when the box holds more than a budget, so the copies alive at once
stay small while the two passes walk the models in the same order; where the orders differ
the box simply grows, and the result is the same.

With the frameworks' own threads filling the cores, paddle's backward instead starts
*ahead*, right after paddle's forward, and runs beside torch's forward and backward while
torch is given the cores paddle leaves free (see :mod:`padiff.runtime.engine.backward_mode`);
it then holds every gradient, as the sequential order does.

No deadlock: paddle only waits while torch is computing (neither waiting for a gradient that
is not there yet nor done), and torch only waits while paddle is not done.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from padiff.runtime.memory import trim_free_memory

#: gradient bytes paddle may hold ahead of torch before it waits for torch to catch up
BUDGET_BYTES = 32 << 20
#: gradient bytes compared between two trims of the heap (see :mod:`padiff.runtime.memory`);
#: measured on the benchmark conv net: every 4 MiB cut the peak by ~100 MiB for ~40 ms
TRIM_EVERY_BYTES = 4 << 20


#: how the two backward passes share the machine (see :meth:`GradExchange.begin`)
OVERLAP, SEQUENTIAL, AHEAD = "overlap", "sequential", "ahead"


class GradExchange:
    """The box between paddle's gradient hooks (producer) and torch's (consumer)."""

    def __init__(self, budget_bytes: int = BUDGET_BYTES) -> None:
        self._cv = threading.Condition()
        self._budget = budget_bytes
        self._held = 0
        self._wanted: tuple[int, int] | None = None  # the gradient torch waits for, if any
        self._paddle_done = False
        self._torch_done = False
        self._since_trim = 0
        self.mode = SEQUENTIAL
        self.peak_held = 0  # the most gradient bytes held at once (tests, benchmarks)
        self._errors: dict[str, BaseException] = {}
        self._done: Future[None] | None = None  # paddle's backward in the worker thread
        # called once by the torch side (in its own thread, between its operations) once paddle's
        # backward has ended: torch gets back the core paddle had (see ``AHEAD``)
        self.when_paddle_done: Callable[[], None] | None = None

    @property
    def concurrent(self) -> bool:
        """True if paddle's backward runs in the worker thread beside torch's."""
        return self.mode != SEQUENTIAL

    def put(self, grads: dict[int, np.ndarray], i: int, arr: np.ndarray) -> None:
        """Paddle side: store gradient ``i`` of one paddle event (``grads`` is that event's dict)."""
        with self._cv:
            grads[i] = arr
            self._held += arr.nbytes
            self.peak_held = max(self.peak_held, self._held)
            if self._wanted == (id(grads), i):
                self._wanted = None  # cleared here, not when torch wakes: paddle must not run on meanwhile
            self._cv.notify_all()
            while self.mode == OVERLAP and self._held > self._budget and self._wanted is None and not self._torch_done:
                self._cv.wait()

    def take(self, grads: dict[int, np.ndarray], i: int, expected: bool = True) -> np.ndarray | None:
        """Torch side: gradient ``i`` of the partner paddle event, waiting for paddle if needed.

        None when paddle's backward ended without producing it (no gradient reached that output).
        The taken array leaves ``grads``: what stays there was never asked for by torch.
        ``expected=False`` (paddle records no gradient for that output) never waits.
        """
        with self._cv:
            while expected and i not in grads and not self._paddle_done:
                self._wanted = (id(grads), i)
                self._cv.notify_all()
                self._cv.wait()
            self._wanted = None
            arr = grads.pop(i, None)
            if arr is not None:
                self._held -= arr.nbytes
                self._since_trim += arr.nbytes
            self._cv.notify_all()
            done_hook = self.when_paddle_done if self._paddle_done else None
        if done_hook is not None:
            self.when_paddle_done = None
            done_hook()
        if self.mode == OVERLAP and self._since_trim >= TRIM_EVERY_BYTES:
            self._since_trim = 0
            trim_free_memory()
        return arr

    def run(self, paddle_backward: Callable[[], None], torch_backward: Callable[[], None], mode: str) -> None:
        """Run both backward passes and re-raise paddle's error first, then torch's.

        ``overlap``: paddle's backward runs in the worker thread at the same time as torch's,
        ahead by at most the budget. ``sequential``: paddle's backward first, in this thread;
        every gradient is held until torch's backward takes it.
        """
        self.begin(paddle_backward, mode)
        self.end(torch_backward)

    def begin(self, paddle_backward: Callable[[], None], mode: str) -> None:
        """Start paddle's backward: in the worker thread (``overlap``, ``ahead``) or to its end here.

        ``ahead`` starts it before torch's forward, so it runs beside torch's forward and
        backward; it is never held back by the budget (torch takes nothing until its own
        backward), so it keeps every gradient as ``sequential`` does. :meth:`end` must follow,
        also when torch's forward fails.
        """
        self.mode = mode
        self._errors = {}

        def paddle_side() -> None:
            try:
                paddle_backward()
            except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
                self._errors["paddle"] = e
            finally:
                self._finish("paddle")

        self._done = None
        if self.concurrent:
            self._done = _worker().submit(paddle_side)
        else:
            paddle_side()

    def settle(self) -> None:
        """Wait for paddle's backward if it still runs (torch's side failed before :meth:`end`)."""
        self._finish("torch")
        if self._done is not None:
            self._done.result()  # paddle_side keeps its error: the one being raised is torch's
            self._done = None

    def end(self, torch_backward: Callable[[], None]) -> None:
        """Run torch's backward, wait for paddle's, and re-raise paddle's error first, then torch's."""
        try:
            torch_backward()
        except BaseException as e:  # noqa: BLE001
            self._errors["torch"] = e
        finally:
            self._finish("torch")
            if self._done is not None:
                self._done.result()
                self._done = None
                if self.mode == OVERLAP:
                    trim_free_memory()  # what the two passes freed, so the run does not leave the process larger
        for side in ("paddle", "torch"):
            if side in self._errors:
                raise self._errors[side]

    def _finish(self, side: str) -> None:
        with self._cv:
            if side == "paddle":
                self._paddle_done = True
            else:
                self._torch_done = True
            self._cv.notify_all()


_WORKER: tuple[int, ThreadPoolExecutor] | None = None


def _worker() -> ThreadPoolExecutor:
    """The one thread paddle's backward runs in, kept for the process.

    A new thread per run would start cold every time: paddle's oneDNN kernels and its heap
    arena are per thread, and rebuilding them cost more CPU time than the run saved. A
    forked child (a DataLoader worker) does not inherit the thread, so it gets its own.
    """
    global _WORKER
    if _WORKER is None or _WORKER[0] != os.getpid():
        _WORKER = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="padiff-paddle-backward"))
    return _WORKER[1]


def make_recorder(exchange: GradExchange, grads: dict[int, Any], i: int,
                  to_numpy: Callable[[Any], np.ndarray]) -> Callable[[Any], None]:
    """A paddle gradient hook that copies gradient ``i`` to the host and puts it in the box."""
    def record(grad: Any) -> None:
        if grad is not None:  # no gradient reached this output (an integer result): nothing to hand over
            exchange.put(grads, i, to_numpy(grad))

    return record
