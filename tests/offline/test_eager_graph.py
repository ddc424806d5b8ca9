"""When the exporter fails where a run is recorded, the run stores one eager forward's dataflow instead.

The module trees alone pair three same-shaped Linears defined out of call order by definition
order (wrongly); the recorded dataflow pairs them as ``suggest_layer_map`` does.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

import padiff
from tests.models.export_fail_pairs import TRUTH, PaddleViewNet, TorchViewNet


def _record(model: Any, folder: str, x: Any) -> None:
    rec = padiff.Recorder(model, folder)
    with rec.step(0):
        model(x).sum().backward()
    rec.close()


def test_auto_pairs_by_the_eager_dataflow_when_the_export_fails(tmp_path: Any) -> None:
    import paddle
    import torch

    arr = np.random.default_rng(0).standard_normal((2, 16)).astype("float32")
    pd, pt = os.path.join(str(tmp_path), "pd"), os.path.join(str(tmp_path), "pt")
    _record(PaddleViewNet(), pd, paddle.to_tensor(arr))
    _record(TorchViewNet(), pt, torch.from_numpy(arr))
    with open(os.path.join(pd, "rank-0", "graph.json"), encoding="utf-8") as f:
        stored = json.load(f)
    assert stored.get("route") == "eager" and stored["export_error"] and stored["nodes"]
    rep = padiff.compare_runs(pd, pt, layer_map="auto")
    paired = {m["paddle_path"]: m["torch_path"] for m in rep.mapping if m["paddle_path"]}
    assert {k: paired.get(k) for k in TRUTH} == TRUTH
