"""A pair whose calls return different quantities is proposed weights-only, with the reason.

The runtime compares the tensors both sides return when one side returns extra ones
(runtime.items); when the shorter side's results are not among the longer side's
(a router's top-k softmax against scores scattered over every expert), comparing them
would fail a correct port, so the aligner marks the pair weights-only and says why.
"""

from __future__ import annotations

import pytest
from models import export_fail_pairs as E
from models.basic import inputs, rand

import padiff
from padiff.graph import export_torch
from padiff.graph.proposal import MatchResult, ProposedPair
from padiff.graph.returns import weights_only_by_returns


def _proposal(p_cls, monkeypatch):
    monkeypatch.setattr(export_torch, "_has_onnxscript", lambda: False)
    return padiff.suggest_layer_map(p_cls(), E.TorchRoutedNet(), inputs(("x", "x", rand(4, E.D))))


def test_a_router_returning_other_quantities_is_weights_only_and_says_why(monkeypatch):
    lm = _proposal(E.PaddleRoutedNet, monkeypatch)
    pair = {p.paddle_path: p for p in lm.pairs}["router"]
    assert pair.torch_path == "router" and not pair.compare_output
    why = pair.evidence[-1]
    assert why.startswith("weights only") and "returns 2 tensor(s)" in why and "torch call 3" in why
    assert {p.paddle_path: p for p in lm.pairs}["proj"].compare_output


def test_a_router_returning_fewer_of_the_same_quantities_is_still_compared(monkeypatch):
    lm = _proposal(E.PaddleExtraRoutedNet, monkeypatch)
    assert {p.paddle_path: p for p in lm.pairs}["router"].compare_output


def test_the_weights_only_router_passes_and_a_fault_elsewhere_is_still_named(monkeypatch):
    monkeypatch.setattr(export_torch, "_has_onnxscript", lambda: False)
    layer, module = E.PaddleRoutedNet(), E.TorchRoutedNet()
    inp = inputs(("x", "x", rand(4, E.D)))
    assert padiff.auto_diff(layer, module, inp, auto_weights=True, layer_map="auto",
                            options={"atol": 1e-5, "rtol": 1e-4, "diff_phase": "forward"})
    module.proj.register_forward_hook(lambda _m, _i, out: out * 1.5)
    report = padiff.compare(layer, module, inp, auto_weights=True, layer_map="auto",
                            options={"atol": 1e-5, "rtol": 1e-4, "diff_phase": "forward"})
    assert not report and report.first_diff.torch_path == "proj"


@pytest.mark.parametrize(("a", "b", "compared"), [
    (("Softmax", "Topk"), ("MatMul", "Scatter", "Topk"), False),
    (("MatMul", "Topk"), ("MatMul", "Scatter", "Topk"), True),
    (("MatMul",), ("MatMul",), True),
    (("MatMul", "MatMul"), ("MatMul",), True),  # the torch side is the shorter one
    (("Softmax",), ("MatMul", "MatMul"), False),
])
def test_the_rule_on_returned_kinds(a, b, compared):
    result = MatchResult([ProposedPair("r", "r", 1.0, ("dataflow",))], [])
    out = weights_only_by_returns(result, {"r": a}, {"r": b})
    assert out.pairs[0].compare_output is compared
    assert weights_only_by_returns(result, None, {"r": b}) is result  # the ONNX route carries no returns
