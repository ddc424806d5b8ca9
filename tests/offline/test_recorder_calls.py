"""The Recorder's layer calls come from the engine's per-side event recording: call indices per
micro-step, a layer shared under two paths recorded under its first, output gradients per call."""

from __future__ import annotations

import os

from padiff.offline.reader import read_run


def test_calls_of_a_reused_layer_are_counted_per_micro_step_under_its_first_path(tmp_path: object) -> None:
    import torch

    import padiff

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 3)
            self.again = self.fc  # the same module under a second path

        def forward(self, x):
            return self.again(torch.tanh(self.fc(x)))

    torch.manual_seed(0)
    net = Net()
    with padiff.Recorder(net, os.path.join(str(tmp_path), "run")) as rec, rec.step(0):
        for _ in range(2):  # two micro-steps (gradient accumulation)
            net(torch.ones(2, 3)).sum().backward()
    step = read_run(os.path.join(str(tmp_path), "run"))[0].steps[0]
    fwd = sorted((e["path"], e["call"], e["micro"]) for e in step["entries"] if e["stage"] == "forward")
    assert fwd == [("", 0, 0), ("", 0, 1), ("fc", 0, 0), ("fc", 0, 1), ("fc", 1, 0), ("fc", 1, 1)]
    bwd = sorted((e["path"], e["call"], e["micro"]) for e in step["entries"] if e["stage"] == "backward")
    assert bwd == fwd  # every output that carries a gradient got its own
    assert step["call_order"] == ["fc", ""]  # first calls, in the order they returned
    assert step["micro_steps"] == 2


def test_a_recording_hook_that_fails_does_not_break_the_models_forward(tmp_path: object) -> None:
    import pytest
    import torch

    import padiff

    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.empty(2, device="meta")  # an output no host copy can be made of

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.odd, self.fc = Odd(), torch.nn.Linear(3, 3)

        def forward(self, x):
            self.odd(x)
            return self.fc(x)

    net, finished = Net(), []
    rec = padiff.Recorder(net, os.path.join(str(tmp_path), "run"))
    with pytest.raises(padiff.PadiffInternalError, match="a padiff hook failed"), rec.step(0):
        net(torch.ones(2, 3))
        finished.append(True)  # the forward ran to its end; the failure is reported when the step ends
    assert finished == [True]
    assert read_run(os.path.join(str(tmp_path), "run"))[0].steps == {}  # the failed step is not kept
