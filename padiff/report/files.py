"""Writing user-facing files safely: all or nothing, with ordinary permissions.

The text goes to a temporary file in the target directory and is moved into place, so a
failure never leaves a half-written file where the user's previous one was.
"""

from __future__ import annotations

import os
import tempfile


def atomic_write(path: str, text: str, *, make_dirs: bool = True) -> str:
    """Write ``text`` to ``path`` atomically (mode 0o666 minus the umask); return the path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if make_dirs:
        os.makedirs(directory, exist_ok=True)
    elif not os.path.isdir(directory):
        raise FileNotFoundError(f"directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".padiff-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
