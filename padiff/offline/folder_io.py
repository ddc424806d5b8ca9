"""Writing into a rank folder safely: taking the folder, appending index lines, failing cleanly.

Kept apart from :mod:`padiff.offline.recorder` (what is recorded) so the failure paths are in
one place: a folder another Recorder holds or that already holds a recording is refused
(:mod:`padiff.offline.run_lock`); a step whose write fails (a full disk) leaves no temporary file
and no partial index line, so every earlier step stays readable and the error says how much space
the step needed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

from padiff.errors import DiskFullError, PadiffError, RunFolderError
from padiff.offline.run_lock import LOCK_FILE, RunLock, steps_text
from padiff.report.files import unwritable

#: errno values meaning "no room left": the disk is full, or the user's quota is
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


def open_folder(root: str) -> RunLock:
    """Create ``root`` and take its lock; refuse it when another Recorder holds it or it holds a recording."""
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as exc:
        raise unwritable(root, exc, "the recording") from exc
    lock = RunLock(root)
    lock.acquire()
    if any(not name.startswith(LOCK_FILE) for name in os.listdir(root)):
        lock.release()
        raise RunFolderError(f"{root} already holds a recording; padiff never overwrites one. "
                             "Pass a new out_dir (or delete the old run yourself).")
    return lock


@contextlib.contextmanager
def written_or_removed(tmp: str) -> Iterator[str]:
    """Yield ``tmp``; when the block raises, the temporary file is removed (a full disk keeps no half file)."""
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def append_line(path: str, data: bytes) -> None:
    """Append ``data`` (one index line) with ``O_APPEND``, all of it or nothing.

    ``os.write`` may write part of it before the disk fills; then the file is cut back to its
    size before, so the index never holds a partial line followed by later complete ones.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def step_bytes(st: Any) -> int:
    """About how many bytes a step's tensor file and index line take."""
    tensors = sum(int(getattr(a, "nbytes", 0)) + 96 for a in st.tensors.values())
    return tensors + len(json.dumps(st.entries, allow_nan=True)) + 4096


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def write_failed(exc: OSError, root: str, st: Any, done: list[int]) -> PadiffError:
    """The error for a step whose files could not be written: :class:`DiskFullError` for a full disk."""
    kept = (f"step{'s' if len(done) > 1 else ''} {steps_text(done)} {'are' if len(done) > 1 else 'is'} complete "
            "and readable" if done else "no step was recorded before it")
    if exc.errno in _NO_SPACE:
        need = step_bytes(st)
        try:
            free = int(shutil.disk_usage(root).free)
        except OSError:
            free = 0
        return DiskFullError(
            f"the disk holding {root} is full ({exc.strerror or exc}): step {st.step} needs about {_size(need)} and "
            f"{_size(free)} are free there now. Make at least {_size(need)} free on that disk, or record "
            "elsewhere (another out_dir) or less (level='stats', layers=, steps=); "
            f"{kept}, step {st.step} was not written and can be recorded again.", root, need, free)
    return RunFolderError(f"cannot write step {st.step} into {root}: {type(exc).__name__}: {exc.strerror or exc}. "
                          f"{kept[0].upper() + kept[1:]}; step {st.step} was not written.")
