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

# the frameworks' own code (call machinery, ``Sequential.forward``): skipped, except the ``forward``
# of a model the framework ships outside its ``nn`` building blocks (``paddle.vision.models``): that
# is the model's own code. Other packages' models (torchvision, transformers) are never skipped.
_FRAMEWORK_PARTS = (
    os.sep + "paddle" + os.sep,
    os.sep + "torch" + os.sep,
)
_BUILDING_BLOCKS = (
    os.sep + "paddle" + os.sep + "nn" + os.sep,
    os.sep + "torch" + os.sep + "nn" + os.sep,
)
_SKIP_PARTS = (
    os.sep + "padiff" + os.sep + "runtime" + os.sep,
    os.sep + "padiff" + os.sep + "adapters" + os.sep,
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

    Left out: padiff's own frames, pytest's, and the frameworks' own code; kept: the
    user's code, packages' models (torchvision, transformers) and the ``forward`` of the
    models a framework ships (``paddle.vision.models``).

    Walks ``sys._getframe`` directly: ~100x cheaper than ``traceback.extract_stack`` and
    keeps no frame objects alive.
    """
    frames: list[Frame] = []
    f = sys._getframe(1)
    while f is not None and len(frames) < limit:
        code = f.f_code
        fname = code.co_filename
        if not any(part in fname for part in _SKIP_PARTS) and (
                not any(part in fname for part in _FRAMEWORK_PARTS)
                or (code.co_name == "forward" and not any(part in fname for part in _BUILDING_BLOCKS))):
            frames.append((fname, f.f_lineno, code.co_name))
        f = f.f_back
    frames.reverse()
    return tuple(frames)
