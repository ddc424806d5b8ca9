"""bfloat16 / float16 kept as they are: stored in their own dtype, compared in float32."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import paddle
import torch

import padiff
from padiff.offline.reader import read_run
from padiff.offline.tensor_file import load_tensors, read_metadata, stored_dtypes, to_stored, write_tensors

RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((6, 4)).astype("float32")
GATE = (RNG.integers(1, 16, 6) / 8).astype("float32")  # exact in bfloat16
W2 = RNG.standard_normal((2, 6)).astype("float32")
X = RNG.standard_normal((3, 4)).astype("float32")


class PdGate(paddle.nn.Layer):
    """A bfloat16 parameter scaling a bfloat16 activation (paddle's CPU kernels cover multiply)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = paddle.create_parameter([6], "bfloat16", default_initializer=paddle.nn.initializer.Constant(0.0))
        self.w.set_value(paddle.to_tensor(GATE).astype("bfloat16"))

    def forward(self, h):
        return h.astype("bfloat16") * self.w


class PdNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.gate = paddle.nn.Linear(4, 6, bias_attr=False), PdGate()
        self.fc2 = paddle.nn.Linear(6, 2, bias_attr=False)
        self.fc1.weight.set_value(W1.T)
        self.fc2.weight.set_value(W2.T)

    def forward(self, x):
        return self.fc2(self.gate(self.fc1(x)).astype("float32"))


class PtGate(torch.nn.Module):
    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.from_numpy(GATE).to(torch.bfloat16))
        self.scale = scale

    def forward(self, h):
        return h.to(torch.bfloat16) * self.w * self.scale


class PtNet(torch.nn.Module):
    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.fc1, self.gate = torch.nn.Linear(4, 6, bias=False), PtGate(scale)
        self.fc2 = torch.nn.Linear(6, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.from_numpy(W1))
            self.fc2.weight.copy_(torch.from_numpy(W2))

    def forward(self, x):
        return self.fc2(self.gate(self.fc1(x)).float())


def _record_paddle(out: str) -> str:
    net = PdNet()
    opt = paddle.optimizer.SGD(learning_rate=0.1, parameters=net.parameters())
    with padiff.Recorder(net, out) as rec:
        for i in range(2):
            with rec.step(i):
                loss = net(paddle.to_tensor(X)).mean()
                rec.loss(loss)
                loss.backward()
                opt.step()
                opt.clear_grad()
    return out


def _record_torch(out: str, scale: float = 1.0) -> str:
    net = PtNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with padiff.Recorder(net, out) as rec:
        for i in range(2):
            net.gate.scale = scale if i == 1 else 1.0
            with rec.step(i):
                loss = net(torch.from_numpy(X)).mean()
                rec.loss(loss)
                loss.backward()
                opt.step()
                opt.zero_grad()
    return out


def _on_disk(run: str) -> dict[str, str]:
    r = read_run(run)[0]
    with open(os.path.join(r.root, r.steps[0]["tensors"]), "rb") as f:
        return stored_dtypes(f.read())


def test_bfloat16_is_stored_as_bfloat16_on_each_side_and_compared(tmp_path: object) -> None:
    pd = _record_paddle(os.path.join(str(tmp_path), "pd"))
    pt = _record_torch(os.path.join(str(tmp_path), "pt"))
    for run in (pd, pt):
        dt = _on_disk(run)
        gate = {k: v for k, v in dt.items() if "|gate|" in k}
        assert gate and set(gate.values()) == {"BF16"}, gate  # output, output grad, param grad, value
        assert {v for k, v in dt.items() if "|fc1|" in k} == {"F32"}
    rep = padiff.compare_runs(pd, pt, options={"atol": 1e-6, "rtol": 1e-5})
    assert rep, rep.failures()[:2]
    gate = [r for r in rep.records if r.paddle_path == "gate"]
    assert {r.stage for r in gate} == {"forward", "backward", "grad", "weight"}
    assert all(r.dtype == "bfloat16" for r in gate)


def test_a_fault_in_a_bfloat16_layer_is_named(tmp_path: object) -> None:
    pd = _record_paddle(os.path.join(str(tmp_path), "pd"))
    pt = _record_torch(os.path.join(str(tmp_path), "pt"), scale=1.25)
    first = padiff.compare_runs(pd, pt, options={"atol": 1e-6, "rtol": 1e-5}).first_diff
    assert first is not None and (first.stage, first.step, first.paddle_path) == ("forward", 1, "gate")


def test_half_types_round_trip_bit_for_bit(tmp_path: object) -> None:
    bf = np.array([1.0, -2.5, 3.140625, 2.0**-100, np.inf], np.float32)  # each exact in bfloat16
    f16 = np.array([0.1, 65504.0], np.float16)
    path = os.path.join(str(tmp_path), "t.safetensors")
    digest = write_tensors(path, {"bf": to_stored(bf, "bfloat16"), "h": to_stored(f16.astype(np.float32), "float16"),
                                  "i": to_stored(np.arange(3), "int64")}, {"bf": "bfloat16", "h": "float16"},
                           {"note": "x"})
    with open(path, "rb") as f:
        data = f.read()
    assert digest == hashlib.sha256(data).hexdigest() and read_metadata(data) == {"note": "x"}
    assert stored_dtypes(data) == {"bf": "BF16", "h": "F16", "i": "I64"}
    back = load_tensors(data, "mem")
    assert back["bf"].dtype == np.float32 and np.array_equal(back["bf"], bf)
    assert back["h"].dtype == np.float16 and np.array_equal(back["h"], f16)
    assert np.array_equal(back["i"], np.arange(3))
    assert len(data) < 8 * 5 + 2 * 2 + 8 * 3 + 400  # 2 bytes per bfloat16 element, plus the header


def test_bfloat16_weights_cross_processes_in_their_own_dtype(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "w.safetensors")
    src = PtNet()
    with torch.no_grad():
        src.gate.w.mul_(2)
    padiff.export_weights(src, path)
    with open(path, "rb") as f:
        assert stored_dtypes(f.read())["gate::w"] == "BF16"
    dst = PdNet()
    padiff.import_weights(dst, path)
    assert dst.gate.w.dtype == paddle.bfloat16
    np.testing.assert_array_equal(dst.gate.w.astype("float32").numpy(), GATE * 2)
