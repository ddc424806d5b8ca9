"""2-rank data-parallel on CPU (gloo): torchrun and paddle.distributed.launch, a fault on rank 1 only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

import padiff
import padiff.offline.reader
from tests.offline.conftest import SCRIPT, env

pytestmark = pytest.mark.multiproc


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dp_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    base = tmp_path_factory.mktemp("dp")
    pd, pt = str(base / "pd"), str(base / "pt")
    procs = [
        subprocess.Popen([sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                          "--log_dir", str(base / "pdlog"), SCRIPT, "paddle", pd, "--ddp"],
                         env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                          f"--master_port={_port()}", SCRIPT, "torch", pt, "--ddp", "--fault-rank", "1",
                          "--scale", "1.05"],
                         env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
    ]
    for p in procs:
        text, _ = p.communicate(timeout=240)
        assert p.returncode == 0, text
    return pd, pt


def test_each_rank_writes_its_own_folder_and_exports_its_graph(dp_runs: tuple[str, str]) -> None:
    for run in dp_runs:
        assert sorted(os.listdir(run)) == ["rank-0", "rank-1"]
        for rank in ("rank-0", "rank-1"):
            with open(os.path.join(run, rank, "graph.json")) as f:
                data = json.load(f)
            assert not data.get("error") and data["nodes"], data.get("error")
    rep = padiff.compare_runs(*dp_runs, layer_map="auto")
    assert rep.mapping_route.startswith("auto (graphs")


def test_fault_on_rank_1_is_named_as_rank_1(dp_runs: tuple[str, str]) -> None:
    rep = padiff.compare_runs(*dp_runs, options={"atol": 1e-6, "rtol": 1e-5})
    first = rep.first_diff
    assert first is not None and (first.stage, first.step, first.paddle_path) == ("forward", 0, "fc2")
    assert first.item.startswith("rank 1:")
    # rank 0's own forward and backward of step 0 agree; only the averaged update carries rank 1's fault
    r0 = [r for r in rep.records if r.step == 0 and r.item.startswith("rank 0:")]
    assert r0 and all(r.passed for r in r0 if r.stage in ("forward", "loss", "backward", "grad"))


def test_one_rank_killed_mid_step_leaves_the_other_complete_and_is_named(dp_runs: tuple[str, str],
                                                                         tmp_path: object) -> None:
    """torchrun, 2 ranks on gloo: rank 1 is SIGKILLed in the middle of step 2 (after its backward)."""
    pt = os.path.join(str(tmp_path), "pt_killed")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        f"--master_port={_port()}", SCRIPT, "torch", pt, "--ddp", "--kill-at-step", "2",
                        "--kill-rank", "1"], env=env(), capture_output=True, text=True, timeout=240)
    assert p.returncode != 0 and "Signal 9 (SIGKILL)" in p.stdout + p.stderr, p.stdout[-2000:] + p.stderr[-2000:]
    runs = padiff.offline.reader.read_run(pt)
    assert list(runs[1].steps) == [0, 1]
    assert {0, 1} <= set(runs[0].steps)  # rank 0's folder is readable: every step it completed
    rep = padiff.compare_runs(dp_runs[0], pt, options={"atol": 1e-6, "rtol": 1e-5})
    assert {(r.item.split(":")[0], r.step) for r in rep.records} >= {("rank 0", 0), ("rank 0", 1), ("rank 1", 0),
                                                                     ("rank 1", 1)}
    assert all(r.passed for r in rep.records)
    assert any(w.startswith("torch rank 1: the recording stopped during step 2: process ")
               and "its complete steps (0-1) are read, step 2 is missing" in w for w in rep.warnings), rep.warnings
    assert "rank 1: step 2 was recorded by the paddle run only; it is not compared." in rep.warnings
