"""2-rank tensor parallel on CPU (gloo): shards recorded per rank, merged before comparing with 1 process.

torch: DTensor via ``parallelize_module`` (hooks see the local shards) under ``torchrun``; paddle:
auto-parallel ``dist.shard_tensor`` under ``paddle.distributed.launch``. Each is compared with a
1-process run of the other framework; a fault on one rank's shard is named with that rank.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import padiff
from padiff.offline import fmt
from padiff.offline.shards import combine_stats, merge
from tests.offline.conftest import HERE, env

SCRIPT = os.path.join(HERE, "record_tp.py")
TOL = {"atol": 1e-6, "rtol": 1e-5}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tp_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("tp")
    out = {k: str(base / k) for k in ("pd_tp", "pt_tp", "pd", "pt")}
    fault = ["--tp", "--scale", "1.05", "--fault-rank", "1"]
    batches = [
        [[sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_port()}", SCRIPT,
          "torch", out["pt_tp"], *fault], [sys.executable, SCRIPT, "paddle", out["pd"]]],
        [[sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", str(base / "log"),
          SCRIPT, "paddle", out["pd_tp"], *fault], [sys.executable, SCRIPT, "torch", out["pt"]]],
    ]
    for batch in batches:
        procs = [subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for cmd in batch]
        for p in procs:
            text, _ = p.communicate(timeout=300)
            assert p.returncode == 0, text
    return out


@pytest.mark.multiproc
@pytest.mark.parametrize("tp_side", ["torch", "paddle"])
def test_merged_shards_agree_with_one_process_of_the_other_framework(tp_runs: dict[str, str], tp_side: str) -> None:
    pd, pt = (tp_runs["pd"], tp_runs["pt_tp"]) if tp_side == "torch" else (tp_runs["pd_tp"], tp_runs["pt"])
    assert sorted(os.listdir(pt if tp_side == "torch" else pd)) == ["rank-0", "rank-1"]
    rep = padiff.compare_runs(pd, pt, options=TOL)
    step0 = [r for r in rep.records if r.step == 0]
    assert {r.stage for r in step0} == {"forward", "loss", "backward", "grad", "weight"}
    assert all(r.passed for r in step0), [r for r in step0 if not r.passed][:2]
    sharded = {(r.stage, r.paddle_path, r.item.split(" (")[0]) for r in step0 if "sharded on dim" in r.item}
    assert {("forward", "fc1", "output"), ("grad", "fc1", "weight"), ("weight", "fc2", "weight")} <= sharded
    assert any("merged before comparing" in w for w in rep.warnings)
    assert not any("recorded by the" in w and "only" in w for w in rep.warnings)  # rank 1 is not left over


@pytest.mark.multiproc
@pytest.mark.parametrize("tp_side", ["torch", "paddle"])
def test_a_fault_on_one_shard_is_named_with_its_rank(tp_runs: dict[str, str], tp_side: str) -> None:
    pd, pt = (tp_runs["pd"], tp_runs["pt_tp"]) if tp_side == "torch" else (tp_runs["pd_tp"], tp_runs["pt"])
    first = padiff.compare_runs(pd, pt, options=TOL).first_diff
    assert first is not None and (first.stage, first.step, first.paddle_path) == ("forward", 1, "act")
    assert "differs in the shard of rank 1" in first.item, first.item


def test_shard_statistics_combine_exactly() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((3, 4)), rng.standard_normal((3, 2)) * 3 + 1]
    parts[1][0, 0] = math.nan
    whole = np.concatenate(parts, axis=1)
    got = combine_stats([fmt.tensor_stats(p) for p in parts], [p.size for p in parts])
    np.testing.assert_allclose(got, fmt.tensor_stats(whole), rtol=1e-12)


def test_merge_infers_an_unlabelled_shard_from_the_other_runs_shape() -> None:
    a, b = np.ones((2, 4)), np.full((2, 4), 2.0)
    entries = [{"key": "k", "shape": [2, 4], "stats": fmt.tensor_stats(x)} for x in (a, b)]
    m = merge(entries, [a, b], [2, 8])
    assert m.how == "sharded on dim 1" and m.array is not None and m.array.shape == (2, 8)
    assert merge(entries, [a, b], [2, 4]).how == "replicated"
    labelled = [{**e, "placement": {"mesh": [0, 1], "mesh_shape": [2], "placements": [{"shard": 0}]}}
                for e in entries]
    m = merge(labelled, [a, b], None)
    assert m.array is not None and m.array.shape == (4, 4) and m.sizes == (2, 2)
    m = merge(labelled, [None, None], None)  # level stats: statistics of the whole from the shards'
    np.testing.assert_allclose(m.entry["stats"], fmt.tensor_stats(np.concatenate([a, b])), rtol=1e-12)
