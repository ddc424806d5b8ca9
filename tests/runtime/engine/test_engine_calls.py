"""Model, loss, backward and optimizer calls with error context, on the fake framework."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from engine_fakes import FAKE, Layer, Tensor, add, chain

from padiff.compare.projection import projection
from padiff.errors import ModelRunError, OptionsError
from padiff.runtime.engine import calls
from padiff.runtime.engine.recording import HookErrors, SideRecorder
from padiff.runtime.pairing import Role


def _recorder(root: Layer) -> SideRecorder:
    roles = {p: Role(p, "Layer", "soft", 1) for p in ("a", "b")}
    return SideRecorder(FAKE, root, roles, {}, HookErrors())


def test_a_model_error_names_side_stage_step_and_layer_and_chains_the_cause():
    def broken(layer, x):
        raise ValueError("shapes do not fit")

    rec = _recorder(Layer(chain, a=Layer(add), b=Layer(broken)))
    rec.open(rec.roles["a"])  # left open by the failing forward
    with pytest.raises(ModelRunError, match=r"the fake model raised during forward \(step 3\) inside layer b "
                                            r"\(Layer\): ValueError: shapes do not fit") as info:
        calls.call_model(rec, {"x": Tensor([0.0])}, "forward", 3)
    assert isinstance(info.value.__cause__, ValueError)
    assert rec.active == []  # the calls the error interrupted are closed


def test_sys_exit_in_a_model_is_a_usage_error_not_a_verdict():
    rec = _recorder(Layer(lambda lay, x: sys.exit(0)))
    with pytest.raises(ModelRunError, match=r"called sys.exit\(0\) during forward \(step 0\); nothing was compared"):
        calls.call_model(rec, {"x": Tensor([0.0])}, "forward", 0)


def test_the_builtin_loss_projects_non_empty_float_outputs_on_fixed_unit_weights():
    out = (Tensor([1.0, 3.0]), Tensor([[4.0]]), Tensor([5], dtype="int64"), Tensor([]))
    loss, empty = calls.builtin_loss(FAKE, out)
    w0, w1 = projection(0, (2,)), projection(1, (1, 1))
    assert float(loss.value) == pytest.approx(float(w0 @ [1.0, 3.0] + 4.0 * w1[0, 0])) and not empty
    assert np.linalg.norm(w0) == pytest.approx(1.0) and abs(w1[0, 0]) == pytest.approx(1.0)
    assert float(calls.builtin_loss(FAKE, out)[0].value) == float(loss.value)  # seeded: the same every run
    assert calls.builtin_loss(FAKE, (Tensor([]),)) == (None, True)
    assert calls.builtin_loss(FAKE, {"ids": Tensor([1], dtype="int64")}) == (None, False)


def test_a_loss_fn_must_return_a_scalar_tensor_of_its_side():
    with pytest.raises(OptionsError, match="must return a fake tensor, got float"):
        calls.compute_loss(FAKE, Tensor([1.0]), lambda out: 1.0, 0, 0)
    with pytest.raises(OptionsError, match=r"returned a tensor of shape \[2\]; it must return a scalar"):
        calls.compute_loss(FAKE, Tensor([1.0, 2.0]), lambda out: out, 0, 0)
    loss, _ = calls.compute_loss(FAKE, Tensor([1.0, 2.0]), lambda out: out.mean(), 1, 0)
    assert float(loss.value) == 1.5


def test_a_raising_loss_fn_is_named_with_its_position():
    def bad(out):
        raise TypeError("wants a dict")

    with pytest.raises(ModelRunError, match=r"loss_fn\[1\] \(the fake loss function\) raised during step 2: "
                                            "TypeError: wants a dict"):
        calls.compute_loss(FAKE, Tensor([1.0]), bad, 1, 2)


def test_backward_needs_a_loss_that_requires_grad_and_wraps_the_models_error():
    with pytest.raises(ModelRunError, match="the fake loss does not require grad"):
        calls.run_backward(FAKE, Tensor(1.0), 0)
    with pytest.raises(ModelRunError, match=r"the fake model raised during backward \(step 1\): RuntimeError"):
        calls.run_backward(FAKE, Tensor(1.0, requires_grad=True), 1)


def test_skipped_backward_says_why():
    assert calls.skipped_backward_warning(FAKE, True) == (
        "fake: every float tensor of the output is empty (no elements), so backward was skipped.")
    assert "has no float tensor" in calls.skipped_backward_warning(FAKE, False)


def test_an_optimizer_error_names_the_side_and_step():
    def opt():
        raise RuntimeError("lr missing")

    with pytest.raises(ModelRunError, match=r"the fake optimizer raised during step 4: RuntimeError: lr missing"):
        calls.step_optimizer(FAKE, opt, 4)
