"""Progress on the terminal for long work (export, multi-step runs); silent when not a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A rich spinner on stderr while the block runs, when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


@contextlib.contextmanager
def step_progress(total: int, label: str) -> Iterator[Callable[[], None]]:
    """A rich progress bar over ``total`` steps on stderr; yields ``advance()``.

    Only shown for more than one step and when stderr is a terminal, so logs and pipes
    stay clean.
    """
    if total <= 1 or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)
