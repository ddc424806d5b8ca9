"""Shared recordings: each side recorded in its own process with the other framework blocked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "record_side.py")

#: name -> (framework, extra args)
RUNS = {
    "pd": ("paddle", []),
    "pt": ("torch", []),
    "pt_scale": ("torch", ["--scale", "1.05", "--fault-step", "1"]),
    "pt_lr": ("torch", ["--lr", "0.2"]),
    "pd_acc": ("paddle", ["--accum", "2"]),
    "pt_acc": ("torch", ["--accum", "2", "--scale", "1.05", "--fault-micro", "1", "--fault-step", "1"]),
    "pd_big": ("paddle", ["--hidden", "256", "--steps", "2"]),
    "pd_big_stats": ("paddle", ["--hidden", "256", "--steps", "2", "--level", "stats"]),
    "pt_big_stats": ("torch", ["--hidden", "256", "--steps", "2", "--level", "stats", "--scale", "1.05"]),
    "pt_frozen": ("torch", ["--freeze-fc1"]),
    "pt_renamed": ("torch", ["--rename"]),
    "pt_killed": ("torch", ["--steps", "4", "--kill-at-step", "2"]),
}


def env() -> dict[str, str]:
    """The child environment: this worktree's padiff first, quiet and single-threaded."""
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             OMP_NUM_THREADS="1", GLOG_minloglevel="2")
    for k in ("RANK", "WORLD_SIZE", "PADDLE_TRAINER_ID", "PADDLE_TRAINERS_NUM"):
        e.pop(k, None)
    return e


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Record every run of :data:`RUNS` (two at a time) and return ``{name: run folder}``."""
    base = tmp_path_factory.mktemp("offline_runs")
    out: dict[str, str] = {}
    names = list(RUNS)
    for i in range(0, len(names), 2):
        procs = []
        for name in names[i:i + 2]:
            fw, extra = RUNS[name]
            out[name] = str(base / name)
            procs.append((name, subprocess.Popen([sys.executable, SCRIPT, fw, out[name], *extra], env=env(),
                                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
        for name, p in procs:
            text, _ = p.communicate(timeout=300)
            if name == "pt_killed":
                assert p.returncode == -9, text
            else:
                assert p.returncode == 0, f"{name} failed:\n{text}"
    return out
