"""Hook registration with guaranteed removal.

Every handle goes through one :class:`HookSet`; leaving its ``with`` block removes all of
them, also when a forward raises, so cleanup is one mechanism, not sprinkled code.
"""

from __future__ import annotations

import warnings
from types import TracebackType
from typing import Any


class HookSet:
    """Collects hook handles; ``remove_all`` (or leaving the ``with`` block) removes them."""

    def __init__(self) -> None:
        self.handles: list[Any] = []

    def add(self, handle: Any) -> Any:
        self.handles.append(handle)
        return handle

    def remove_all(self) -> None:
        """Remove every registered hook, newest first; never raises."""
        with warnings.catch_warnings():
            # paddle warns when an in-place op already moved a tensor's grad hook; nothing is left to remove
            warnings.simplefilter("ignore")
            while self.handles:
                handle = self.handles.pop()
                try:
                    handle.remove()
                except Exception:  # noqa: BLE001 - cleanup must go on for the others
                    pass

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove_all()
