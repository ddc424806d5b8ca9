"""When an exporter cannot export a model, the graph route records one eager forward of each model instead.

The pairs hold three same-shaped Linears defined out of call order, so the module trees
alone pair them wrongly (checked below) and only dataflow gets them right.
"""

from __future__ import annotations

import os

import pytest
from models import aligner_pairs as ap
from models import export_fail_pairs as E
from models.basic import inputs, rand
from test_suggest import assert_unchanged, precision_recall, snapshot

import padiff
from padiff.graph import build, export_torch
from padiff.graph.eager import EagerOp, build_eager_graph
from padiff.graph.export_message import MAX_LINES, cause_text


def _scores(lm) -> tuple[float, float]:
    got = {(p.paddle_path, p.torch_path) for p in lm.pairs}
    truth = set(E.TRUTH.items())
    hit = len(got & truth)
    return (hit / len(got) if got else 0.0), hit / len(truth)


@pytest.mark.parametrize(("p_cls", "t_cls", "cause"), [
    (E.PaddleViewNet, E.TorchViewNet, "paddle.jit.save failed"),
    (E.PaddleDiffNet, E.TorchDiffNet, "aten::diff"),
])
def test_unexportable_models_still_get_a_dataflow_proposal(p_cls, t_cls, cause, monkeypatch):
    monkeypatch.setattr(export_torch, "_has_onnxscript", lambda: False)  # the dynamo exporter's tests are below
    layer, module = p_cls(), t_cls()
    lm = padiff.suggest_layer_map(layer, module, inputs(("x", "x", rand(4, E.D))))
    assert lm.route == "graph"
    notes = "\n".join(lm.notes)
    assert "eager forward" in notes and cause in notes
    assert _scores(lm) == (1.0, 1.0)
    tree_only = padiff.suggest_layer_map(layer, module)
    assert _scores(tree_only) != (1.0, 1.0)  # the structure route alone cannot tell these apart


def test_the_note_carries_the_exporters_whole_message():
    lm = padiff.suggest_layer_map(E.PaddleViewNet(), E.TorchViewNet(), inputs(("x", "x", rand(4, E.D))))
    notes = "\n".join(lm.notes)
    assert "h.view([-1, 4, 4])" in notes  # paddle quotes the failing line after "In transformed code:"


def test_long_messages_keep_their_head_and_point_to_the_rest():
    exc = RuntimeError("\n".join(f"line {i}" for i in range(40)))
    text = cause_text(exc)
    assert text.startswith("RuntimeError: line 0") and "line 39" not in text
    assert len(text.splitlines()) == MAX_LINES + 1
    path = text.rsplit(" in ", 1)[1].rstrip(")")
    try:
        with open(path, encoding="utf-8") as f:
            assert "line 39" in f.read()
    finally:
        os.unlink(path)
    assert cause_text(ValueError("short")) == "ValueError: short"


def test_eager_graph_attributes_ops_and_follows_parameter_plumbing():
    # x -> linear(x, w.t()) -> relu; the transpose of the weight is plumbing, not an op
    params = {1: ("fc.weight", (4, 3), "fc"), 2: ("fc.bias", (4,), "fc")}
    ops = [EagerOp("Tensor.t", "transpose", "fc", 0, (1,), (10,)),
           EagerOp("F.linear", "linear", "fc", 0, (100, 10, 2), (11,)),
           EagerOp("F.relu", "relu", "", 0, (11,), (12,)),
           EagerOp("Tensor.__mul__", "mul", "", 0, (12,), (13,))]
    g = build_eager_graph(ops, {100}, params)
    assert sorted(g.nodes) == [1, 2, 3]
    assert g.nodes[1]["op"] == "Gemm" and g.nodes[1]["layer"] == "fc"
    assert {p for p, _ in g.nodes[1]["params"]} == {"fc.weight", "fc.bias"}
    assert list(g.edges) == [(1, 2), (2, 3)] and g.nodes[3]["data_in"] == 1


