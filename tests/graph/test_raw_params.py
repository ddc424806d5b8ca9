"""Raw parameters standing for several layers (X2Paddle style): parameter-level pairs.

The aligner proposes ``paddle param <-> torch param`` from which op consumes which parameter;
weights are copied, gradients and values compared per parameter, a map file states them.
"""

from __future__ import annotations

import pytest
import yaml
from models import fused_pairs as fp

import padiff
from padiff import LayerMap, MapFileError, MappingError
from padiff.layer_map import ParamPair, map_from_dict, map_to_dict

TOL = {"atol": 1e-5, "rtol": 1e-4}


@pytest.mark.parametrize("reverse", [False, True])
def test_the_proposal_pairs_raw_parameters_by_the_ops_reading_them(reverse: bool) -> None:
    case = fp.raw_params(reverse)
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    assert {pp.paddle_param: pp.torch_param for pp in lm.params} == fp.RAW_TRUTH
    assert not lm.pairs and not lm.unpaired


@pytest.mark.parametrize("reverse", [False, True])
def test_correct_raw_port_agrees_and_a_gradient_fault_is_named_at_its_parameter(reverse: bool) -> None:
    case = fp.raw_params(reverse)
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is True
    handle = case.torch.fc2.weight.register_hook(lambda g: g * 1.05)
    try:
        rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=TOL)
    finally:
        handle.remove()
    assert not bool(rep)
    first = rep.first_diff
    assert (first.stage, first.torch_path, first.item) == ("grad", "fc2", "w1 <-> fc2.weight")
    failing = {r.item for r in rep.records if r.stage == "grad" and not r.stats.passed}
    assert failing == {"w1 <-> fc2.weight"}


def test_a_forward_fault_in_one_torch_layer_fails_at_the_model_output() -> None:
    case = fp.raw_params()
    handle = case.torch.fc2.register_forward_hook(lambda _m, _i, out: out * 1.05)
    try:
        rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=TOL)
    finally:
        handle.remove()
    assert not bool(rep) and rep.first_diff.item == "model output"


def test_a_real_shape_difference_fails_and_the_reason_is_true() -> None:
    case = fp.raw_params(hid2=fp.HID + 2)  # torch's middle layer is wider
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    assert not lm.params
    root = next(u for u in lm.unpaired if u.side == "paddle" and u.path == "")
    assert "raw parameters used by 3 separate ops" in root.reason
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is False


def test_saved_and_loaded_parameter_pairs_equal_auto(tmp_path: object) -> None:
    case = fp.raw_params(reverse=True)
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    path = f"{tmp_path}/map.yaml"
    lm.save(path, case.paddle, case.torch)
    with open(path) as f:
        data = yaml.safe_load(f)
    assert data["version"] == 2 and {e["paddle_param"] for e in data["params"]} == set(fp.RAW_TRUTH)
    loaded = LayerMap.load(path, case.paddle, case.torch)
    assert loaded.params == lm.params
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=loaded,
                            options=TOL) is True


def test_hand_written_parameter_pairs_copy_with_the_stated_conversion(capsys: pytest.CaptureFixture[str]) -> None:
    case = fp.raw_params()
    lm = LayerMap()
    lm.params = [ParamPair(p, t) for p, t in fp.RAW_TRUTH.items()]
    before = case.paddle.w1.numpy().copy()
    # square w1 [12, 12] with conversion auto: its shape cannot tell, and the root cannot run against fc2 alone
    assert padiff.assign_weight(case.paddle, case.torch, lm) is False
    err = capsys.readouterr().err
    assert "square weight(s) w1" in err and "conversion='copy' or 'transpose'" in err
    assert (case.paddle.w1.numpy() == before).all()
    lm.params = [ParamPair(p, t, "transpose" if p == "w1" else "auto") for p, t in fp.RAW_TRUTH.items()]
    assert padiff.assign_weight(case.paddle, case.torch, lm) is True
    w1 = case.paddle.w1.numpy()
    assert (abs(w1 - case.torch.fc2.weight.detach().numpy().T) < 1e-7).all()
    lm.params = [ParamPair(p, t, "copy" if p == "w1" else "auto") for p, t in fp.RAW_TRUTH.items()]
    assert padiff.assign_weight(case.paddle, case.torch, lm) is True
    assert (abs(case.paddle.w1.numpy() - case.torch.fc2.weight.detach().numpy()) < 1e-7).all()


@pytest.mark.parametrize(("params", "message"), [
    ([{"paddle_param": "w9", "torch_param": "fc1.weight"}], "has no parameter 'w9'"),
    ([{"paddle_param": "w0", "torch_param": "fc1.weight", "conversion": "flip"}], "conversion must be one of"),
    ([{"paddle_param": "w0", "torch_param": "fc1.weight"}, {"paddle_param": "w0", "torch_param": "fc2.weight"}],
     "paired twice"),
])
def test_bad_parameter_pairs_are_file_errors(params: list, message: str) -> None:
    case = fp.raw_params()
    with pytest.raises(MapFileError, match=message):
        map_from_dict({"version": 2, "params": params}, case.paddle, case.torch)


def test_partly_paired_raw_layer_is_an_error_saying_what_to_add() -> None:
    case = fp.raw_params()
    lm = LayerMap()
    lm.params = [ParamPair("w0", "fc1.weight")]
    assert padiff.assign_weight(case.paddle, case.torch, lm) is False
    with pytest.raises(MappingError, match="also in a layer pair"):
        both = map_from_dict({"version": 2, "pairs": [{"paddle_path": "", "torch_path": "fc1"}],
                              "params": [{"paddle_param": "w0", "torch_param": "fc1.weight"}]})
        both.resolve(case.paddle, case.torch)
    assert map_to_dict(lm)["params"] == [ParamPair("w0", "fc1.weight").to_dict()]


def test_raw_parameters_on_the_torch_side_pair_the_other_way() -> None:
    case = fp.raw_params_torch()
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    assert {pp.torch_param: pp.paddle_param for pp in lm.params} == fp.RAW_TRUTH
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=TOL) is True
    assert (abs(case.paddle.fc2.weight.numpy() - case.torch.w1.detach().numpy()) < 1e-7).all()  # copied, not transposed


def test_weight_ops_from_the_one_walk_index_are_those_of_the_full_walk() -> None:
    import networkx as nx

    from padiff.graph.raw_params import weight_nodes, weight_ops

    g = nx.DiGraph(owner={"w1": ("", "w1"), "b1": ("", "b1"), "w2": ("", "w2"), "fc.w": ("fc", "weight"),
                          "fc.b": ("fc", "bias")})
    nodes = [("MatMul", [("w1", (4, 8))]), ("Add", [("b1", (8,))]), ("Relu", []), ("Gemm", [("fc.w", (8, 8)),
             ("fc.b", (8,))]), ("MatMul", [("w2", (8, 2))])]
    for i, (op, params) in enumerate(nodes):
        g.add_node(i, op=op, params=params)
        if i:
            g.add_edge(i - 1, i)
    index = weight_nodes(g)
    assert index == {"": [0, 4], "fc": [3]}
    for layer in ("", "fc", "nothing"):
        assert weight_ops(g, layer, index) == weight_ops(g, layer)
    assert [op.params for op in weight_ops(g, "", index)] == [(("w1", (4, 8)), ("b1", (8,))), (("w2", (8, 2)),)]
