"""Shared recordings: each side recorded in its own process with the other framework blocked."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping

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


def record_two_at_a_time(script: str, jobs: Mapping[str, tuple[str, list[str]]], base: str,
                         suffix: Callable[[str], str] = lambda fw: "",
                         killed: Collection[str] = ()) -> dict[str, str]:
    """Run ``script FW OUT *extra`` for every ``{name: (FW, extra)}`` of ``jobs``, two processes at a time,
    and return ``{name: OUT}`` (``base/name`` plus ``suffix(FW)``). Each must exit 0; a job in ``killed``
    must have been killed (it kills itself mid-run)."""
    out: dict[str, str] = {}
    names = list(jobs)
    for i in range(0, len(names), 2):
        procs = []
        for name in names[i:i + 2]:
            fw, extra = jobs[name]
            out[name] = os.path.join(base, name) + suffix(fw)
            procs.append((name, subprocess.Popen([sys.executable, script, fw, out[name], *extra], env=env(),
                                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
        for name, p in procs:
            text, _ = p.communicate(timeout=300)
            if name in killed:
                assert p.returncode == -9, text
            else:
                assert p.returncode == 0, f"{name} failed:\n{text[-3000:]}"
    return out


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Record every run of :data:`RUNS` (two at a time) and return ``{name: run folder}``."""
    return record_two_at_a_time(SCRIPT, RUNS, str(tmp_path_factory.mktemp("offline_runs")), killed=("pt_killed",))
