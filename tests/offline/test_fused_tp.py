"""A fused-qkv block under 2-rank torch tensor parallelism, compared offline against a 1-process paddle run.

Torch splits the heads over two ranks (``q/k/v_proj`` column-parallel: each rank records its
local slice of every part; ``out_proj`` row-parallel); paddle runs its fused ``qkv_proj`` in one
process. The parts are merged from the ranks before they are compared against their slices of
the fused output, and a fault planted in ``k_proj`` on rank 1 only, at step 1, is named at its
pair, step and rank.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

import padiff
from tests.offline.conftest import env
from tests.offline.test_tensor_parallel import _port

HERE = os.path.dirname(__file__)
RECORD = os.path.join(HERE, "record_fused.py")
OPTS = {"atol": 1e-5, "rtol": 1e-4}


@pytest.fixture(scope="module")
def tp_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("fused_tp")
    out = {"pd": str(base / "pd"), "pt_tp": str(base / "pt_tp")}
    cmds = [[sys.executable, RECORD, "paddle", out["pd"]],
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_port()}", RECORD,
             "torch", out["pt_tp"], "--tp", "--fault", "1.05", "--fault-step", "1", "--fault-rank", "1"]]
    for cmd in cmds:  # one after the other: the machine is shared
        p = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def saved_map(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.offline.test_live_parity import _live

    path = str(tmp_path_factory.mktemp("fused_tp_map") / "map.yaml")
    _live(1.0, None).save(path)
    return path


@pytest.mark.multiproc
def test_fault_on_one_rank_of_a_fused_pair_is_named_with_its_rank(tp_runs: dict[str, str], saved_map: str) -> None:
    rep = padiff.compare_runs(tp_runs["pd"], tp_runs["pt_tp"], layer_map=saved_map, options=OPTS)
    step0 = [r for r in rep.records if r.step == 0]
    assert step0 and all(r.passed for r in step0), [str(r) for r in step0 if not r.passed][:3]
    parts = [r for r in step0 if r.stage == "forward" and r.paddle_path == "attn.qkv_proj"]
    assert {r.torch_path for r in parts} == {"attn.q_proj", "attn.k_proj", "attn.v_proj"}
    assert all("torch ranks 0-1 merged, sharded on dim 2" in r.item for r in parts)
    first: Any = rep.first_diff
    assert (first.stage, first.step, first.paddle_path, first.torch_path) == ("forward", 1, "attn.qkv_proj",
                                                                                "attn.k_proj")
    assert "differs in the shard of rank 1" in first.item and "rank 0" not in first.item.split("differs")[1]
