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

    def add(self, arr: np.ndarray, *, view: bool = False) -> None:
        """Keep ``arr``: a fresh host copy the caller no longer uses, or (``view``) one that may share the
        memory of a tensor about to change, whose values are then copied or written out before returning.

        A view spares the host copy: above the threshold the values go from the tensor's own memory
        straight to the file (no copy in between, which cost as much as the write at 0.5B parameters).
        """
        self.size += arr.nbytes
        if self.file is None and self.size >= self.threshold:
            self.file = tempfile.TemporaryFile(prefix="padiff-undo-")  # noqa: SIM115 - lives as long as its maps
            self.held = [self._write(a) for a in self.held]
        if self.file is not None:
            self.held.append(self._write(arr))
        else:
            self.held.append(np.array(arr) if view else arr)

    def _write(self, arr: np.ndarray) -> tuple[int, tuple[int, ...], np.dtype]:
        assert self.file is not None
        offset = self.file.tell()
        if arr.size:
            # the array's own buffer (a contiguous one is written without a bytes copy)
            self.file.write(np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data)
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


def spilled(values: Iterable[np.ndarray], threshold: int | None = None, *, views: bool = False) -> list[np.ndarray]:
    """``values`` kept as :class:`Spill` keeps them (each array is released once written).

    ``views``: the values may share memory with tensors that change later (see :meth:`Spill.add`).
    """
    spill = Spill(threshold)
    for v in values:
        spill.add(v, view=views)
    return spill.arrays()
