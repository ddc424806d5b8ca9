"""The log root and its run folders: where logs go, how many are kept, how much they take.

No rendering here: :mod:`padiff.report.logs` writes the files, :mod:`padiff.report.text`
points out their size.
"""

from __future__ import annotations

import os
import re
import shutil

from padiff.errors import OptionsError

LOG_DIR_ENV = "PADIFF_LOG_DIR"
LOG_KEEP_ENV = "PADIFF_LOG_KEEP"  # keep only the last N runs' logs under the log root
DEFAULT_LOG_DIR = "padiff_logs"
_RUN_DIR = re.compile(r"^\d{8}-\d{6}-\d{6}(-\d+)?$")  # the names write_logs gives its run folders
_noted: set[str] = set()  # log roots whose size was already pointed out in this process


def default_log_root() -> str:
    """``$PADIFF_LOG_DIR`` if set, else ``./padiff_logs``."""
    return os.environ.get(LOG_DIR_ENV) or DEFAULT_LOG_DIR


def keep_count(keep: int | None) -> int | None:
    if keep is not None:
        return keep
    raw = os.environ.get(LOG_KEEP_ENV, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        raise OptionsError(f"{LOG_KEEP_ENV} must be a whole number of runs to keep, got {raw!r}; "
                           f"unset it to keep every run's logs.") from None
    return max(n, 1)


def run_dirs(root: str) -> list[str]:
    """The run folders write_logs made under ``root``, oldest first."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [os.path.join(root, n) for n in names
            if _RUN_DIR.match(n) and os.path.isfile(os.path.join(root, n, "summary.txt"))]


def prune_logs(root: str, keep: int | None) -> list[str]:
    """Remove the oldest run folders under ``root`` beyond the last ``keep``; return what was removed."""
    if keep is None:
        return []
    old = run_dirs(root)[:-keep] if keep > 0 else run_dirs(root)
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return old


def _size(path: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                pass
    return total


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


def log_size_note(run_dir: str) -> list[str]:
    """Once per log root and process: how much the logs of failed runs take, and how to cap it."""
    root = os.path.dirname(run_dir)
    key = os.path.abspath(root)
    if key in _noted or not os.path.isdir(run_dir) or os.environ.get(LOG_KEEP_ENV):
        return []
    _noted.add(key)
    runs = run_dirs(root)
    return [f"  ({_mb(_size(run_dir))} this run; every failed run adds its own folder: {root} holds {len(runs)} "
            f"run(s), {_mb(_size(root))}. Keep only the last N with {LOG_KEEP_ENV}=N (padiff run --log-keep N), "
            f"or point {LOG_DIR_ENV} elsewhere.)"]
