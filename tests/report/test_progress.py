"""Progress output only on a terminal, and only for work worth a bar."""

from __future__ import annotations

import io
import sys

from padiff.report.progress import status, step_progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_stderr_is_not_a_terminal(capsys):
    with step_progress(5, "steps") as advance, status("working"):
        for _ in range(5):
            advance()
    assert capsys.readouterr().err == ""


def test_a_bar_on_a_terminal_for_several_steps(monkeypatch):
    fake = _Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    calls = []
    with step_progress(3, "padiff: comparing steps") as advance:
        for _ in range(3):
            advance()
            calls.append(1)
    assert len(calls) == 3
    assert "comparing steps" in fake.getvalue()
    shown = len(fake.getvalue())
    with step_progress(1, "one step") as advance:
        advance()  # a single step shows nothing
    assert len(fake.getvalue()) == shown
