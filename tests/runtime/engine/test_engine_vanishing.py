"""The rounding-level gradient watch on plain records: where the gradient vanished, and what is not noise."""

from __future__ import annotations

from padiff.report.records import Stats
from padiff.runtime.engine.vanishing import VanishingGradients


def _grad(mean_abs: float, diff: float = 0.0) -> Stats:
    return Stats(passed=True, max_abs_diff=diff, max_rel_diff=0.0, mismatched=0, total=10, paddle_mean=0.0,
                 torch_mean=0.0, cosine=1.0, min_atol=0.0, min_rtol=0.0, mode="mean", mean_abs_diff=diff,
                 mean_abs_ref=mean_abs)


def test_the_first_noisy_gradient_names_the_last_layer_with_a_real_one():
    watch = VanishingGradients()
    watch.begin(output_elements=768)
    real, warning = watch.judge(_grad(1.3e-3), "float32", "norm", "LayerNorm")
    assert warning == "" and real.note_kind == ""
    noisy, warning = watch.judge(_grad(4e-12, 2e-10), "float32", "fc2", "Linear")
    assert noisy.note_kind == "noise" and "compares noise" in noisy.note
    assert warning.startswith("the gradient vanishes at norm (LayerNorm)") and "fc2 (Linear)" in warning
    assert watch.judge(_grad(3e-12, 1e-10), "float32", "fc1", "Linear")[1] == ""  # one warning per pass


def test_noise_from_the_start_blames_the_loss_and_exact_zeros_are_no_noise():
    watch = VanishingGradients()
    watch.begin(output_elements=100)
    assert watch.judge(_grad(0.0), "float32", "aux", "Linear") == (_grad(0.0), "")  # an output the loss ignores
    _, warning = watch.judge(_grad(1e-11, 1e-11), "float32", "head", "Linear")
    assert warning.startswith("the gradient reaching the model is at rounding level on both sides")


def test_a_small_real_gradient_is_not_noise():
    watch = VanishingGradients()
    watch.begin(output_elements=100)
    watch.judge(_grad(1e-2), "float32", "head", "Linear")
    stats, warning = watch.judge(_grad(1e-5, 1e-12), "float32", "body", "Linear")  # 1e-3 of the scale
    assert stats.note_kind == "" and warning == ""
