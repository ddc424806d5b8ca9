"""The built-in loss gives every output element a gradient, so a backward check behind a final LayerNorm
checks something (the mean of a LayerNorm's output does not depend on its input)."""

from __future__ import annotations

from models.calibrated_pairs import block_pair

import padiff

TOL = {"atol": 1e-5, "rtol": 1e-4}


def test_a_correct_port_ending_in_a_layernorm_passes_forward_and_backward():
    layer, module, inp = block_pair()
    report = padiff.compare(layer, module, inp, auto_weights=True, options=TOL)
    assert report, report.first_diff
    assert any(r.stage == "backward" for r in report.records)


def test_a_backward_only_bug_before_a_final_layernorm_fails_with_the_builtin_loss():
    layer, module, inp = block_pair()
    # a planted bug the forward cannot see: the gradient through the first MLP layer doubled
    module.mlp.fc1.register_full_backward_hook(lambda mod, gin, gout: tuple(2 * g if g is not None else g for g in gin))
    report = padiff.compare(layer, module, inp, auto_weights=True, options=TOL)
    assert not report
    assert report.first_diff.stage in ("backward", "grad")
    assert not [r for r in report.records if r.stage == "forward" and not r.stats.passed]
