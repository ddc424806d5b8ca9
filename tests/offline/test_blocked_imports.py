"""A framework blocked with ``sys.modules[name] = None`` is simply absent: recording and exporting the
other framework's model work (a torch-only process never imports paddle, and the reverse)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.offline.conftest import env

TORCH_ONLY = """
import sys
sys.modules["paddle"] = None
import torch, padiff
m = torch.nn.Sequential(torch.nn.Linear(4, 3))
padiff.export_weights(m, sys.argv[1] + "/w.safetensors")
rec = padiff.Recorder(m, sys.argv[1] + "/run", graph=False)
with rec.step(0):
    m(torch.ones(2, 4)).sum().backward()
rec.close()
assert sys.modules["paddle"] is None
print("ok")
"""

PADDLE_ONLY = """
import sys
sys.modules["torch"] = None
import paddle, padiff
m = paddle.nn.Sequential(paddle.nn.Linear(4, 3))
padiff.export_weights(m, sys.argv[1] + "/w.safetensors")
rec = padiff.Recorder(m, sys.argv[1] + "/run", graph=False)
with rec.step(0):
    m(paddle.ones([2, 4])).sum().backward()
rec.close()
assert sys.modules["torch"] is None
print("ok")
"""


@pytest.mark.parametrize("code", [TORCH_ONLY, PADDLE_ONLY], ids=["paddle-blocked", "torch-blocked"])
def test_a_blocked_framework_is_simply_absent(code: str, tmp_path: object) -> None:
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env(), capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]

    from padiff.offline.reader import read_run

    assert list(read_run(f"{tmp_path}/run")[0].steps) == [0]
    assert os.path.getsize(f"{tmp_path}/w.safetensors") > 0
