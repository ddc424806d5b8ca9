"""Gradients at rounding level on both sides are named: the record says it compares noise, and the report
warns where the gradient vanished (a layer, or the loss itself)."""

from __future__ import annotations

import paddle.nn.functional as PF
import torch.nn.functional as TF
from models.basic import mlp_pair
from models.calibrated_pairs import block_pair

import padiff

TOL = {"atol": 1e-5, "rtol": 1e-4}
MEAN = [lambda out: out.mean(), lambda out: out.mean()]


def _noise(report: padiff.DiffReport) -> list[str]:
    return [r.torch_path for r in report.records if r.stage == "backward" and r.stats.note_kind == "noise"]


def test_the_mean_of_a_final_layernorm_leaves_noise_behind_it_and_the_report_names_the_layer():
    layer, module, inp = block_pair()
    report = padiff.compare(layer, module, inp, auto_weights=True, options=TOL, loss_fn=MEAN)
    assert set(_noise(report)) == {"mlp.fc2", "mlp.act", "mlp.fc1", "proj", "qkv", "norm1"}
    assert any(w.startswith("the gradient vanishes at norm2 (LayerNorm)") and "compares noise" in w
               for w in report.warnings), report.warnings
    rec = next(r for r in report.records if r.stage == "backward" and r.torch_path == "mlp.fc2")
    assert "gradient at rounding level on both sides" in rec.note


def test_a_loss_whose_gradient_vanishes_is_warned_about():
    layer, module, inp = mlp_pair()
    normalised = [lambda out: PF.layer_norm(out, out.shape[-1:]).mean(),
                  lambda out: TF.layer_norm(out, out.shape[-1:]).mean()]
    report = padiff.compare(layer, module, inp, auto_weights=True, options=TOL, loss_fn=normalised)
    assert _noise(report)
    assert any(w.startswith("the gradient reaching the model is at rounding level on both sides")
               for w in report.warnings)


def test_the_builtin_loss_gives_real_gradients_and_no_warning():
    layer, module, inp = block_pair()
    report = padiff.compare(layer, module, inp, auto_weights=True, options=TOL)
    assert report and not _noise(report)
    assert not any("rounding level" in w for w in report.warnings)
