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


HIDE_CURSOR = "\x1b[?25l"  # every live display starts by hiding the cursor


def test_a_nested_display_changes_the_outer_text_instead_of_drawing_a_second_one(monkeypatch):
    fake = _Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    with status("running both models..."):
        with step_progress(3, "padiff: comparing steps") as advance:
            for _ in range(3):
                advance()
        with status("proposing a layer map..."):
            pass
    assert fake.getvalue().count(HIDE_CURSOR) == 1


def _run_in_pty(args: list[str], timeout: float = 240) -> str:
    """Run a command with a pseudo-terminal as stdin/stdout/stderr; return everything it wrote."""
    import os
    import pty
    import select
    import subprocess
    import time

    master, slave = pty.openpty()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""), COLUMNS="100")
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    return out.decode("utf-8", "replace")


def test_spinner_keeps_turning_while_the_exporters_are_silenced():
    script = ("import time\nfrom padiff.graph._quiet import quiet\nfrom padiff.report.progress import status\n"
              "with status('exporting'):\n    with quiet():\n        time.sleep(1.5)\n")
    out = _run_in_pty([sys.executable, "-c", script], timeout=60)
    assert out.count("exporting") >= 5  # redrawn ~12 times a second, also inside quiet()


def test_cli_run_shows_one_progress_display_on_a_terminal(tmp_path):
    import os

    pairs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cli_fixtures", "pairs.py")
    out = _run_in_pty([sys.executable, "-m", "padiff", "run", pairs + ":mlp_with_optimizer", "--steps", "3",
                       "--auto-weights", "--log-dir", str(tmp_path / "logs")])
    assert f"padiff: loading {pairs}:mlp_with_optimizer ..." in out
    assert "padiff: SUCCESS" in out or "padiff: FAILED" in out
    assert out.count(HIDE_CURSOR) == 1, out.count(HIDE_CURSOR)


def test_suggest_layer_map_shows_progress_on_a_terminal(monkeypatch):
    from models.basic import mlp_pair

    import padiff

    layer, module, _ = mlp_pair()
    fake = _Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    padiff.suggest_layer_map(layer, module)
    assert "proposing a layer map (module trees)" in fake.getvalue()


def test_prints_during_a_spinner_stay_on_stdout_when_stdout_is_not_the_terminal():
    script = ("import sys, time\nfrom padiff.report.progress import status\n"
              "with status('working'):\n    print('RESULT LINE')\n    time.sleep(0.3)\n")
    out = _run_in_pty_stdout_to_pipe([sys.executable, "-c", script])
    assert out == "RESULT LINE\n", out


def _run_in_pty_stdout_to_pipe(args: list[str]) -> str:
    """stdin and stderr a pseudo-terminal, stdout a pipe (``padiff run ... > out.txt``); return stdout."""
    import os
    import pty
    import subprocess

    master, slave = pty.openpty()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        r = subprocess.run(args, stdin=slave, stderr=slave, stdout=subprocess.PIPE, env=env, timeout=60, text=True,
                           check=False)
    finally:
        os.close(slave)
        os.close(master)
    return r.stdout
