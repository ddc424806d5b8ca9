"""End to end: ``suggest_layer_map`` on the hard model pairs, with known truth.

Each pair is exported once (module-scoped fixture). Precision and recall are measured
over parameter-holding layers: proposed pairs whose paddle layer owns tensors vs the
truth table written with the models.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from models import aligner_pairs as ap

from padiff.adapters import PADDLE, TORCH
from padiff.graph.suggest import suggest_layer_map
from padiff.layer_map import LayerMap


def snapshot(layer: Any, module: Any) -> dict[str, Any]:
    """Everything suggest_layer_map must leave as it was."""
    out: dict[str, Any] = {}
    for side, root in ((PADDLE, layer), (TORCH, module)):
        out[side.name + ".hooks"] = side.hook_count(root)
        out[side.name + ".modes"] = [(p, side.is_training(m)) for p, m in side.named_layers(root)]
        state = side.owned_state(root)
        out[side.name + ".flags"] = [(p, e.name, side.requires_grad(e.tensor)) for p, es in state.items() for e in es]
        out[side.name + ".values"] = {(p, e.name): side.to_numpy(e.tensor) for p, es in state.items() for e in es}
    return out


def assert_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    for key, value in before.items():
        if key.endswith(".values"):
            assert value.keys() == after[key].keys()
            for name, arr in value.items():
                np.testing.assert_array_equal(arr, after[key][name], err_msg=f"{key} {name} changed")
        else:
            assert value == after[key], f"{key} changed"


def param_pairs(lm: LayerMap, case: ap.Case) -> dict[str, str]:
    owners = set(PADDLE.owned_state(case.paddle))
    return {p.paddle_path: p.torch_path for p in lm.pairs if p.paddle_path in owners}


def precision_recall(lm: LayerMap, case: ap.Case) -> tuple[float, float]:
    got = param_pairs(lm, case)
    correct = sum(1 for k, v in got.items() if case.truth.get(k) == v)
    return correct / max(len(got), 1), correct / max(len(case.truth), 1)


@pytest.fixture(scope="module", params=sorted(ap.HARD_CASES))
def proposal(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[ap.Case, LayerMap,
                                                                                                   dict, dict, list]:
    case = ap.HARD_CASES[request.param]()
    case.paddle.train()  # exports run in eval mode: modes must come back as they were
    case.torch.train()
    before = snapshot(case.paddle, case.torch)
    cwd = tmp_path_factory.mktemp(f"cwd_{request.param}")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        lm = suggest_layer_map(case.paddle, case.torch, case.inputs)
    finally:
        os.chdir(old)
    return case, lm, before, snapshot(case.paddle, case.torch), os.listdir(cwd)


def test_graph_route_finds_every_parameter_layer(proposal: tuple) -> None:
    case, lm, *_ = proposal
    assert lm.route == "graph", lm.notes
    precision, recall = precision_recall(lm, case)
    wrong = {k: (v, case.truth.get(k)) for k, v in param_pairs(lm, case).items() if case.truth.get(k) != v}
    assert (precision, recall) == (1.0, 1.0), f"{case.name}: wrong/missing {wrong}; notes {lm.notes}"


def test_pairs_are_well_formed_and_reviewable(proposal: tuple) -> None:
    case, lm, *_ = proposal
    for pair in lm.pairs:
        assert 0.0 <= pair.confidence <= 1.0
        assert pair.evidence and all(isinstance(e, str) for e in pair.evidence)
        assert pair.paddle_class and pair.torch_class
    paddle_paths = [p.paddle_path for p in lm.pairs]
    torch_paths = [p.torch_path for p in lm.pairs]
    assert len(set(paddle_paths)) == len(paddle_paths) and len(set(torch_paths)) == len(torch_paths)
    assert any(n.startswith("route: graph") for n in lm.notes)
    assert lm.baseline and all(b.evidence == ("definition order",) for b in lm.baseline)
    lm.resolve(case.paddle, case.torch)  # every path exists and no layer is paired twice
    again = LayerMap.from_dict(lm.to_dict(case.paddle, case.torch), case.paddle, case.torch)
    assert [p.to_dict() for p in again.pairs] == [p.to_dict() for p in lm.pairs]  # saved and loaded intact


def test_every_tensor_owner_is_paired_or_explained(proposal: tuple) -> None:
    case, lm, *_ = proposal
    for side, root, key in ((PADDLE, case.paddle, "paddle_path"), (TORCH, case.torch, "torch_path")):
        paired = {getattr(p, key) for p in lm.pairs}
        left = {u.path for u in lm.unpaired if u.side == side.name}
        missing = set(side.owned_state(root)) - paired - left
        assert not missing, f"{side.name} owners neither paired nor explained: {missing}"
    assert all(u.reason for u in lm.unpaired)


def test_models_untouched_and_no_files_written(proposal: tuple) -> None:
    _, _, before, after, cwd_files = proposal
    assert_unchanged(before, after)
    assert cwd_files == []


def test_case_specific_expectations(proposal: tuple) -> None:
    case, lm, *_ = proposal
    by_paddle = {p.paddle_path: p for p in lm.pairs}
    reasons = {(u.side, u.path): u.reason for u in lm.unpaired}
    if case.name == "raw_param":
        assert by_paddle["block"].compare_output is False  # raw weights inside a bigger forward
        assert by_paddle["out"].compare_output is True
        assert by_paddle["block.act"].torch_path == "block.act"  # parameter-free leaf paired too
    elif case.name == "extra_layers":
        assert "extra Dropout" in reasons[("paddle", "drop")]
        assert "extra Identity" in reasons[("paddle", "ident")]
    elif case.name == "reused":
        assert any("2 calls matched" in e for e in by_paddle["shared"].evidence)
        assert by_paddle["act"].torch_path == "tanh"
    elif case.name == "resnet18":
        assert by_paddle["relu"].torch_path == "stem.2"
        assert by_paddle["maxpool"].torch_path == "stem.3"
        assert by_paddle["layer2.0.relu"].torch_path == "stages.1.0.act"
        assert all(p.confidence >= 0.8 for p in lm.pairs if p.paddle_path in case.truth)
    elif case.name == "reversed":
        # the default definition-order pairing is wrong here; the proposal must differ from it
        baseline = {b.paddle_path: b.torch_path for b in lm.baseline}
        assert baseline["a"] == "third" and by_paddle["a"].torch_path == "first"


# --- fallbacks ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failed_export() -> tuple[ap.Case, LayerMap, dict, dict]:
    case = ap.export_failure()
    case.paddle.train()
    before = snapshot(case.paddle, case.torch)
    lm = suggest_layer_map(case.paddle, case.torch, case.inputs, timeout=60)
    return case, lm, before, snapshot(case.paddle, case.torch)


def test_export_failure_falls_back_to_eager_dataflow_and_says_why(failed_export: tuple) -> None:
    case, lm, before, after = failed_export
    assert lm.route == "graph" and any("eager forward" in n for n in lm.notes)
    assert any("export failed" in n and "paddle2onnx" in n for n in lm.notes), lm.notes
    assert any("its output:\n" in n and "[ERROR]" in n for n in lm.notes), lm.notes  # the converter's own lines
    assert param_pairs(lm, case) == case.truth
    assert_unchanged(before, after)


def test_jit_save_failure_falls_back_and_leaves_no_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    import paddle

    def broken_save(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cannot convert this forward to a static graph")

    case = ap.renamed()
    before = snapshot(case.paddle, case.torch)
    monkeypatch.setattr(paddle.jit, "save", broken_save)
    lm = suggest_layer_map(case.paddle, case.torch, case.inputs)
    assert lm.route == "graph" and any("export failed" in n and "static graph" in n for n in lm.notes)
    assert param_pairs(lm, case) == case.truth
    assert_unchanged(before, snapshot(case.paddle, case.torch))


def test_structure_route_is_the_last_resort_when_the_eager_forward_fails_too(monkeypatch) -> None:
    import paddle

    from padiff.graph import eager_record as dataflow

    def broken_save(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cannot convert this forward to a static graph")

    def broken_record(*args: object, **kwargs: object) -> None:
        raise RuntimeError("model raised")

    case = ap.renamed()
    monkeypatch.setattr(paddle.jit, "save", broken_save)
    monkeypatch.setattr(dataflow, "record_dataflow", broken_record)
    lm = suggest_layer_map(case.paddle, case.torch, case.inputs)
    assert lm.route == "structure"
    assert any("static graph" in n and "eager forward instead failed too" in n for n in lm.notes), lm.notes


def test_structure_route_without_inputs() -> None:
    case = ap.renamed()
    lm = suggest_layer_map(case.paddle, case.torch)
    assert lm.route == "structure"
    assert any("no example input" in n for n in lm.notes)
    assert param_pairs(lm, case) == case.truth
    assert {p.paddle_path: p.torch_path for p in lm.pairs}["act_a"] == "relu"


def test_structure_route_on_resnet18_pairs_every_parameter_layer() -> None:
    case = ap.resnet18()
    lm = suggest_layer_map(case.paddle, case.torch)
    precision, recall = precision_recall(lm, case)
    assert lm.route == "structure" and precision == 1.0 and recall == 1.0


def test_bad_arguments_are_clear_errors() -> None:
    from padiff.errors import InputError

    case = ap.renamed()
    with pytest.raises(InputError, match="swapped"):
        suggest_layer_map(case.torch, case.paddle)
    with pytest.raises(InputError, match="does not take 'nonsense'"):
        suggest_layer_map(case.paddle, case.torch, ({"x": case.inputs[0]["x"], "nonsense": 1}, case.inputs[1]))
    with pytest.raises(InputError, match="pair"):
        suggest_layer_map(case.paddle, case.torch, case.inputs[0])


@pytest.mark.parametrize("taken", [True, False])
def test_data_dependent_if_layers_inside_control_flow_are_still_paired_and_flagged(taken: bool) -> None:
    import torch

    case = ap.control_flow()
    with torch.no_grad():  # decide which branch the torch trace takes
        case.torch.l1.weight.zero_()
        case.torch.l1.bias.fill_(1.0 if taken else -1.0)
    before = snapshot(case.paddle, case.torch)
    lm = suggest_layer_map(case.paddle, case.torch, case.inputs)
    assert_unchanged(before, snapshot(case.paddle, case.torch))
    if lm.route == "graph":
        maybe = next(p for p in lm.pairs if p.paddle_path == "maybe")
        assert maybe.confidence <= 0.5 and "not matched in the graphs" in maybe.evidence[0]
    else:  # an exporter refused the control flow: the fallback must say so
        assert any("export failed" in n for n in lm.notes)
    assert param_pairs(lm, case) == case.truth


def test_torch_export_failure_cancels_the_paddle_child_and_cleans_up(tmp_path, monkeypatch) -> None:
    import tempfile

    import torch

    class TSvd(torch.nn.Module):  # torch.onnx has no linalg_svdvals
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(6, 6)
            self.ln = torch.nn.LayerNorm(6)

        def forward(self, x):
            h = self.lin(x)
            return self.ln(h) + torch.linalg.svdvals(h).sum()

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # private temp root: other runs may share /tmp
    case = ap.export_failure()
    module = TSvd()
    module.train()
    before = snapshot(case.paddle, module)
    lm = suggest_layer_map(case.paddle, module, case.inputs)
    assert any("torch.onnx.export failed" in n for n in lm.notes), lm.notes
    assert_unchanged(before, snapshot(case.paddle, module))
    assert os.listdir(tmp_path) == []


def test_successful_export_leaves_no_temp_dirs(tmp_path, monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    case = ap.reused()
    lm = suggest_layer_map(case.paddle, case.torch, case.inputs)
    assert lm.route == "graph"
    assert os.listdir(tmp_path) == []


def test_structure_route_survives_reordering_inside_repeated_blocks() -> None:
    # torch blocks define pw, pw_bn, dw, dw_bn, expand (in that order); paddle expand, dw, pw
    case = ap.mobilenet_v2()
    lm = suggest_layer_map(case.paddle, case.torch)
    assert lm.route == "structure"
    assert precision_recall(lm, case) == (1.0, 1.0)
