"""``Recorder(..., reference="float64")`` on the torch side: the float64 copy follows the user's own loop.

The user's model, its training and its random draws are exactly what they are without the reference;
the copy sees the same inputs, dropout masks, train/eval modes and optimizer steps (also on steps not
recorded), and says why where it cannot follow (weights changed outside an optimizer step).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest
import torch

import padiff
from padiff.offline import fmt
from padiff.offline.reader import read_run


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.drop, self.fc2 = torch.nn.Linear(5, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def _train(tmp: Any, reference: str | None, steps: int = 3, record: set[int] | None = None,
           opt_kind: str = "adamw", manual_at: int = -1) -> tuple[Net, str, list[float]]:
    torch.manual_seed(0)
    net = Net()
    opt = (torch.optim.AdamW(net.parameters(), lr=0.01) if opt_kind == "adamw"
           else torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9))
    out = os.path.join(str(tmp), f"run-{reference}-{opt_kind}-{manual_at}")
    rec = padiff.Recorder(net, out, reference=reference, steps=record, graph=False)
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((8, 5)).astype("float32"))
    draws = []
    for step in range(steps):
        with rec.step(step):
            loss = (net(x) ** 2).mean()
            rec.loss(loss, fn=lambda o: (o ** 2).mean())
            loss.backward()
            if step == manual_at:
                with torch.no_grad():
                    for p in net.parameters():
                        p -= 0.1 * p.grad
            else:
                opt.step()
            opt.zero_grad()
        draws.append(float(torch.rand(1)))  # the user's random stream after the step
    rec.close()
    return net, out, draws


def _entries(out: str, step: int) -> tuple[dict[str, dict], dict[str, np.ndarray], dict[str, np.ndarray]]:
    run = read_run(out)[0]
    return ({e["key"]: e for e in run.steps[step]["entries"]}, run.tensors(step), run.reference_tensors(step))


def test_the_users_model_training_and_random_draws_are_unchanged(tmp_path: Any) -> None:
    plain, _, plain_draws = _train(tmp_path, None)
    ref, out, ref_draws = _train(tmp_path, "float64")
    for (n, a), (_, b) in zip(plain.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), n
    assert plain_draws == ref_draws
    assert all(p.dtype == torch.float32 for p in ref.parameters())
    with open(os.path.join(out, "rank-0", fmt.RUN_FILE)) as f:
        assert json.load(f)["reference"] == "float64"


def test_the_copy_follows_the_dropout_masks_and_every_optimizer_step(tmp_path: Any) -> None:
    _, out, _ = _train(tmp_path, "float64")
    for step in range(3):
        entries, ten, ref = _entries(out, step)
        for key, e in entries.items():
            assert "reference" in e, (key, e.get("reference_why"))
            assert ref[key].dtype == np.float64
            # float32 against its float64 twin: rounding apart, so the same masks, inputs and AdamW steps
            np.testing.assert_allclose(ten[key], ref[key], rtol=1e-3, atol=1e-5, err_msg=key)
        assert any(k.startswith("forward|drop|") for k in entries)


def test_steps_not_recorded_are_still_followed(tmp_path: Any) -> None:
    _, out, _ = _train(tmp_path, "float64", steps=4, record={0, 3}, opt_kind="sgd")
    run = read_run(out)[0]
    assert sorted(run.steps) == [0, 3]
    entries, ten, ref = _entries(out, 3)
    weights = [k for k in entries if k.startswith("weight|")]
    assert weights
    for key in weights:  # three momentum steps later, the copy's weights are still the user's, rounding apart
        np.testing.assert_allclose(ten[key], ref[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_weights_changed_outside_an_optimizer_step_end_the_reference_and_say_so(tmp_path: Any) -> None:
    _, out, _ = _train(tmp_path, "float64", manual_at=1)
    entries, _, _ = _entries(out, 0)
    assert all("reference" in e for e in entries.values())
    for step in (1, 2):
        entries, _, _ = _entries(out, step)
        whys = {e.get("reference_why", "") for e in entries.values() if e["stage"] == "weight"}
        assert whys and all("outside a torch.optim optimizer step" in w for w in whys), whys
    entries, _, _ = _entries(out, 2)
    assert all("reference_why" in e for e in entries.values())


def test_only_the_float64_reference_exists(tmp_path: Any) -> None:
    with pytest.raises(padiff.InputError, match="float64"):
        padiff.Recorder(Net(), tmp_path / "r", reference="float32")


def test_with_several_ranks_each_reference_is_its_own_and_averaged_gradients_are_said(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a data-parallel launcher each rank's copy sees that rank's inputs; the gradients the user's
    step applies are averaged across ranks, which one rank's copy cannot know: those fall back, saying so."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    _, out, _ = _train(tmp_path, "float64", steps=2)
    run = read_run(out)
    assert list(run) == [1]
    entries = {e["key"]: e for e in run[1].steps[0]["entries"]}
    assert all("reference" in e for k, e in entries.items() if e["stage"] in ("forward", "backward"))
    grads = [e for e in entries.values() if e["stage"] in ("grad", "weight")]
    assert grads and all("averaged across the data-parallel ranks" in e["reference_why"] for e in grads)
    later = run[1].steps[1]["entries"]
    assert all("averaged across the data-parallel ranks" in e["reference_why"] for e in later)


class Float32Only(torch.nn.Module):
    """A layer the float64 copy cannot run (it insists on float32 input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32:
            raise TypeError(f"expects float32, got {x.dtype}")
        return x * 2


def test_a_model_the_copy_cannot_run_is_recorded_as_usual_and_each_entry_says_why(tmp_path: Any) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), Float32Only())
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with padiff.Recorder(net, tmp_path / "r", reference="float64", graph=False) as rec:
        for step in range(2):
            with rec.step(step):
                loss = net(torch.randn(3, 5)).mean()
                rec.loss(loss, fn=lambda o: o.mean())
                loss.backward()
                opt.step()
                opt.zero_grad()
    entries, ten, ref = _entries(str(tmp_path / "r"), 0)
    assert set(ten) == set(entries)  # the recording itself is complete
    ran = fmt.entry_key("forward", "0", 0, "out[0]", 0)  # the Linear before the failing layer ran in float64
    assert set(ref) == {ran} and "reference" in entries[ran]
    assert all("could not run: TypeError: expects float32" in e["reference_why"]
               for k, e in entries.items() if k != ran)
    entries, ten, ref = _entries(str(tmp_path / "r"), 1)  # from then on the copy no longer follows: no reference
    assert set(ten) == set(entries) and not ref
    assert all("could not run: TypeError: expects float32" in e["reference_why"] for e in entries.values())


def test_at_level_stats_only_the_references_statistics_are_kept(tmp_path: Any) -> None:
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with padiff.Recorder(net, tmp_path / "r", level="stats", reference="float64", graph=False) as rec, rec.step(0):
        loss = (net(torch.randn(8, 5)) ** 2).mean()
        rec.loss(loss, fn=lambda o: (o ** 2).mean())
        loss.backward()
        opt.step()
    run = read_run(str(tmp_path / "r"))[0]
    assert not run.reference_tensors(0) and "reference_tensors" not in run.steps[0]
    entries = run.steps[0]["entries"]
    assert entries and all("reference" in e for e in entries)
    for e in entries:  # the float64 statistics are those of the recorded tensor, rounding apart
        np.testing.assert_allclose(e["reference"]["stats"], e["stats"], rtol=1e-4, atol=1e-6, err_msg=e["key"])
