"""The passes of a step and the stages of a run, from the options alone."""

from __future__ import annotations

from padiff.options import DiffOptions
from padiff.runtime.engine.passes import Pass, passes_for, stages_for


def _opts(**kw):
    return DiffOptions.from_mapping(kw)


def test_one_pass_does_everything_without_single_step():
    assert passes_for(_opts()) == [Pass(True, False, True, True, False)]
    assert passes_for(_opts(diff_phase="forward")) == [Pass(True, False, False, False, False)]


def test_single_step_gets_a_forward_pass_and_a_backward_pass_each_synchronised():
    fwd, bwd = passes_for(_opts(single_step=True))
    assert (fwd.compare_forward, fwd.sync_inputs, fwd.backward) == (True, True, False)
    assert (bwd.compare_forward, bwd.backward, bwd.compare_backward, bwd.sync_grads) == (False, True, True, True)
    assert passes_for(_opts(single_step=True, diff_phase="backward")) == [bwd]


def test_the_loss_is_needed_when_compared_or_differentiated():
    assert Pass(True, False, False, False, False).needs_loss
    assert Pass(False, False, True, True, True).needs_loss
    assert not Pass(False, False, False, False, False).needs_loss


def test_stages_follow_the_phase_and_training():
    assert stages_for(_opts(), training=False) == ["forward", "loss", "backward", "grad"]
    assert stages_for(_opts(), training=True) == ["forward", "loss", "backward", "grad", "weight"]
    assert stages_for(_opts(diff_phase="forward"), training=True) == ["forward", "loss"]
