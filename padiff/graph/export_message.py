"""The whole cause of an exporter failure, for notes: short ones in full, long ones by their head and a file.

Exporters' messages are long (paddle's ``jit.save`` quotes the transformed code, torch's
TorchScript exporter the graph); their first line alone ("AssertionError: In transformed
code:") tells nothing. Up to :data:`MAX_LINES` lines are kept in the note; a longer
message is written whole to a file in the temp directory, whose path the note gives.
"""

from __future__ import annotations

import os
import tempfile

MAX_LINES = 12


def cause_text(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, whole or its first lines plus where the rest is."""
    return with_rest(f"{type(exc).__name__}: {str(exc).strip()}")


def with_rest(text: str) -> str:
    """``text`` whole, or its first :data:`MAX_LINES` lines plus the file holding all of it."""
    lines = text.splitlines()
    if len(lines) <= MAX_LINES:
        return text
    head = "\n".join(lines[:MAX_LINES])
    try:
        fd, path = tempfile.mkstemp(prefix="padiff-export-error-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError:
        return head + f"\n... ({len(lines) - MAX_LINES} more lines not kept: the temp directory is not writable)"
    return head + f"\n... ({len(lines) - MAX_LINES} more lines; the whole message is in {path})"
