"""What ``compare`` pairs beyond the map, ``compare_runs`` pairs too; and it matches the graphs ``compare`` would.

- A parameter-free layer no map names (an activation) is compared live with the same kind of layer
  between the same paired neighbours (:mod:`padiff.runtime.pairing`); ``suggest_layer_map`` leaves
  such layers out of its proposal for that reason. The recorded comparison must compare it too.
- When one model cannot be exported, ``suggest_layer_map`` matches the eager dataflow of both models,
  never an export against an eager graph; a run whose export worked keeps its eager graph for that.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

import padiff

OPTS = {"atol": 1e-5, "rtol": 1e-4}


def _models() -> tuple[Any, Any, np.ndarray]:
    import paddle
    import torch

    class Pd(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.act, self.fc2 = paddle.nn.Linear(4, 6), paddle.nn.GELU(), paddle.nn.Linear(6, 3)

        def forward(self, x: Any) -> Any:
            return self.fc2(self.act(self.fc1(x)))

    class Pt(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.gelu, self.second = torch.nn.Linear(4, 6), torch.nn.GELU(), torch.nn.Linear(6, 3)

        def forward(self, x: Any) -> Any:
            return self.second(self.gelu(self.first(x)))

    pd, pt = Pd(), Pt()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for p_lin, t_lin in ((pd.fc1, pt.first), (pd.fc2, pt.second)):
            w = rng.standard_normal(tuple(t_lin.weight.shape)).astype("float32")
            t_lin.weight.copy_(torch.from_numpy(w))
            p_lin.weight.set_value(np.ascontiguousarray(w.T))
            p_lin.bias.set_value(t_lin.bias.detach().numpy())
    return pd, pt, rng.standard_normal((3, 4)).astype("float32")


def _record(model: Any, folder: str, x: Any, fw: str) -> None:
    import paddle
    import torch

    opt = (paddle.optimizer.SGD(learning_rate=0.1, parameters=model.parameters()) if fw == "paddle"
           else torch.optim.SGD(model.parameters(), lr=0.1))
    rec = padiff.Recorder(model, folder)
    for step in range(2):
        with rec.step(step):
            loss = (model(x) ** 2).mean()
            rec.loss(loss)
            loss.backward()
            opt.step()
            opt.clear_grad() if fw == "paddle" else opt.zero_grad()
    rec.close()


def _runs(tmp: str) -> tuple[str, str, Any]:
    import paddle
    import torch

    pd_m, pt_m, x = _models()
    pd, pt = os.path.join(tmp, "pd"), os.path.join(tmp, "pt")
    _record(pd_m, pd, paddle.to_tensor(x), "paddle")
    _record(pt_m, pt, torch.from_numpy(x), "torch")
    return pd, pt, x


def _key(r: Any) -> tuple[str, int, str, str, str]:
    return (r.stage, r.step, r.paddle_path, r.torch_path, r.item)


def test_an_unmapped_parameter_free_layer_is_compared_as_live(tmp_path: Any) -> None:
    import paddle
    import torch

    pd, pt, x = _runs(str(tmp_path))
    lm = {"fc1": "first", "fc2": "second"}
    pd_m, pt_m, _ = _models()
    live = padiff.compare(pd_m, pt_m, ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)}), steps=2,
                          layer_map=lm, options=OPTS, loss_fn=(lambda o: (o ** 2).mean(), lambda o: (o ** 2).mean()),
                          optimizer=(paddle.optimizer.SGD(learning_rate=0.1, parameters=pd_m.parameters()),
                                     torch.optim.SGD(pt_m.parameters(), lr=0.1)))
    assert any(r.paddle_path == "act" and r.torch_path == "gelu" for r in live.records)  # what compare does
    off = padiff.compare_runs(pd, pt, layer_map=lm, options=OPTS)
    assert {_key(r) for r in off.records} == {_key(r) for r in live.records}
    assert any(m["paddle_path"] == "act" and m["torch_path"] == "gelu" for m in off.mapping)
    assert off and live


def test_one_failed_export_matches_both_eager_graphs(tmp_path: Any) -> None:
    pd, pt, _ = _runs(str(tmp_path))
    graphs = {}
    for side, run in (("pd", pd), ("pt", pt)):
        with open(os.path.join(run, "rank-0", "graph.json"), encoding="utf-8") as f:
            graphs[side] = json.load(f)
        assert graphs[side].get("route") != "eager"  # both exported ...
        assert graphs[side]["eager"]["nodes"], side  # ... and kept one eager forward's dataflow beside
    # the torch export fails where torch is recorded: its run holds the eager graph only
    with open(os.path.join(pt, "rank-0", "graph.json"), "w", encoding="utf-8") as f:
        json.dump({"version": graphs["pt"]["version"], "route": "eager", "export_error": "simulated",
                   **graphs["pt"]["eager"]}, f)
    from padiff.offline.graph_io import read_graphs

    (pg, _), (_tg, _), note = read_graphs(os.path.join(pd, "rank-0"), os.path.join(pt, "rank-0"))
    assert "eager" in note
    assert pg is not None and len(pg.nodes) == len(graphs["pd"]["eager"]["nodes"])  # paddle's eager graph taken
    rep = padiff.compare_runs(pd, pt, layer_map="auto", options=OPTS)
    assert any("both runs' eager dataflow graphs" in w for w in rep.warnings), rep.warnings
    paired = {m["paddle_path"]: m["torch_path"] for m in rep.mapping if m["paddle_path"]}
    assert paired.get("fc1") == "first" and paired.get("fc2") == "second"
