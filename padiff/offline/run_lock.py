"""The lock a recording holds on its rank folder, and what it tells a reader about an unfinished run.

``Recorder`` creates ``rank-<r>/recording.lock`` (``O_EXCL``, so of two processes pointed at one
folder exactly one gets it) holding ``{"pid", "host", "started", "proc_start", "step"}``: the
recording process, when it started (``proc_start``: the process's start time from ``/proc``, so a
reused pid is not mistaken for it) and the step in progress (``null`` between steps). The lock is
not part of the recording: every complete step is already in ``index.jsonl`` and readers ignore
the lock except to say why a run is unfinished.

- ``close()`` removes it; an interpreter that exits normally between steps removes it too.
- A run killed (SIGKILL, OOM) or crashed inside a step leaves it: its pid is dead, so the lock is
  *stale*. A reader then says which step is missing; a new Recorder refuses the folder (it holds
  a recording) unless the stale lock is all the folder holds, in which case it takes it over.
- While the pid is alive, the run is still being written: a second Recorder is refused, and a
  reader reads only the complete steps and says so.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
from dataclasses import dataclass

from padiff.errors import RunFolderError

LOCK_FILE = "recording.lock"


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says: the recording process and the step it was in (None: between steps)."""

    pid: int
    host: str
    started: str
    proc_start: str
    step: int | None

    def alive(self) -> bool | None:
        """True if the recording process still runs, False if it is gone, None if unknown (another host)."""
        if self.pid <= 0:
            return None
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # runs, under another user
        except OSError:
            return None
        state, start = _proc_stat(self.pid)
        if state in ("Z", "X"):  # exited, not yet reaped by its parent
            return False
        return not (self.proc_start and start and start != self.proc_start)  # the pid was reused

    def describe(self) -> str:
        """``process 123 on host h``."""
        return f"process {self.pid} on {self.host}"


def _proc_stat(pid: int) -> tuple[str, str]:
    """``(state, start time)`` of a process from ``/proc/<pid>/stat`` (``("", "")`` where there is none)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return "", ""
    fields = text.rsplit(")", 1)[-1].split()
    return (fields[0] if fields else ""), (fields[19] if len(fields) > 19 else "")


def read_lock(root: str) -> LockInfo | None:
    """The lock of a rank folder (None when there is none); an unreadable lock has pid -1."""
    path = os.path.join(root, LOCK_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return LockInfo(-1, "?", "", "", None)
    if not isinstance(data, dict):
        return LockInfo(-1, "?", "", "", None)
    step = data.get("step")
    return LockInfo(int(data.get("pid", -1) or -1), str(data.get("host", "?")), str(data.get("started", "")),
                    str(data.get("proc_start", "")), step if isinstance(step, int) else None)


class RunLock:
    """This process's lock on one rank folder (see the module docstring)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, LOCK_FILE)
        self.step: int | None = None
        self.held = False
        self._body = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                      "proc_start": _proc_stat(os.getpid())[1]}

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunFolderError` saying who holds it and what to do."""
        for _attempt in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                other = read_lock(self.root)
                if other is None:
                    continue  # released meanwhile
                self._refuse_or_take_over(other)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self._text())
            self.held = True
            return
        raise RunFolderError(f"{self.root}: could not take its lock {self.path}; another Recorder is starting "
                             "there. Give each recorder its own out_dir.")

    def _refuse_or_take_over(self, other: LockInfo) -> None:
        alive = other.alive()
        if other.pid <= 0:
            raise RunFolderError(f"{self.root} is locked ({self.path} cannot be read): another Recorder may be "
                                 f"recording there. Give this one another out_dir, or delete {self.path} if none is.")
        if alive is not False:
            since = f" since {other.started}" if other.started else ""
            raise RunFolderError(
                f"{self.root} is being recorded by another Recorder ({other.describe()}{since}); two recorders "
                "must not share a folder and padiff never writes into another's recording. Give each its own "
                "out_dir (processes of one data-parallel run write rank-<r> folders of their own: check that "
                "their ranks differ).")
        if any(not name.startswith(LOCK_FILE) for name in os.listdir(self.root)):
            where = f" during step {other.step}" if other.step is not None else ""
            raise RunFolderError(
                f"{self.root} already holds a recording, left by {other.describe()}, which stopped{where} "
                "without closing it (killed or crashed); its complete steps stay readable and padiff never "
                "writes into a recording. Pass a new out_dir.")
        if read_lock(self.root) == other:  # a stale lock is all the folder holds: take it over
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def _text(self) -> str:
        return json.dumps({**self._body, "step": self.step})

    def set_step(self, step: int | None) -> None:
        """Note the step in progress (None: between steps); best effort (a full disk must not stop the step)."""
        self.step = step
        if not self.held:
            return
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(self._text())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def release(self) -> None:
        """Remove the lock (the run is closed)."""
        if self.held:
            self.held = False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def release_if_between_steps(self) -> None:
        """At interpreter exit or when the Recorder is dropped: a run that ended between steps is closed;
        one that stopped inside a step keeps its lock, so readers say which step is missing."""
        if self.step is None:
            self.release()


def steps_text(steps: list[int]) -> str:
    """``0-3, 5`` (``none`` when empty)."""
    if not steps:
        return "none"
    out: list[str] = []
    start = prev = steps[0]
    for s in [*steps[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ", ".join(out)


def unfinished_warning(info: LockInfo, root: str, steps: list[int]) -> str:
    """What a reader says about a rank folder whose lock is still there."""
    done = steps_text(sorted(steps))
    alive = info.alive()
    if info.pid > 0 and alive:
        now = f"step {info.step} in progress" if info.step is not None else "between steps"
        return (f"{root} is still being recorded ({info.describe()}, {now}); only its complete steps "
                f"({done}) are read.")
    if alive is False:
        if info.step is not None:
            return (f"the recording stopped during step {info.step}: {info.describe()} ended without closing "
                    f"the run (killed or crashed); its complete steps ({done}) are read, step {info.step} "
                    "is missing.")
        return (f"{info.describe()} ended without closing the run (killed between steps?); its complete steps "
                f"({done}) are read.")
    return (f"{root} is locked by {info.describe()}: it may still be being recorded; only its complete steps "
            f"({done}) are read.")


