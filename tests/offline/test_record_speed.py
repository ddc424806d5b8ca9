"""The fast paths of recording and reading give what the plain ones gave.

Statistics are taken block by block (:mod:`padiff.offline.moments`) instead of from a float64
copy of the whole tensor; step files are read as memory-mapped, read-only views
(:func:`padiff.offline.tensor_file.map_tensors`); parameters are written from views of the
framework's own memory and gradients summed in place. None of this may change a figure.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from padiff.errors import RunFolderError
from padiff.offline import moments
from padiff.offline.tensor_file import load_tensors, map_tensors, to_stored, write_tensors


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 1000 elements, so small tensors cross many block boundaries."""
    monkeypatch.setattr(moments, "BLOCK", 1000)
    monkeypatch.setattr(moments._SCRATCH, "blocks", None, raising=False)


def _arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = [rng.standard_normal(12_345).astype(np.float32),
           (rng.standard_normal((37, 91)) * 0.02 + 0.5).astype(np.float32),  # mean far from 0, small spread
           (1 + rng.standard_normal(5000) * 1e-7).astype(np.float32),  # a spread near float32's resolution
           rng.standard_normal(4321),  # float64
           rng.standard_normal(2500).astype(np.float16),
           np.abs(rng.standard_normal(3000)).astype(np.float32),  # every block of one sign
           -np.abs(rng.standard_normal(3000)).astype(np.float32),
           np.full(2048, 3.0, np.float32),  # no spread at all
           np.float32(2.5) * np.ones((), np.float32)]  # a 0-d tensor (the loss)
    holes = rng.standard_normal(7000).astype(np.float32)
    holes[[5, 1500, 1501]] = np.nan
    holes[[20, 6999]] = np.inf
    holes[3000:4000] = -np.inf  # one whole block that holds nothing finite
    out.append(holes)
    return out


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("k", range(10))
def test_block_statistics_equal_the_whole_tensor_ones(k: int) -> None:
    a = _arrays()[k]
    got, want = moments.tensor_stats(a), moments.whole_stats(a)
    assert got[2:4] == want[2:4] and got[6:] == want[6:]  # min, max, NaN and Inf counts: exactly
    np.testing.assert_allclose(got[:2] + got[4:6], want[:2] + want[4:6], rtol=1e-12, atol=1e-300)


@pytest.mark.usefixtures("small_blocks")
def test_statistics_of_a_tensor_with_nothing_finite_or_nothing_at_all() -> None:
    nothing = np.array([np.nan, np.inf, -np.inf] * 700, np.float32)
    got = moments.tensor_stats(nothing)
    assert all(np.isnan(got[:6])) and got[6:] == [700.0, 1400.0]
    empty = moments.tensor_stats(np.zeros((0, 3), np.float32))
    assert all(np.isnan(empty[:6])) and empty[6:] == [0.0, 0.0]


def test_integer_and_bool_tensors_keep_the_whole_tensor_statistics() -> None:
    for a in (np.arange(-5, 50, dtype=np.int64), np.array([True, False, True])):
        assert moments.tensor_stats(a) == moments.whole_stats(a)


def test_a_non_contiguous_array_gives_the_statistics_of_its_values() -> None:
    a = np.random.default_rng(1).standard_normal((300, 500)).astype(np.float32)
    np.testing.assert_allclose(moments.tensor_stats(a.T), moments.whole_stats(np.ascontiguousarray(a.T)), rtol=1e-12)


def _file(tmp_path: object) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    rng = np.random.default_rng(2)
    bf = rng.standard_normal((4, 6)).astype(np.float32)
    tensors = {"f32": rng.standard_normal((3, 5)).astype(np.float32), "f64": rng.standard_normal(7),
               "bf": to_stored(bf, "bfloat16"), "h": to_stored(bf, "float16"), "i": np.arange(4),
               "scalar": np.float32(1.5) * np.ones((), np.float32), "empty": np.zeros((0, 4), np.float32)}
    dtypes = {"bf": "bfloat16", "h": "float16"}
    path = os.path.join(str(tmp_path), "t.safetensors")
    write_tensors(path, tensors, dtypes)
    return path, tensors, dtypes


def test_mapped_tensors_equal_the_loaded_ones_and_are_read_only_views(tmp_path: object) -> None:
    import mmap

    path, _, _ = _file(tmp_path)
    with open(path, "rb") as f:
        data = f.read()
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    want = load_tensors(data, path)
    got = map_tensors(mapped, path)
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
        np.testing.assert_array_equal(got[k], want[k])
    whole = np.frombuffer(mapped, np.uint8)
    for k in ("f32", "f64", "i"):  # not copied: a view of the mapped file, which nobody may write into
        assert not got[k].flags.writeable
        assert np.shares_memory(got[k], whole)


