"""Opt-in: ``compare_mode="calibrated"`` with no tolerance on every real pair (``pytest -m real_pairs``).

A correct port passes a 3-step AdamW training check in both torch orders; the bfloat16 subset passes
one step; every planted fault the pair has a site for (calibrated.py: an output x1.001, a norm's
epsilon, tanh GELU, a missing 1/sqrt(d), one mask element) fails at the innermost compared layer
holding it. ``python -m tests.real_pairs.score --calibrated`` prints the ratios behind these.
"""

from __future__ import annotations

from typing import Any

import pytest

from .calibrated import BF16_PAIRS, FAULTS, calibrated_adamw, calibrated_bf16, proposed_map, run_fault
from .pairs import RealPair, all_pairs
from .test_real_pairs import _need

pytestmark = pytest.mark.real_pairs

PAIRS = all_pairs()

# pairs whose two models really differ where the hand copy's float32 check (atol 1e-5, rtol 1e-4) cannot see it,
# and the torch layer the calibrated verdict must name (found by score.py --calibrated)
REAL_DIFFERENCE: dict[str, tuple[str, str]] = {
    "pvt_v2": ("stages.0.blocks.0.norm2", "paddleclas' PVT_V2 block norms use epsilon 1e-5, timm's 1e-6 (norm1's "
               "difference is absorbed by the attention branch and excused as a representation; norm2 is named)"),
}

# planted faults the calibrated verdict is known not to see at their pair, and why
FAULT_XFAIL: dict[tuple[str, str], str] = {
    ("convnext", "gelu_tanh"): "the activations at timm's init are small (|x| << 1), where tanh GELU differs from "
                               "the exact one by less than 3 roundings (2.8x at the GELU): nothing to find",
    ("densenet121", "scale"): "paddle.vision's BatchNorm has the ReLU fused: norm2's output is another form, "
                              "excused on the correct port because conv2 agrees; with the fault in conv2 the excuse "
                              "is withdrawn and norm2 is named first (mean mode names conv2)",
    ("swin", "gelu_tanh"): "7.3x at the GELU itself (small activations at timm's init); named at the next layer, "
                           "mlp.fc2 (12.9x)",
}

_MAPS: dict[str, Any] = {}  # the correct port's proposal per pair, shared by its faults


@pytest.mark.parametrize("reverse", [False, True], ids=["as-built", "reversed"])
@pytest.mark.parametrize("pair", PAIRS, ids=[p.name for p in PAIRS])
def test_a_correct_port_passes_calibrated_adamw(pair: RealPair, reverse: bool) -> None:
    _need(pair)
    row = calibrated_adamw(pair, reverse)
    assert not row.error, row.error
    if pair.name in REAL_DIFFERENCE:
        at, why = REAL_DIFFERENCE[pair.name]
        assert row.verdict is False and row.first_diff.startswith(f"forward@0 {at} "), row.first_diff
        pytest.xfail(why)
    assert row.verdict, f"calibrated AdamW check is False on a correct port: {row.first_diff}"
    assert row.judged > 0


@pytest.mark.parametrize("pair", [p for p in PAIRS if p.name in BF16_PAIRS], ids=lambda p: p.name)
def test_a_bfloat16_port_passes_calibrated(pair: RealPair) -> None:
    _need(pair)
    row = calibrated_bf16(pair)
    assert not row.error, row.error
    assert row.verdict, f"calibrated bfloat16 check is False on a correct port: {row.first_diff}"


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("pair", PAIRS, ids=[p.name for p in PAIRS])
def test_a_planted_fault_is_named_at_its_pair(pair: RealPair, fault: str) -> None:
    _need(pair)
    if pair.name in REAL_DIFFERENCE:
        pytest.skip(f"{pair.name}'s correct port already differs at {REAL_DIFFERENCE[pair.name][0]}")
    if pair.name not in _MAPS:
        _MAPS[pair.name] = proposed_map(pair)
    row = run_fault(pair, fault, lm=_MAPS[pair.name])
    assert not row.error, row.error
    if not row.site:
        pytest.skip(f"{pair.name} has no site for the {fault} fault")
    if (pair.name, fault) in FAULT_XFAIL and not row.named:
        pytest.xfail(FAULT_XFAIL[pair.name, fault])
    assert row.verdict is False, f"{fault} planted at {row.site} ({row.what}) passed"
    assert row.named, f"{fault} planted at {row.site}: first diff {row.first_diff}, expected {row.expected}"
