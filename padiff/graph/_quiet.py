"""Silence the exporters: Python warnings, ``print`` and C++ logging to fds 1 and 2.

The TorchScript exporter logs whole IR graphs from C++ on failure and paddle's
``jit.save`` writes glog lines; neither goes through ``sys.stdout``/``sys.stderr``, so
the file descriptors themselves are pointed at ``/dev/null`` for the duration and
restored in ``finally``. Errors still arrive as Python exceptions with their message.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Suppress warnings and all output to stdout/stderr inside the block."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved: list[tuple[int, int]] = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        devnull = -1
    try:
        if devnull >= 0:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(devnull, fd)
                except OSError:
                    continue
        sink = io.StringIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        if devnull >= 0:
            os.close(devnull)
