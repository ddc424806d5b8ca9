"""Progress on the terminal for long work (loading, export, multi-step runs); silent when not a terminal.

One display at a time: the outermost :func:`status` or :func:`step_progress` draws, and
any nested one only changes its text (the CLI's "running both models..." spinner shows
"step 2/3" instead of a second bar redrawing the same line). The display writes to its
own copy of the terminal's file descriptor, so it keeps turning while the exporters'
output is silenced (their fds 1 and 2 point at /dev/null then).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO


class _Display:
    """The live display being drawn: its current text, and how to change it."""

    def __init__(self, message: str, set_text: Callable[[str], None]) -> None:
        self.message = message
        self._set = set_text

    def show(self, message: str) -> None:
        self.message = message
        self._set(message)


_active: list[_Display] = []


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _stdout_on_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _terminal() -> Iterator[TextIO]:
    """A stream to the terminal behind stderr that later fd redirections do not reach."""
    try:
        fd = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # a stand-in stderr (tests): write to it directly
        yield sys.stderr
        return
    stream = os.fdopen(fd, "w", encoding="utf-8", errors="replace")
    try:
        yield stream
    finally:
        stream.close()


def _console(stream: TextIO) -> Any:
    from rich.console import Console

    return Console(file=stream, force_terminal=True)


@contextlib.contextmanager
def _nested(message: str) -> Iterator[_Display]:
    """Show ``message`` on the display already drawn, and put its text back afterwards."""
    display = _active[-1]
    before = display.message
    display.show(message)
    try:
        yield display
    finally:
        display.show(before)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner on stderr while the block runs, when stderr is a terminal."""
    if not _on_terminal():
        yield
        return
    if _active:
        with _nested(message):
            yield
        return
    from rich.live import Live
    from rich.spinner import Spinner

    spinner = Spinner("dots", text=message)
    # prints during the display go above it when stdout is this terminal, and where they belong otherwise
    with _terminal() as stream, Live(spinner, console=_console(stream), transient=True, refresh_per_second=12.5,
                                     redirect_stdout=_stdout_on_terminal()):
        _active.append(_Display(message, lambda text: spinner.update(text=text)))
        try:
            yield
        finally:
            _active.pop()


@contextlib.contextmanager
def step_progress(total: int, label: str) -> Iterator[Callable[[], None]]:
    """A progress bar over ``total`` steps on stderr; yields ``advance()``.

    Only shown for more than one step and when stderr is a terminal, so logs and pipes
    stay clean. Inside another display it adds ``label i/total`` to that display's text.
    """
    if total <= 1 or not _on_terminal():
        yield lambda: None
        return
    if _active:
        base, short = _active[-1].message, label.removeprefix("padiff: ")
        done = [0]

        def advance() -> None:
            done[0] += 1
            _active[-1].show(f"{base} {short} {done[0]}/{total}")

        with _nested(f"{base} {short} 0/{total}"):
            yield advance
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with _terminal() as stream, Progress(*columns, console=_console(stream), transient=True,
                                         redirect_stdout=_stdout_on_terminal()) as bar:
        task = bar.add_task(label, total=total)
        _active.append(_Display(label, lambda text: bar.update(task, description=text)))
        try:
            yield lambda: bar.advance(task)
        finally:
            _active.pop()
