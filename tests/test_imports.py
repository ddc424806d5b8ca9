"""Import hygiene: the package imports cheaply and no module gains a framework import silently."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import padiff


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_import_padiff_loads_neither_framework():
    out = _fresh("import sys, padiff; print('paddle' in sys.modules, 'torch' in sys.modules)")
    assert out == "False False"


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(padiff.__path__, "padiff.") if not m.name.endswith("__main__")]
    assert "padiff.runtime.engine" in names
    for name in names:
        importlib.import_module(name)
