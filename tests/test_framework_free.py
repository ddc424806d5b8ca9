"""The framework-free tests pass with neither framework importable.

The graph matcher, report rendering from records, the map codec, the adapters' helpers and the
engine's recording, calls, sink and comparisons (on a fake framework) are pure Python; their
tests run here in a subprocess where importing paddle or torch raises (tests/conftest.py
installs the blocker when ``PADIFF_TEST_NO_FRAMEWORKS`` is set), so neither the package
nor the suite's fixtures can pull a framework in unnoticed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import NO_FRAMEWORKS_ENV

TESTS = Path(__file__).parent
FRAMEWORK_FREE = [
    "graph/test_match.py",
    "graph/test_paramfree_match.py",
    "graph/test_fused_match.py",
    "report/test_records.py",
    "report/test_text.py",
    "report/test_html.py",
    "maps/test_codec.py",
    "maps/test_notes.py",
    "test_options.py",
    "runtime/test_hooks.py",
    "runtime/test_op_align.py",
    "test_architecture.py",
    "adapters/test_adapter_helpers.py",
    "adapters/test_adapter_interface.py",
    "runtime/engine/test_engine_sink.py",
    "runtime/engine/test_engine_recording.py",
    "runtime/engine/test_engine_calls.py",
    "runtime/engine/test_engine_backward_mode.py",
    "runtime/engine/test_engine_passes.py",
    "runtime/engine/test_engine_pairs.py",
    "runtime/engine/test_engine_comparisons.py",
]


def _run(files: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, NO_FRAMEWORKS_ENV: "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", *files],
                          cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=900)


def test_framework_free_tests_pass_without_paddle_or_torch():
    proc = _run([str(TESTS / f) for f in FRAMEWORK_FREE])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_the_blocker_catches_a_framework_import():
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import conftest\n"
            "try:\n    import torch\nexcept ImportError as e:\n    print('refused:', e)\n")
    env = {**os.environ, NO_FRAMEWORKS_ENV: "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "refused: torch imported in a framework-free test run" in out
