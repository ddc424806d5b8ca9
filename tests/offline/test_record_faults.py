"""Faults while recording: a full disk, two recorders on one folder, a run still being written or killed.

The run folders are append-only, so whatever stops a recording leaves every complete step readable;
these tests check that, and that padiff says what happened. The full disk is simulated in-process
(``os.write`` / the tensor writer raising ``ENOSPC``); the rest uses real processes and real signals.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import torch

import padiff
from padiff import DiskFullError, PadiffError, RunFolderError
from padiff.adapters import TORCH
from padiff.offline import tensor_file
from padiff.offline.reader import read_run
from padiff.offline.run_lock import LOCK_FILE
from tests.offline.conftest import SCRIPT, env


# --- a full disk (simulated) -------------------------------------------------------------------
def _model_and_step() -> tuple[torch.nn.Module, Any]:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))

    def step(rec: padiff.Recorder, i: int) -> None:
        with rec.step(i):
            loss = m(torch.ones(2, 4) * (i + 1)).pow(2).mean()
            rec.loss(loss)
            loss.backward()
    return m, step


def test_disk_full_while_appending_the_index(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    m, step = _model_and_step()
    rec = padiff.Recorder(m, tmp_path / "run", graph=False)
    step(rec, 0)
    index = tmp_path / "run" / "rank-0" / "index.jsonl"
    before = index.read_bytes()
    real_write, calls = os.write, []

    def disk_fills(fd: int, data: Any) -> int:  # the first write gets half of the line in, then the disk is full
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_fills)
    with pytest.raises(DiskFullError) as info:
        step(rec, 1)
    monkeypatch.undo()
    err = info.value
    assert isinstance(err, PadiffError) and isinstance(err, OSError) and len(calls) == 2
    root = str(tmp_path / "run" / "rank-0")
    assert err.path == root and err.needed > 0
    assert str(err).startswith(f"the disk holding {root} is full (No space left on device): step 1 needs about ")
    assert "Make at least" in str(err) and "step 0 is complete and readable" in str(err)
    assert TORCH.hook_count(m) == 0  # the model is not left half-wrapped
    assert index.read_bytes() == before  # the half line was cut away
    assert sorted(os.listdir(os.path.join(root, "steps"))) == ["step-000000.safetensors"]
    run = read_run(tmp_path / "run")[0]
    assert list(run.steps) == [0] and run.tensors(0)
    step(rec, 1)  # once there is room again the same step is recorded
    rec.close()
    run = read_run(tmp_path / "run")[0]
    assert list(run.steps) == [0, 1] and run.warnings == []


def test_disk_full_while_writing_a_step_tensor_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    m, step = _model_and_step()
    rec = padiff.Recorder(m, tmp_path / "run", graph=False)
    step(rec, 0)

    class Full:
        def __init__(self, path: str, mode: str) -> None:
            self.f = open(path, mode)  # noqa: SIM115 - closed in __exit__

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, chunk: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tensor_file, "open", Full, raising=False)
    with pytest.raises(DiskFullError, match="step 1 needs about"):
        step(rec, 1)
    monkeypatch.undo()
    assert TORCH.hook_count(m) == 0
    root = tmp_path / "run" / "rank-0"
    assert sorted(os.listdir(root / "steps")) == ["step-000000.safetensors"]  # no .partial left behind
    assert list(read_run(tmp_path / "run")[0].steps) == [0]
    rec.close()


# --- real processes ------------------------------------------------------------------------------
@pytest.fixture
def pd_run(runs: dict[str, str]) -> str:
    """A complete 3-step paddle recording (torch blocked in its process), shared with the other offline tests."""
    return runs["pd"]


def _start_paused(out: str, step: int) -> subprocess.Popen[str]:
    """A torch recording that stops inside ``step`` (after its backward) until ``out.go`` exists."""
    p = subprocess.Popen([sys.executable, SCRIPT, "torch", out, "--pause-at-step", str(step)], env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while not os.path.exists(out + ".paused"):
        assert p.poll() is None, p.communicate()[0]
        assert time.monotonic() < deadline, "the recording never reached its pause"
        time.sleep(0.05)
    return p


def _snapshot(root: str) -> dict[str, bytes]:
    out = {}
    for d, _dirs, files in os.walk(root):
        for f in files:
            if f != LOCK_FILE:
                with open(os.path.join(d, f), "rb") as fh:
                    out[os.path.relpath(os.path.join(d, f), root)] = fh.read()
    return out


SECOND = """
import sys, torch, padiff
try:
    padiff.Recorder(torch.nn.Linear(4, 3), sys.argv[1])
