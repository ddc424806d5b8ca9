"""Ops that hand on the same values under a new tensor (``contiguous``, ``clone``, ``detach``, ``.T``).

The eager dataflow follows tensors by identity, so such an op between two layers must be
recorded (as an identity, or a transpose for ``.T``) or the next layer's input has no
producer and the edge is lost; the op view, which compares values, keeps skipping them.
"""

from __future__ import annotations

import itertools

import networkx as nx
import paddle
import pytest
import torch
from models import export_fail_pairs as E
from models.basic import inputs, rand

import padiff
from padiff.adapters import PADDLE, TORCH
from padiff.adapters.op_events import Trace
from padiff.graph import export_torch
from padiff.graph.eager import build_eager_graph
from padiff.graph.eager_record import record_dataflow


@pytest.mark.parametrize(("side", "model"), [(PADDLE, E.PaddleAliasNet), (TORCH, E.TorchAliasNet)])
def test_the_dataflow_runs_through_aliasing_ops(side, model):
    root = model()
    x = paddle.rand([4, E.D]) if side is PADDLE else torch.rand(4, E.D)
    g = build_eager_graph(*record_dataflow(side, root, {"x": x}))
    gemms = sorted((n for n in g.nodes if g.nodes[n]["op"] == "Gemm"), key=lambda n: g.nodes[n]["index"])
    assert len(gemms) == 3
    assert all(nx.has_path(g, a, b) for a, b in itertools.pairwise(gemms))  # one chain, no cut edge
    assert {g.nodes[n]["op"] for n in g.nodes} >= {"Identity"}


def test_aliased_layers_are_paired_by_dataflow_not_by_numbers(monkeypatch):
    monkeypatch.setattr(export_torch, "_has_onnxscript", lambda: False)
    lm = padiff.suggest_layer_map(E.PaddleAliasNet(), E.TorchAliasNet(), inputs(("x", "x", rand(4, E.D))))
    assert any("eager forward" in n for n in lm.notes)
    assert {(p.paddle_path, p.torch_path) for p in lm.pairs} == set(E.TRUTH.items())
    assert not any("settled numerically" in ev for p in lm.pairs for ev in p.evidence)


@pytest.mark.parametrize("side", [PADDLE, TORCH])
def test_the_op_view_still_skips_aliasing_ops(side):
    x = paddle.ones([2, 3]) if side is PADDLE else torch.ones(2, 3)
    tr = Trace("")
    with side.record_ops(tr):
        y = (x * 2.0).contiguous().clone().detach()
    assert [op.kind for op in tr.ops] == ["mul"]
    assert float(y.sum()) == 12.0
