"""``layer_map="auto"`` offline from the graphs each run exported, where the module trees cannot decide."""

from __future__ import annotations

import json
import os

import numpy as np
import paddle
import pytest
import torch

import padiff

TOL = {"atol": 1e-5, "rtol": 1e-4}
RNG = np.random.default_rng(5)
WA, WB, WC = (RNG.standard_normal(s).astype("float32") * 0.5 for s in ((8, 8), (8, 8), (3, 8)))


class PdNet(paddle.nn.Layer):
    """Two Linears of the same shape in a chain: only the dataflow tells which is first."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = (paddle.nn.Linear(8, 8), paddle.nn.Linear(8, 8), paddle.nn.Linear(8, 3))
        for lay, w in ((self.a, WA), (self.b, WB), (self.c, WC)):
            lay.weight.set_value(w.T)
            lay.bias.set_value(np.zeros(lay.bias.shape, "float32"))

    def forward(self, x):
        return self.c(paddle.tanh(self.b(paddle.tanh(self.a(x)))))


class PtNet(torch.nn.Module):
    """The port: other names, the two equal Linears defined in the other order."""

    def __init__(self) -> None:
        super().__init__()
        self.later, self.sooner, self.head = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 3)
        with torch.no_grad():
            for lay, w in ((self.sooner, WA), (self.later, WB), (self.head, WC)):
                lay.weight.copy_(torch.from_numpy(w))
                lay.bias.zero_()

    def forward(self, x):
        return self.head(torch.tanh(self.later(torch.tanh(self.sooner(x)))))


def _record(tmp: str, graph: bool) -> tuple[str, str]:
    x = RNG.standard_normal((4, 8)).astype("float32")
    pd, pt = os.path.join(tmp, "pd"), os.path.join(tmp, "pt")
    p_net, t_net = PdNet(), PtNet()
    with padiff.Recorder(p_net, pd, graph=graph) as rec, rec.step(0):
        p_net(paddle.to_tensor(x)).mean().backward()
    with padiff.Recorder(t_net, pt, graph=graph) as rec, rec.step(0):
        t_net(torch.from_numpy(x)).mean().backward()
    return pd, pt


def test_auto_map_pairs_by_the_recorded_graphs(tmp_path: object) -> None:
    pd, pt = _record(str(tmp_path), graph=True)
    for run in (pd, pt):
        with open(os.path.join(run, "rank-0", "graph.json")) as f:
            data = json.load(f)
        assert "error" not in data and data["nodes"]
    rep = padiff.compare_runs(pd, pt, layer_map="auto", options=TOL)
    assert rep.mapping_route.startswith("auto (graphs")
    pairs = {(m["paddle_path"], m["torch_path"]) for m in rep.mapping}
    assert {("a", "sooner"), ("b", "later"), ("c", "head")} <= pairs
    assert rep, rep.failures()[:2]


def test_the_module_trees_alone_cannot_decide_this_case(tmp_path: object) -> None:
    pd, pt = _record(str(tmp_path), graph=False)
    rep = padiff.compare_runs(pd, pt, layer_map="auto", options=TOL)
    assert rep.mapping_route.startswith("auto (module trees")
    assert any("no graph on both sides" in w and "graph.json is missing" in w for w in rep.warnings)
    pairs = {(m["paddle_path"], m["torch_path"]) for m in rep.mapping}
    assert ("a", "sooner") not in pairs  # definition order wins without the dataflow
    assert not rep


def test_a_failed_export_is_noted_and_the_trees_are_used(tmp_path: object) -> None:
    pd, pt = _record(str(tmp_path), graph=True)
    path = os.path.join(pd, "rank-0", "graph.json")
    with open(path, "w") as f:
        json.dump({"version": 1, "error": "paddle2onnx died"}, f)
    rep = padiff.compare_runs(pd, pt, layer_map="auto", options=TOL)
    assert rep.mapping_route.startswith("auto (module trees")
    assert any("paddle2onnx died" in w for w in rep.warnings)
    with open(path, "w") as f:
        f.write("{not json")
    with pytest.raises(padiff.RunFolderError, match=r"graph\.json is not valid JSON"):
        padiff.compare_runs(pd, pt, layer_map="auto", options=TOL)
