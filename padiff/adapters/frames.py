"""The user's call stack, cheaply: which frames are the model's and the user's own code.

Framework-free (it reads file names, never a framework): the engine stamps each record
with it, and the op recorders (:mod:`.paddle_ops`, :mod:`.torch_ops`) each op.
"""

from __future__ import annotations

import linecache
import os
import sys
from types import FrameType

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


def user_stack(limit: int = 12) -> tuple[Frame, ...]:
    """The caller's frames of model and user code, innermost last.

    Left out: padiff's own frames, pytest's, and the frameworks' own code; kept: the
    user's code, packages' models (torchvision, transformers) and the ``forward`` of the
    models a framework ships (``paddle.vision.models``).

    Walks ``sys._getframe`` directly: ~100x cheaper than ``traceback.extract_stack`` and
    keeps no frame objects alive.
    """
    frames: list[Frame] = []
    f: FrameType | None = sys._getframe(1)
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


def source_text(frame: Frame | None) -> str:
    """``file:line (function): code`` of a frame, for reports."""
    if frame is None:
        return ""
    fname, line, func = frame
    code = linecache.getline(fname, line).strip()
    return f"{fname}:{line} ({func})" + (f": {code}" if code else "")
