"""The proposal drives the eager engine: ``layer_map="auto"`` agrees on ports, names faults."""

from __future__ import annotations

import paddle
import paddle.nn.functional as PF
from models import aligner_pairs as ap

import padiff

FORWARD = {"atol": 1e-4, "rtol": 1e-3, "diff_phase": "forward"}


class FaultyLinear(paddle.nn.Linear):
    """A Linear with an injected fault: its output is shifted."""

    def forward(self, x):
        return super().forward(x) + 0.5


class PFaulty(ap.PReversed):
    def __init__(self) -> None:
        super().__init__()
        self.b = FaultyLinear(8, 8)

    def forward(self, x):
        return self.c(PF.relu(self.b(PF.relu(self.a(x)))))


def test_auto_map_on_resnet18_agrees_after_weight_copy() -> None:
    case = ap.resnet18(size=32)
    case.paddle.eval()
    case.torch.eval()
    rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=FORWARD)
    assert bool(rep), rep.first_diff


def test_injected_fault_is_named_when_the_map_came_from_auto() -> None:
    case = ap.reversed_order()  # definition order reversed: default pairing would be wrong
    layer = PFaulty()
    rep = padiff.compare(layer, case.torch, case.inputs, auto_weights=True, layer_map="auto", options=FORWARD)
    assert not bool(rep)
    first = rep.first_diff
    assert (first.paddle_path, first.torch_path) == ("b", "second")


def test_auto_map_splits_paddle_attention_against_separate_torch_projections() -> None:
    # paddle MultiHeadAttention (a special-init class) vs a torch port with four Linear layers:
    # the proposal's inner pairs cover every attention tensor, so they win over the unit rule
    case = ap.transformer()
    case.paddle.eval()
    case.torch.eval()
    rep = padiff.compare(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                         options={"atol": 1e-5, "rtol": 1e-4})
    assert bool(rep), rep.first_diff
    pairs = {(m["paddle_path"], m["torch_path"]) for m in rep.mapping}
    assert ("self_attn.q_proj", "mix.wq") in pairs


def test_auto_map_prints_a_short_summary_and_leaves_the_full_review_in_a_file(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PADIFF_LOG_DIR", str(tmp_path))
    case = ap.resnet18(size=32)
    case.paddle.eval()
    case.torch.eval()
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map="auto",
                            options=FORWARD)
    out = capsys.readouterr().out
    mapping = out.split("padiff: SUCCESS")[0].strip().splitlines()
    assert 1 <= len(mapping) <= 3, mapping
    assert "pair(s)" in mapping[0] and "low-confidence" in mapping[0] and "unpaired" in mapping[0]
    review_path = tmp_path / "auto-map" / "review.txt"
    assert f"full review: {review_path}" in out
    review = review_path.read_text()
    assert len(review.splitlines()) > 40 and "Proposed pairs" in review  # the whole review is there
    again = padiff.LayerMap.load(str(tmp_path / "auto-map" / "map.yaml"), case.paddle, case.torch)
    assert len(again.pairs) >= 20
