"""Exports at real sizes: structure only, no weight values written or converted.

ONNX's protobuf stops at 2 GB, and a 0.5B model's values alone are 2 GB: the aligner needs the
graph's structure, names and shapes, never the values.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import paddle
import torch

from padiff.graph.export_paddle import start_export
from padiff.graph.export_torch import export_torch


def _pair() -> tuple[paddle.nn.Layer, torch.nn.Module, dict, dict]:
    layer = paddle.nn.Sequential(paddle.nn.Linear(64, 64), paddle.nn.ReLU(), paddle.nn.Linear(64, 8))
    module = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    x = np.random.default_rng(0).standard_normal((2, 64)).astype("float32")
    return layer, module, {"input": paddle.to_tensor(x)}, {"input": torch.from_numpy(x)}


def test_paddle_jit_save_writes_no_parameter_file_and_the_onnx_holds_no_values() -> None:
    layer, _, p_in, _ = _pair()
    pending = start_export(layer, p_in)
    try:
        written = os.listdir(pending.tmpdir.name)
        sizes = {f: os.path.getsize(os.path.join(pending.tmpdir.name, f)) for f in written}
    finally:
        px = pending.result(120)
    assert not [f for f in written if f.endswith(".pdiparams")], sizes  # before: the values, 17 KB here
    model = onnx.load_from_string(px.model)
    assert not any(i.raw_data or i.float_data for i in model.graph.initializer)
    assert {name for name, _ in px.owner.values()} == {"0", "2"}  # still attributed to the layers


def test_the_torch_export_holds_no_values() -> None:
    _, module, _, t_in = _pair()
    tx = export_torch(module, t_in)
    model = onnx.load_from_string(tx.model)
    assert not any(i.raw_data or i.float_data for i in model.graph.initializer)
    assert len(tx.model) < 64 * 64 * 4  # smaller than one weight matrix's values


def test_when_torch_cannot_export_paddle_is_not_traced_for_nothing(monkeypatch) -> None:
    """The eager route replaces both graphs then: paddle's jit.save (seconds at real sizes) is never made."""
    import padiff
    import padiff.graph.export_paddle as ep

    class TSvd(torch.nn.Module):  # torch.onnx has no linalg_svdvals
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(64, 8)

        def forward(self, input):
            h = self.lin(input)
            return h + torch.linalg.svdvals(h).sum()

    layer = paddle.nn.Sequential(paddle.nn.Linear(64, 8))
    calls: list[int] = []
    real = ep.start_export

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(ep, "start_export", counting)
    _, _, p_in, t_in = _pair()
    lm = padiff.suggest_layer_map(layer, TSvd(), (p_in, t_in))
    assert any("torch.onnx.export failed" in n for n in lm.notes), lm.notes
    assert lm.route == "graph" and calls == []