@pytest.mark.parametrize("damage", ["header", "range", "overlap", "dtype"])
def test_a_damaged_tensor_file_is_a_run_folder_error(tmp_path: object, damage: str) -> None:
    import json

    path, _, _ = _file(tmp_path)
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    if damage == "header":
        bad = data[:8] + b"[" + data[9:]
    else:
        if damage == "range":
            header["f32"]["data_offsets"][1] += 4
        elif damage == "overlap":
            lo = header["f64"]["data_offsets"][0]
            header["i"]["data_offsets"] = [lo, lo + 32]
        else:
            header["f32"]["dtype"] = "C64"
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        bad = len(text).to_bytes(8, "little") + text + data[8 + n:]
    with pytest.raises(RunFolderError):
        map_tensors(bad, path)


def test_a_stored_array_is_not_copied_when_the_caller_owns_it() -> None:
    a = np.arange(6, dtype=np.float32)
    assert to_stored(a, "float32", copy=False) is a
    assert to_stored(a, "float32") is not a
    assert np.array_equal(to_stored(a.reshape(2, 3).T, "float32", copy=False), a.reshape(2, 3).T)


def _record(fw: str, level: str, out: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Two micro-steps then an SGD step of a small MLP under ``Recorder``; what the framework held."""
    import padiff

    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((5, 6)).astype(np.float32) for _ in range(2)]
    if fw == "torch":
        import torch

        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        with padiff.Recorder(net, out, level=level, graph=False) as rec, rec.step(0):
            for x in xs:
                y = net(torch.from_numpy(x))
                y.sum().backward()
                with torch.no_grad():
                    y.mul_(0)  # the user's own in-place change after the layer ran: not the recorded output
            grads = {n: p.grad.numpy().copy() for n, p in net.named_parameters()}
            opt.step()
            opt.zero_grad()
        return grads, {n: p.detach().numpy().copy() for n, p in net.named_parameters()}, xs[1]
    import paddle

    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Linear(6, 8), paddle.nn.ReLU(), paddle.nn.Linear(8, 3))
    opt = paddle.optimizer.SGD(learning_rate=0.1, parameters=net.parameters())
    with padiff.Recorder(net, out, level=level, graph=False) as rec, rec.step(0):
        for x in xs:
            net(paddle.to_tensor(x)).sum().backward()
        grads = {n: p.grad.numpy().copy() for n, p in net.named_parameters()}
        opt.step()
        opt.clear_grad()
    return grads, {n: p.numpy().copy() for n, p in net.named_parameters()}, xs[1]


@pytest.mark.parametrize("fw", ["torch", "paddle"])
def test_recorded_values_and_statistics_are_what_the_framework_held(tmp_path: object, fw: str) -> None:
    from padiff.offline import fmt
    from padiff.offline.reader import read_run

    out = os.path.join(str(tmp_path), "full")
    grads, weights, last_x = _record(fw, "full", out)
    run = read_run(out)[0]
    line = run.steps[0]
    ten = run.tensors(0)
    by = {(e["stage"], e["path"], e["item"], e["micro"]): e for e in line["entries"]}
    for name, g in grads.items():  # summed over both micro-steps, as the framework summed them
        path, item = name.rsplit(".", 1)
        e = by["grad", path, item, 0]
        np.testing.assert_allclose(ten[e["key"]], g, rtol=1e-6, atol=1e-7)
    for name, w in weights.items():  # the values after the optimizer step (written from views of them)
        path, item = name.rsplit(".", 1)
        np.testing.assert_array_equal(ten[by["weight", path, item, 0]["key"]], w)
    first = by["forward", "0", "out[0]", 1]  # the first Linear's output in the second micro-step
    w0, b0 = weights["0.weight"], weights["0.bias"]
    w_before = w0 + 0.1 * grads["0.weight"]  # SGD: the value both micro-steps ran with
    want = last_x @ (w_before.T if fw == "torch" else w_before) + (b0 + 0.1 * grads["0.bias"])
    np.testing.assert_allclose(ten[first["key"]], want, rtol=1e-5, atol=1e-5)
    last = by["forward", "", "out[0]", 1] if fw == "torch" else None
    if last is not None:  # the model output, zeroed in place by the user after the call: recorded before
        assert np.abs(ten[last["key"]]).sum() > 0
    for e in line["entries"]:  # every figure is the statistics of the tensor stored beside it
        assert e["stats"] == fmt.tensor_stats(ten[e["key"]])
        np.testing.assert_allclose(e["stats"], moments.whole_stats(ten[e["key"]]), rtol=1e-12, atol=1e-300)
    stats_out = os.path.join(str(tmp_path), "stats")
    _record(fw, "stats", stats_out)
    stats_line = read_run(stats_out)[0].steps[0]
    assert [e["key"] for e in stats_line["entries"]] == [e["key"] for e in line["entries"]]
    for a, b in zip(stats_line["entries"], line["entries"]):  # level stats: the same figures, without copies
        assert a["stats"] == b["stats"]
