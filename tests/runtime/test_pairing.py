"""The engine's call-order pairing of leftover parameter-free calls stays between paired neighbours."""

from __future__ import annotations

from padiff.layer_map import LayerPair
from padiff.runtime.pairing import Event, OnlinePairer, Role


def _events(spec: list[tuple[str, str, str]]) -> list[Event]:
    """``(path, class, kind)`` per call; explicit roles pair with the same path on the other side."""
    out, calls = [], {}
    for i, (path, cls, kind) in enumerate(spec):
        pair = LayerPair(path, path, cls, cls) if kind == "explicit" else None
        role = Role(path, cls, kind, path.count(".") + 1, pair, stateful=kind != "soft" and cls != "ReLU")
        out.append(Event(i, role, calls.get(path, 0)))
        calls[path] = calls.get(path, 0) + 1
    return out


def _run(paddle: list[Event], torch: list[Event]) -> tuple[dict[str, str | None], OnlinePairer]:
    pairer = OnlinePairer(paddle)
    got = {}
    for ev in torch:
        pev = pairer.match(ev)
        got[f"{ev.role.path}#{ev.call}"] = None if pev is None else f"{pev.role.path}#{pev.call}"
    pairer.finish()
    return got, pairer


def test_a_soft_call_never_pairs_across_mapped_layers() -> None:
    # paddle runs a drop-path Identity inside the block, torch has none there; torch's later
    # downsample Identity must not take paddle's drop-path (the layers in between are mapped)
    paddle = _events([("stage.fc1", "Linear", "explicit"), ("stage.drop_path", "Identity", "soft"),
                      ("stage.fc2", "Linear", "explicit"), ("down", "Identity", "soft"),
                      ("head", "Linear", "explicit")])
    torch = _events([("stage.fc1", "Linear", "explicit"), ("stage.fc2", "Linear", "explicit"),
                     ("down", "Identity", "soft"), ("head", "Linear", "explicit")])
    got, pairer = _run(paddle, torch)
    assert got["down#0"] == "down#0"
    assert [e.role.path for e in pairer.unmatched_paddle] == ["stage.drop_path"]


def test_one_module_called_twice_pairs_with_two_modules_between_neighbours() -> None:
    paddle = _events([("fc1", "Linear", "explicit"), ("drop", "Dropout", "soft"), ("fc2", "Linear", "explicit"),
                      ("drop", "Dropout", "soft"), ("head", "Linear", "explicit")])
    torch = _events([("fc1", "Linear", "explicit"), ("drop1", "Dropout", "soft"), ("fc2", "Linear", "explicit"),
                     ("drop2", "Dropout", "soft"), ("head", "Linear", "explicit")])
    got, pairer = _run(paddle, torch)
    assert got["drop1#0"] == "drop#0" and got["drop2#0"] == "drop#1"
    assert not pairer.unmatched_paddle and not pairer.unmatched_torch


def test_a_soft_call_of_another_kind_is_not_taken() -> None:
    paddle = _events([("fc1", "Linear", "explicit"), ("act", "GELU", "soft"), ("fc2", "Linear", "explicit")])
    torch = _events([("fc1", "Linear", "explicit"), ("act", "ReLU", "soft"), ("fc2", "Linear", "explicit")])
    got, _ = _run(paddle, torch)
    assert got["act#0"] is None


def test_a_mapped_relu_called_twice_against_two_relus_is_no_parameter_warning() -> None:
    import numpy as np
    import paddle
    import torch

    import padiff

    class P(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.act, self.fc2 = paddle.nn.Linear(4, 6), paddle.nn.ReLU(), paddle.nn.Linear(6, 3)

        def forward(self, x):
            return self.act(self.fc2(self.act(self.fc1(x))))

    class T(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.relu1 = torch.nn.Linear(4, 6), torch.nn.ReLU()
            self.fc2, self.relu2 = torch.nn.Linear(6, 3), torch.nn.ReLU()

        def forward(self, x):
            return self.relu2(self.fc2(self.relu1(self.fc1(x))))

    arr = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    inputs = ({"x": paddle.to_tensor(arr)}, {"x": torch.from_numpy(arr.copy())})
    lm = padiff.LayerMap([LayerPair("fc1", "fc1"), LayerPair("act", "relu1"), LayerPair("fc2", "fc2")])
    rep = padiff.compare(P(), T(), inputs, auto_weights=True, layer_map=lm, options={"atol": 1e-5, "rtol": 1e-4})
    assert bool(rep), rep.first_diff
    assert not [w for w in rep.warnings if "holds parameters" in w], rep.warnings
    skipped = {(s.side, s.path): s.reason for s in rep.skipped}
    assert "called more often than its mapped partner" in skipped[("paddle", "act")]
    assert len(rep.skipped) == len(skipped)  # each layer listed once
