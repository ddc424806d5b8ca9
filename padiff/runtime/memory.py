"""Process memory: handing freed heap memory back to the OS, and how much is left.

While paddle's and torch's backward passes run in two threads (see
:mod:`padiff.runtime.grad_exchange`), the activations one framework frees stay in the heap
arena of the thread that allocated them, and glibc does not give them to the other thread:
on the benchmark conv net the peak grew by more than the whole exchange saved. Trimming now
and then returns those free pages, so the other thread's new allocations can use them. It
changes no allocator setting and frees nothing that is in use; elsewhere than glibc it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def trim_free_memory() -> bool:
    """Return the heap's free pages to the OS; True if that was possible here (glibc)."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def available_memory() -> int | None:
    """Bytes the OS could still give this process (``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