@pytest.mark.parametrize("name", sorted(ap.HARD_CASES))
def test_eager_dataflow_matches_the_hard_cases_as_well_as_export(name, monkeypatch):
    import paddle

    def broken_save(*args, **kwargs):
        raise RuntimeError("forced export failure")

    case = ap.HARD_CASES[name]()
    case.paddle.train()
    case.torch.train()
    before = snapshot(case.paddle, case.torch)
    monkeypatch.setattr(paddle.jit, "save", broken_save)
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    assert lm.route == "graph" and any("eager forward" in n for n in lm.notes)
    assert precision_recall(lm, case) == (1.0, 1.0)
    assert_unchanged(before, snapshot(case.paddle, case.torch))  # modes, weights, BatchNorm statistics


def test_torch_tries_the_dynamo_exporter_second_and_its_graph_is_attributed():
    pytest.importorskip("onnxscript")
    module = E.TorchDiffNet()
    tx = export_torch.export_torch(module, {"x": inputs(("x", "x", rand(4, E.D)))[1]["x"]})
    assert tx.exporter == "dynamo"
    assert "failed (TorchScript exporter)" in tx.note and "aten::diff" in tx.note  # the first exporter's whole cause
    g = build.build_graph(build.load(tx.model), tx.owner, tx.scope(), tx.shapes)
    by_layer = {g.nodes[n]["layer"]: {p for p, _ in g.nodes[n]["params"]} for n in g.nodes
                if g.nodes[n]["op"] in ("Gemm", "MatMul")}
    assert by_layer == {"l1": {"l1.weight", "l1.bias"}, "l2": {"l2.weight", "l2.bias"}, "l3": {"l3.weight", "l3.bias"}}
    tanh = [n for n in g.nodes if g.nodes[n]["op"] == "Tanh"]
    assert len(tanh) == 1 and g.nodes[tanh[0]]["layer"] == ""  # functional code: the root's scope
    assert all(m.training for m in module.modules())  # exported in eval mode, modes put back


def test_a_dynamo_export_gives_the_proposal_and_says_why_it_was_used():
    pytest.importorskip("onnxscript")
    lm = padiff.suggest_layer_map(E.PaddleDiffNet(), E.TorchDiffNet(), inputs(("x", "x", rand(4, E.D))))
    notes = "\n".join(lm.notes)
    assert lm.route == "graph" and "both models exported to ONNX" in notes
    assert "dynamo exporter instead" in notes and "aten::diff" in notes and "eager forward" not in notes
    assert _scores(lm) == (1.0, 1.0)


def test_without_onnxscript_the_note_says_how_to_get_the_second_exporter(monkeypatch):
    monkeypatch.setattr(export_torch, "_has_onnxscript", lambda: False)
    with pytest.raises(padiff.errors.ExportError, match="pip install onnxscript"):
        export_torch.export_torch(E.TorchDiffNet(), {"x": inputs(("x", "x", rand(4, E.D)))[1]["x"]})


def test_dynamo_scopes_are_read_from_node_metadata():
    import onnx

    def node(scopes):
        n = onnx.helper.make_node("Relu", ["a"], ["b"])
        if scopes is not None:
            n.metadata_props.add(key=export_torch.SCOPES_KEY, value=repr(scopes))
        return n

    paths = frozenset({"", "blocks", "blocks.0", "blocks.0.fc", "act"})
    assert export_torch.dynamo_scope_of(node(["", "blocks.0", "blocks.0.fc", "linear"]), paths) == ("blocks.0.fc", 0)
    assert export_torch.dynamo_scope_of(node(["", "relu"]), paths) == ("", 0)
    assert export_torch.dynamo_scope_of(node(["", "act_1", "relu"]), paths) == ("act", 1)
    assert export_torch.dynamo_scope_of(node(["", "nothing", "relu"]), paths) is None
    assert export_torch.dynamo_scope_of(node(None), paths) is None
