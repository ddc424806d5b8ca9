"""Errors padiff raises.

Two roots, as in Polygraphy: :class:`PadiffError` for things the *user* can fix (bad
options, inputs, maps, models that cannot be exported), and :class:`PadiffInternalError`
for a broken internal invariant, which is a padiff bug and says so.
"""

from __future__ import annotations


class PadiffError(Exception):
    """Base class of every error a user can act on; the message says what to do."""


class OptionsError(PadiffError, ValueError):
    """An option, tolerance, step count, loss or optimizer argument is invalid."""


class InputError(PadiffError, ValueError):
    """``example_inp`` or a model argument is not what padiff needs."""


class MappingError(PadiffError):
    """The two models cannot be paired, or a layer map does not fit them."""


class MapFileError(MappingError):
    """A saved layer-map file is malformed, of another version, or names missing layers."""


class ExportError(PadiffError):
    """A model could not be exported to ONNX (the aligner falls back to the module trees)."""


class WeightAssignError(PadiffError):
    """Weights could not be copied between a paired paddle layer and torch module."""


class ModelRunError(PadiffError):
    """A model, loss function or optimizer raised while padiff was running it.

    The original exception is chained as ``__cause__``; the message names the model,
    the stage and, when known, the layer that was running.
    """


class OutputPathError(PadiffError, OSError):
    """A file padiff was asked to write (a report, a JSON dump, logs, a map) cannot be written there.

    ``path`` is the path given. When a comparison had already finished, ``report`` holds
    its :class:`~padiff.report.records.DiffReport`, so the result is not lost; it is also an
    ``OSError`` for code that already catches those.
    """

    def __init__(self, message: str, path: str = "", report: object = None) -> None:
        super().__init__(message)
        self.path = path
        self.report = report

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RunFolderError(PadiffError):
    """A recorded run folder is missing, incomplete, of another format version, tampered with,
    or would be overwritten; the message names the file."""


class DiskFullError(RunFolderError, OSError):
    """The disk filled while a recording was being written (``ENOSPC``, or a quota: ``EDQUOT``).

    ``path`` is the rank folder, ``needed`` the bytes the step needed, ``free`` the bytes free
    there when it failed. The step that failed is not written (nor half-written); every earlier
    step stays readable and the model's hooks are removed. Also an ``OSError``.
    """

    def __init__(self, message: str, path: str = "", needed: int = 0, free: int = 0) -> None:
        super().__init__(message)
        self.path, self.needed, self.free = path, needed, free

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PadiffInternalError(Exception):
    """An internal invariant failed: this is a padiff bug, not a usage problem."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message} (this is a bug in padiff; please report it)")
