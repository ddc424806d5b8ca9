"""Writing user-facing files safely: all or nothing, with ordinary permissions.

The text goes to a temporary file in the target directory and is moved into place, so a
failure never leaves a half-written file where the user's previous one was.
"""

from __future__ import annotations

import os
import tempfile

from padiff.errors import OutputPathError


def atomic_write(path: str, text: str, *, make_dirs: bool = True, what: str = "the file") -> str:
    """Write ``text`` to ``path`` atomically (mode 0o666 minus the umask); return the path.

    A path that cannot be written (under an existing file, onto a directory, no
    permission) raises :class:`OutputPathError` naming it; ``what`` says what it was for.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise unwritable(path, IsADirectoryError(path), what)
    try:
        if make_dirs:
            os.makedirs(directory, exist_ok=True)
        elif not os.path.isdir(directory):
            raise FileNotFoundError(f"directory {directory} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=".padiff-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise unwritable(path, exc, what) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise unwritable(path, exc, what) from exc
        raise
    return path


def unwritable(path: str, exc: OSError, what: str = "the file") -> OutputPathError:
    """An :class:`OutputPathError` for ``path``, saying why it cannot be written and what to do."""
    path = os.fspath(path)
    if os.path.isdir(path) and not isinstance(exc, FileExistsError):
        why = f"{path} is a directory; give a file name"
    else:
        parent = _file_ancestor(path)
        why = (f"{parent} is a file, not a directory" if parent is not None
               else f"{type(exc).__name__}: {exc.strerror or exc}")
    return OutputPathError(f"cannot write {what} to {path}: {why}. Choose another path.", path)


def _file_ancestor(path: str) -> str | None:
    """The first existing non-directory among the parents of ``path`` (None if there is none)."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and parent != os.path.dirname(parent):
        if os.path.exists(parent):
            return None if os.path.isdir(parent) else parent
        parent = os.path.dirname(parent)
    return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
