"""What the ``padiff`` command needs from the user: ``FILE.py:FUNC`` targets and ``--options`` text.

Kept apart from :mod:`padiff.cli` so the argument handling can be tested without
argparse, and so every problem here is a :class:`UsageError` the CLI turns into exit
code 2 with a hint.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

EXTRA_KEYS = ("loss_fn", "optimizer")


class UsageError(Exception):
    """A problem with what was typed on the command line or with the user's FUNC (exit code 2)."""


@dataclass
class Target:
    """What ``FUNC()`` returned: the two models, the example input and extra ``compare`` keywords."""

    layer: Any
    module: Any
    example_inp: Any
    extra: dict[str, Any] = field(default_factory=dict)


def split_target(text: str) -> tuple[str, str]:
    """``"path/to/file.py:func"`` -> ``(path, func)``; a clear error otherwise."""
    path, sep, func = text.rpartition(":")
    if not sep or not path or not func:
        raise UsageError(f"expected FILE.py:FUNC (e.g. models.py:make_pair), got {text!r}.")
    if not func.isidentifier():
        raise UsageError(f"{func!r} (after the ':') is not a Python function name.")
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path}")
    return path, func


def load_function(text: str) -> Any:
    """Import ``FILE.py`` (its directory put first on ``sys.path``) and return ``FUNC`` from it."""
    path, func = split_target(text)
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = "padiff_user_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {path}: not a Python file.")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except SystemExit as exc:  # sys.exit at import: nothing was compared, so no verdict (exit 2)
        raise UsageError(f"importing {path} called sys.exit({exc.code!r}); nothing was compared. Guard the "
                         "script part of the file with if __name__ == '__main__':.") from None
    except Exception as exc:  # noqa: BLE001 - the user's file raised: show where, exit 2
        raise UsageError(f"importing {path} raised {type(exc).__name__}: {exc}\n{user_traceback(exc)}") from None
    fn = getattr(mod, func, None)
    if fn is None or not callable(fn):
        own = [(n, v) for n, v in vars(mod).items() if not n.startswith("_") and getattr(v, "__module__", None) == name]
        names = sorted(n for n, v in own if inspect.isfunction(v))
        classes = sorted(n for n, v in own if inspect.isclass(v))
        hint = (f" (classes such as {', '.join(classes[:3])} are not FUNCs: FUNC is a function taking no arguments "
                "that builds the models and returns (layer, module, example_inp))") if classes else ""
        raise UsageError(f"{path} has no function {func!r}; functions defined there: "
                         f"{', '.join(names) or '(none)'}{hint}.")
    return fn


def load_target(text: str) -> Target:
    """Call ``FUNC()``; it must return ``(layer, module, example_inp)`` or that plus a dict of extras."""
    fn = load_function(text)
    try:
        value = fn()
    except SystemExit as exc:  # a FUNC that exits compared nothing: neither "agree" nor "differ" (exit 2)
        raise UsageError(f"{text} called sys.exit({exc.code!r}) instead of returning (layer, module, example_inp); "
                         "nothing was compared. Return the models instead of exiting.") from None
    except Exception as exc:  # noqa: BLE001 - the user's function raised: show where, exit 2
        raise UsageError(f"{text} raised {type(exc).__name__}: {exc}\n{user_traceback(exc)}") from None
    shape = "(layer, module, example_inp) or (layer, module, example_inp, {'loss_fn': ..., 'optimizer': ...})"
    if not isinstance(value, tuple | list) or len(value) not in (3, 4):
        raise UsageError(f"{text} must return {shape}; it returned {_describe(value)}.")
    extra: dict[str, Any] = {}
    if len(value) == 4:
        if not isinstance(value[3], dict):
            raise UsageError(f"the 4th item {text} returns must be a dict of extra compare() arguments "
                             f"({', '.join(EXTRA_KEYS)}), got {type(value[3]).__name__}.")
        unknown = sorted(set(value[3]) - set(EXTRA_KEYS))
        if unknown:
            raise UsageError(f"the extras dict {text} returns has unknown key(s) {unknown}; valid: {list(EXTRA_KEYS)}.")
        extra = dict(value[3])
    return Target(value[0], value[1], value[2], extra)


def _describe(value: Any) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    return f"a {type(value).__name__}"


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without padiff's own frames (what the user needs to fix their file)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.sep + "padiff" + os.sep not in f.filename and "<frozen" not in f.filename]
    return "".join(traceback.format_list(frames)).rstrip()


def parse_options(text: str | None) -> dict[str, Any]:
    """``"atol=1e-4,rtol=0,compare_mode=strict,single_step=true"`` -> a dict with typed values.

    Values: ``true``/``false`` become booleans, integers and floats become numbers,
    anything else stays a string. Key validation is left to :class:`padiff.DiffOptions`,
    which names the valid keys.
    """
    out: dict[str, Any] = {}
    if text is None or not text.strip():
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise UsageError(f"--options expects key=value pairs separated by commas (e.g. atol=1e-4,rtol=0), "
                             f"got {item!r}.")
        if key in out:
            raise UsageError(f"--options gives {key!r} twice.")
        out[key] = _value(raw)
    return out


def _value(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return raw
