"""What one step of a run consists of: its passes and the stages it compares.

Pure functions of the options, so the plan of a run can be read (and tested) apart from
running it. Without ``single_step`` one pass does everything; with it, forward and
backward each get a pass of their own, feeding each torch layer paddle's input (forward)
or gradient (backward) so each layer is judged alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from padiff.options import DiffOptions


@dataclass(frozen=True)
class Pass:
    """What one forward (and backward) pass of both models does."""

    compare_forward: bool  # compare layer outputs, the model outputs and the loss
    sync_inputs: bool  # feed each paired torch layer the paddle layer's input
    backward: bool  # run both backward passes
    compare_backward: bool  # compare output gradients and input gradients
    sync_grads: bool  # hand each paired torch output paddle's gradient

    @property
    def needs_loss(self) -> bool:
        """The loss is computed when it is compared or differentiated."""
        return self.compare_forward or self.backward


def passes_for(opts: DiffOptions) -> list[Pass]:
    """The passes of one step, in the order they run."""
    if not opts.single_step:
        return [Pass(opts.checks_forward, False, opts.checks_backward, opts.checks_backward, False)]
    out = []
    if opts.checks_forward:
        out.append(Pass(True, True, False, False, False))
    if opts.checks_backward:
        out.append(Pass(False, False, True, True, True))
    return out


def stages_for(opts: DiffOptions, training: bool) -> list[str]:
    """The stages a run compares (``training``: an optimizer steps after each backward)."""
    stages = []
    if opts.checks_forward:
        stages += ["forward", "loss"]
    if opts.checks_backward:
        stages += ["backward", "grad"]
    if training and opts.checks_backward:
        stages.append("weight")
    return stages
