"""``layer_map="auto"`` on ports rich in parameter-free layers: every one compared with its true partner."""

from __future__ import annotations

import paddle
import pytest
import torch
from models import paramfree_pairs as fp

import padiff

TOL = {"atol": 1e-5, "rtol": 1e-4}
BUILDERS = {"vit": fp.vit_like, "inception": fp.inception_like}


@pytest.mark.parametrize("reverse", [False, True], ids=["same_order", "torch_order_reversed"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_parameter_free_layers_compared_with_their_true_partners(name: str, reverse: bool) -> None:
    paddle.seed(0)
    torch.manual_seed(0)
    case = BUILDERS[name](reverse=reverse)
    case.paddle.eval()
    case.torch.eval()
    rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=TOL)
    assert bool(rep), rep.first_diff
    compared = {(r.paddle_path, r.torch_path) for r in rep.records if r.stage == "forward"}
    free = case.free_truth
    assert {(p, t) for t, p in free.items()} <= compared  # each torch layer against its true partner
    assert not [(p, t) for p, t in compared if t in free and free[t] != p]
    assert not [w for w in rep.warnings if "holds parameters" in w]
    assert not rep.skipped
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    rows = [(u.side, u.path) for u in lm.unpaired]
    assert len(rows) == len(set(rows))  # no layer listed twice under "Unpaired layers"
    for pair in lm.pairs:  # a parameter-free pair the proposal makes is a true one
        if pair.torch_path in free:
            assert free[pair.torch_path] == pair.paddle_path


def test_auto_diff_passes_on_the_reversed_vit_like_port() -> None:
    case = fp.vit_like(reverse=True, depth=2)
    case.paddle.eval()
    case.torch.eval()
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=TOL)


@pytest.mark.parametrize("reverse", [False, True], ids=["same_order", "torch_order_reversed"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_structure_route_pairs_parameter_free_layers_only_where_they_sit(name: str, reverse: bool) -> None:
    case = BUILDERS[name](reverse=reverse)
    lm = padiff.suggest_layer_map(case.paddle, case.torch)  # no input: module trees only
    assert lm.route == "structure"
    free = case.free_truth
    wrong = [(p.paddle_path, p.torch_path) for p in lm.pairs if p.torch_path in free
             and free[p.torch_path] != p.paddle_path]
    assert not wrong
    rows = [(u.side, u.path) for u in lm.unpaired]
    assert len(rows) == len(set(rows))
