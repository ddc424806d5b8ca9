"""Hook registration with guaranteed removal, and cheap capture of the user's call stack.

Every handle goes through one :class:`HookSet`; leaving its ``with`` block removes all of
them, also when a forward raises, so cleanup is one mechanism, not sprinkled code.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import TracebackType
from typing import Any

Frame = tuple[str, int, str]

# the frameworks' call machinery (``__call__``, ``_call_impl``, decorators): skipped, except their
# ``forward`` frames, which are a model's own code even when the model comes from a package
# (``paddle.vision.models``, ``torch.nn.TransformerEncoder``)
_FRAMEWORK_PARTS = (
    os.sep + "paddle" + os.sep,
    os.sep + "torch" + os.sep,
)
_SKIP_PARTS = (
    os.sep + "padiff" + os.sep + "runtime" + os.sep,
    os.sep + "bin" + os.sep + "padiff",  # the console script
    os.sep + "padiff" + os.sep + "api.py",
    os.sep + "padiff" + os.sep + "cli",
    os.sep + "contextlib.py",
    os.sep + "_pytest" + os.sep,
    os.sep + "pluggy" + os.sep,
    "<frozen ",
)


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


def user_stack(limit: int = 12) -> tuple[Frame, ...]:
    """The caller's frames of model and user code, innermost last.

    Left out: padiff's own frames, pytest's, and the frameworks' call machinery; kept:
    every ``forward`` (package models included) and everything outside the frameworks.

    Walks ``sys._getframe`` directly: ~100x cheaper than ``traceback.extract_stack`` and
    keeps no frame objects alive.
    """
    frames: list[Frame] = []
    f = sys._getframe(1)
    while f is not None and len(frames) < limit:
        code = f.f_code
        fname = code.co_filename
        if not any(part in fname for part in _SKIP_PARTS) and (
                code.co_name == "forward" or not any(part in fname for part in _FRAMEWORK_PARTS)):
            frames.append((fname, f.f_lineno, code.co_name))
        f = f.f_back
    frames.reverse()
    return tuple(frames)
