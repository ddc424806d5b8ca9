"""Values kept to undo a weight copy, held in a temporary file instead of memory when they are large.

Copying a model's weights all or nothing means keeping every paddle tensor's value from before
the copy until it succeeded: as host arrays that is one more full copy of the paddle model in
memory (2 GB for a 0.5B model in float32, beside the two models themselves). Above
:data:`SPILL_BYTES` the values are written to an anonymous temporary file (already unlinked: nothing
is left behind, whatever happens) and handed back as read-only memory maps of it, which cost no
memory until a restore reads them. Callers treat them as the arrays they are.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from typing import IO, Any

import numpy as np

SPILL_BYTES = 256 * 2**20  # a snapshot at least this large goes to a temporary file


class Spill:
    """Collects host arrays; :meth:`arrays` returns them, memory-mapped from a temporary file if large."""

    def __init__(self, threshold: int | None = None) -> None:
        self.threshold = SPILL_BYTES if threshold is None else threshold
        self.held: list[Any] = []  # ndarray, or (offset, shape, dtype) once in the file
        self.size = 0
        self.file: IO[bytes] | None = None

    def add(self, arr: np.ndarray) -> None:
        """Keep ``arr`` (a fresh host copy the caller no longer uses)."""
        self.size += arr.nbytes
        if self.file is None and self.size >= self.threshold:
            self.file = tempfile.TemporaryFile(prefix="padiff-undo-")  # noqa: SIM115 - lives as long as its maps
            self.held = [self._write(a) for a in self.held]
        self.held.append(self._write(arr) if self.file is not None else arr)

    def _write(self, arr: np.ndarray) -> tuple[int, tuple[int, ...], np.dtype]:
        assert self.file is not None
        offset = self.file.tell()
        self.file.write(np.ascontiguousarray(arr).tobytes() if arr.size else b"")
        return offset, arr.shape, arr.dtype

    def arrays(self) -> list[np.ndarray]:
        """The kept values, in the order added (read-only maps of the file once spilled)."""
        if self.file is None:
            return list(self.held)
        self.file.flush()
        out: list[np.ndarray] = []
        for offset, shape, dtype in self.held:
            if int(np.prod(shape)) == 0:
                out.append(np.empty(shape, dtype))
            else:
                out.append(np.memmap(self.file, dtype=dtype, mode="r", offset=offset, shape=shape))
        return out


def spilled(values: Iterable[np.ndarray], threshold: int | None = None) -> list[np.ndarray]:
    """``values`` kept as :class:`Spill` keeps them (each array is released once written)."""
    spill = Spill(threshold)
    for v in values:
        spill.add(v)
    return spill.arrays()
