"""Each framework warning once per padiff run, as a plain training loop would show it.

Python shows a ``"default"``-action warning once per code location, but every
``warnings.catch_warnings`` block (padiff silences the exporters and hook removal with
one) resets that memory, so a warning raised on every forward (paddle's BatchNorm in
train mode) came back once per padiff pass. :func:`once_per_run` remembers what was
shown for the whole run instead; the user's own filters still decide what is shown at all.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def once_per_run() -> Iterator[None]:
    """Inside the block, a warning with the same text, category and location is shown only once."""
    shown: set[tuple[str, type, str, int]] = set()
    with warnings.catch_warnings():
        previous = warnings.showwarning

        def show(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
            key = (str(message), category, filename, lineno)
            if key in shown:
                return
            shown.add(key)
            previous(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def warnings_once(fn: F) -> F:
    """Decorator: run ``fn`` inside :func:`once_per_run`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with once_per_run():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
