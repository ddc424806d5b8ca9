"""A fused pair recorded at level ``stats`` is still compared: the fused output's statistics against its parts'.

The parts of a fused pair are slices of the fused tensor; at level ``stats`` no slice was recorded,
but every statistic kept (moments, min/max, NaN/Inf counts) does not depend on the order of the
elements, so the fused tensor's statistics equal those of all its parts put together. The fused
decoder block of :mod:`fused_side` (paddle ``qkv_proj`` against torch ``q/k/v_proj``) is recorded
at level ``stats`` in two processes; a fault planted in torch ``k_proj`` must be named at the fused pair.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from padiff.offline.fmt import combined_stats, tensor_stats
from tests.offline.conftest import env

HERE = os.path.dirname(__file__)
RECORD = os.path.join(HERE, "record_fused.py")
OPTS = {"atol": 1e-5, "rtol": 1e-4}


def test_combined_stats_are_those_of_the_concatenation() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((2, 3, 4)) * s + m for s, m in ((1.0, 0.5), (3.0, -2.0), (0.1, 0.0))]
    parts[1][0, 0, 0] = np.nan
    whole = np.concatenate([p.ravel() for p in parts])
    got = combined_stats([(tensor_stats(p), p.size) for p in parts])
    np.testing.assert_allclose(got, tensor_stats(whole), rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def stats_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("fused_stats")
    jobs = {"pd": ["paddle"], "pt": ["torch"], "pt_fault": ["torch", "--fault", "1.05", "--fault-step", "1"]}
    out = {}
    for name, args in jobs.items():
        out[name] = str(base / name)
        p = subprocess.run([sys.executable, RECORD, args[0], out[name], "--steps", "2", "--level", "stats",
                            *args[1:]], env=env(), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out


def test_fused_pair_compared_by_statistics(stats_runs: dict[str, str]) -> None:
    import padiff

    lm = "auto"
    ok = padiff.compare_runs(stats_runs["pd"], stats_runs["pt"], layer_map=lm, options=OPTS)
    fused = [r for r in ok.records if r.paddle_path == "attn.qkv_proj" and "parts together" in r.item]
    assert {r.stage for r in fused} >= {"forward", "backward"}, [str(r) for r in ok.records][:20]
    assert all(r.passed for r in fused) and ok, [str(r) for r in ok.failures()]
    assert not any("level 'full' only" in w for w in ok.warnings), ok.warnings
    fused_w = [r for r in ok.records if r.stage == "weight" and r.paddle_path == "attn.qkv_proj"]
    assert fused_w and all("by statistics" in r.item and r.passed for r in fused_w)
    bad = padiff.compare_runs(stats_runs["pd"], stats_runs["pt_fault"], layer_map=lm, options=OPTS)
    first = bad.first_diff
    assert first is not None and (first.stage, first.step, first.paddle_path) == ("forward", 1, "attn.qkv_proj")
    assert "attn.k_proj" in first.torch_path
