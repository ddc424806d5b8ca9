"""Suite-wide guard: every padiff entry point leaves the user's models as they were.

Each call of ``compare`` / ``auto_diff`` / ``assign_weight`` / ``suggest_layer_map`` made
by any test is wrapped: before it, the hooks, train/eval modes and grad flags of both
models are recorded; after it (also when it raised) they must be identical.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("PADIFF_LOG_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "padiff_test_logs"))

FRAMEWORKS = ("paddle", "torch", "paddle2onnx")
NO_FRAMEWORKS_ENV = "PADIFF_TEST_NO_FRAMEWORKS"  # set: importing paddle or torch raises (tests/test_framework_free.py)


class _NoFrameworks:
    """A meta-path finder that refuses the frameworks, so framework-free tests prove they are."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] in FRAMEWORKS:
            raise ImportError(f"{name} imported in a framework-free test run ({NO_FRAMEWORKS_ENV}=1)")


if os.environ.get(NO_FRAMEWORKS_ENV):
    sys.meta_path.insert(0, _NoFrameworks())


def _fingerprint(layer: Any, module: Any) -> dict[str, Any]:
    from padiff.adapters import PADDLE, TORCH

    out: dict[str, Any] = {}
    for side, root in ((PADDLE, layer), (TORCH, module)):
        if not side.is_model(root):
            continue
        out[side.name + ".hooks"] = side.hook_count(root)
        out[side.name + ".modes"] = [(p, side.is_training(m)) for p, m in side.named_layers(root)]
        out[side.name + ".flags"] = [(p, e.name, side.requires_grad(e.tensor))
                                     for p, es in side.owned_state(root).items() for e in es if not e.is_buffer]
    return out


def _guarded(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(layer: Any, module: Any, *args: Any, **kwargs: Any) -> Any:
        before = _fingerprint(layer, module)
        try:
            return fn(layer, module, *args, **kwargs)
        finally:
            after = _fingerprint(layer, module)
            for key in before:
                assert before[key] == after.get(key), f"{fn.__name__} changed the user's {key}"

    wrapper.__padiff_guarded__ = True
    return wrapper


_TARGETS = [
    ("padiff.api", "compare"),
    ("padiff", "compare"),
    ("padiff.weights.assign", "assign_weight"),
    ("padiff.graph.suggest", "suggest_layer_map"),
]


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same random state, so model weights are reproducible.

    Only the frameworks already imported (by the test module or its models) are seeded: a
    framework-free test (graph matcher, report rendering, map codec) must not pay for
    importing paddle and torch.
    """
    import numpy as np

    np.random.seed(0)
    if "paddle" in sys.modules:
        sys.modules["paddle"].seed(0)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(0)


@pytest.fixture(autouse=True)
def _user_state_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod_name, attr in _TARGETS:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        fn = getattr(mod, attr, None)
        if fn is not None and not getattr(fn, "__padiff_guarded__", False):
            monkeypatch.setattr(mod, attr, _guarded(fn))