except padiff.RunFolderError as e:
    print(e)
    sys.exit(3)
"""


def test_a_second_recorder_on_the_same_folder_is_refused_and_the_first_goes_on(tmp_path: Any,
                                                                                pd_run: str) -> None:
    out = str(tmp_path / "pt")
    first = _start_paused(out, 1)
    try:
        before = _snapshot(out)
        second = subprocess.run([sys.executable, "-c", SECOND, out], env=env(), capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 3, second.stdout + second.stderr
        assert f"is being recorded by another Recorder (process {first.pid} on " in second.stdout
        assert "Give each its own out_dir" in second.stdout
        assert _snapshot(out) == before  # nothing of the first was touched
        # meanwhile, compare_runs reads the complete steps only and says the run is still being written
        rep = padiff.compare_runs(pd_run, out, options={"atol": 1e-6, "rtol": 1e-5})
        assert {r.step for r in rep.records} == {0} and all(r.passed for r in rep.records)
        assert any(w.startswith("torch rank 0: ") and f"is still being recorded (process {first.pid} on " in w
                   and "step 1 in progress); only its complete steps (0) are read." in w for w in rep.warnings), \
            rep.warnings
    finally:
        open(out + ".go", "w").close()
        text, _ = first.communicate(timeout=180)
    assert first.returncode == 0, text
    rep = padiff.compare_runs(pd_run, out, options={"atol": 1e-6, "rtol": 1e-5})
    assert rep and {r.step for r in rep.records} == {0, 1, 2}
    assert not any("recorded" in w for w in rep.warnings), rep.warnings
    assert not os.path.exists(os.path.join(out, "rank-0", LOCK_FILE))


def test_a_recording_killed_mid_step_is_reported_and_its_stale_lock_detected(tmp_path: Any, pd_run: str) -> None:
    out = str(tmp_path / "pt")
    p = _start_paused(out, 2)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    rep = padiff.compare_runs(pd_run, out, options={"atol": 1e-6, "rtol": 1e-5})
    assert {r.step for r in rep.records} == {0, 1} and all(r.passed for r in rep.records)
    assert f"torch rank 0: the recording stopped during step 2: process {p.pid} on " in "\n".join(rep.warnings)
    assert any("its complete steps (0-1) are read, step 2 is missing" in w for w in rep.warnings), rep.warnings
    assert "rank 0: step 2 was recorded by the paddle run only; it is not compared." in rep.warnings
    # the stale lock: a new recorder still refuses the folder (it holds a recording), naming what happened
    with pytest.raises(RunFolderError, match=rf"left by process {p.pid} on .*, which stopped during step 2 without "
                                             "closing it"):
        padiff.Recorder(torch.nn.Linear(4, 3), out)
    # a stale lock alone (the process died before writing anything) is taken over
    fresh = tmp_path / "fresh" / "rank-0"
    fresh.mkdir(parents=True)
    shutil.copy(os.path.join(out, "rank-0", LOCK_FILE), fresh / LOCK_FILE)
    rec = padiff.Recorder(torch.nn.Linear(4, 3), tmp_path / "fresh", graph=False)
    with open(fresh / LOCK_FILE) as f:
        assert f'"pid": {os.getpid()}' in f.read()
    rec.close()
    assert sorted(os.listdir(fresh)) == ["run.json", "skeleton.json", "steps"]
