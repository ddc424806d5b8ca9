"""The Recorder in-process: the model is left as it was, selections, misuse."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import padiff
from padiff.adapters import TORCH
from padiff.offline.reader import read_run


def _net():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


def test_model_left_unchanged_also_when_the_step_raises(tmp_path: object) -> None:
    import torch

    net = _net()
    before = (TORCH.hook_count(net), [m.training for m in net.modules()],
              {k: v.clone() for k, v in net.state_dict().items()})
    rec = padiff.Recorder(net, os.path.join(str(tmp_path), "run"))
    with rec.step(0):
        net(torch.ones(2, 3)).sum().backward()
    with pytest.raises(RuntimeError, match="user error"), rec.step(1):
        net(torch.ones(2, 3))
        raise RuntimeError("user error")
    rec.close()
    assert TORCH.hook_count(net) == before[0]
    assert [m.training for m in net.modules()] == before[1]
    assert all(torch.equal(v, before[2][k]) for k, v in net.state_dict().items())
    assert sorted(read_run(os.path.join(str(tmp_path), "run"))[0].steps) == [0]  # the failed step is not kept


def test_layer_and_step_selection_and_repeated_steps(tmp_path: object) -> None:
    import torch

    net = _net()
    with padiff.Recorder(net, os.path.join(str(tmp_path), "run"), layers=["2"], steps=[1]) as rec:
        for i in range(3):
            with rec.step(i):
                net(torch.ones(2, 3)).sum().backward()
        with pytest.raises(padiff.RunFolderError, match="step 1 is already recorded"), rec.step(1):
            pass
    run = read_run(os.path.join(str(tmp_path), "run"))[0]
    assert sorted(run.steps) == [1]
    assert {e["path"] for e in run.steps[1]["entries"]} == {"2"}
    meta = json.loads(Path(os.path.join(run.root, "run.json")).read_text())
    assert meta["framework"] == "torch" and meta["version"] == 1 and meta["rank"] == 0


def test_misuse_is_a_padiff_error(tmp_path: object) -> None:
    with pytest.raises(padiff.InputError, match="level must be one of"):
        padiff.Recorder(_net(), os.path.join(str(tmp_path), "a"), level="everything")
    with pytest.raises(padiff.InputError, match=r"paddle\.nn\.Layer or a torch\.nn\.Module"):
        padiff.Recorder(object(), os.path.join(str(tmp_path), "b"))
    rec = padiff.Recorder(_net(), os.path.join(str(tmp_path), "c"))
    with pytest.raises(padiff.InputError, match=r"inside a `with rec\.step"):
        rec.loss(1.0)


def test_half_precision_is_recorded_with_its_dtype(tmp_path: object) -> None:
    import torch

    from padiff.offline.reader import read_run

    net = torch.nn.Linear(3, 2).to(torch.float16)
    with padiff.Recorder(net, os.path.join(str(tmp_path), "run")) as rec, rec.step(0):
        net(torch.ones(1, 3, dtype=torch.float16))
    run = read_run(os.path.join(str(tmp_path), "run"))[0]
    fwd = next(e for e in run.steps[0]["entries"] if e["stage"] == "forward")
    assert fwd["dtype"] == "float16"
    assert str(run.tensors(0)[fwd["key"]].dtype) == "float16"
