"""Parameter gradients and the snapshots around a compared run at real sizes: no host copy of a model's worth.

The gradients of both models are compared through views of their own memory (read at once, as
the comparison arrives), and the snapshot taken again after ``auto_weights`` copied the weights
does not clone the user's gradients a second time.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch

import padiff
from padiff.adapters import PADDLE, TORCH

WIDTH, BATCH = 64, 3


def _pair() -> tuple[paddle.nn.Layer, torch.nn.Module, tuple[dict, dict]]:
    paddle.seed(0)
    torch.manual_seed(0)
    layer = paddle.nn.Sequential(paddle.nn.Linear(WIDTH, WIDTH), paddle.nn.ReLU(), paddle.nn.Linear(WIDTH, WIDTH))
    module = torch.nn.Sequential(torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU(), torch.nn.Linear(WIDTH, WIDTH))
    x = np.random.default_rng(0).standard_normal((BATCH, WIDTH)).astype("float32")
    return layer, module, ({"input": paddle.to_tensor(x)}, {"input": torch.from_numpy(x.copy())})


def test_parameter_gradients_are_compared_without_host_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    layer, module, inp = _pair()
    copied: list[tuple[str, tuple[int, ...]]] = []
    for side in (PADDLE, TORCH):
        real = side.to_numpy

        def counting(t: object, real: object = real, name: str = side.name) -> np.ndarray:
            copied.append((name, tuple(t.shape)))  # type: ignore[attr-defined]
            return real(t)  # type: ignore[operator]

        monkeypatch.setattr(side, "to_numpy", counting)
    rep = padiff.compare(layer, module, inp, auto_weights=True, atol=1e-5, rtol=1e-4)
    assert bool(rep)
    assert any(r.stage == "grad" and r.item == "weight" for r in rep.records)
    assert (WIDTH, WIDTH) not in [shape for _, shape in copied], copied  # no weight-shaped host copy


def test_a_gradient_fault_is_still_named_at_its_parameter() -> None:
    layer, module, inp = _pair()
    handle = module[2].weight.register_hook(lambda g: g * 1.05)
    try:
        rep = padiff.compare(layer, module, inp, auto_weights=True, atol=1e-5, rtol=1e-4)
    finally:
        handle.remove()
    first = rep.first_diff
    assert (first.stage, first.torch_path, first.item) == ("grad", "2", "weight")


def test_the_users_gradients_are_cloned_once_and_come_back(monkeypatch: pytest.MonkeyPatch) -> None:
    layer, module, inp = _pair()
    layer(**inp[0]).sum().backward()  # the user's own gradients, to be put back
    before = [p.grad.numpy().copy() for p in layer.parameters()]
    clones: list[object] = []
    real = PADDLE.clone_detached

    def counting(t: object) -> object:
        clones.append(t)
        return real(t)

    monkeypatch.setattr(PADDLE, "clone_detached", counting)
    assert bool(padiff.compare(layer, module, inp, auto_weights=True, atol=1e-5, rtol=1e-4))
    assert len(clones) == len(before)  # the snapshot after the weight copy reuses the first one's
    for b, p in zip(before, layer.parameters()):
        np.testing.assert_array_equal(b, p.grad.numpy())


@pytest.mark.parametrize("zeros_left", [True, False])
def test_zero_filled_gradients_are_kept_without_a_clone_and_put_back(monkeypatch: pytest.MonkeyPatch,
                                                                     zeros_left: bool) -> None:
    from padiff.adapters.snapshot import SideSnapshot, ZeroGrad

    layer, module, inp = _pair()
    layer(**inp[0]).sum().backward()
    layer.clear_gradients()  # paddle's default: gradients filled with zeros, not released
    module(**inp[1]).sum().backward()
    module.zero_grad(set_to_none=False)
    monkeypatch.setattr(PADDLE, "clone_detached", lambda t: pytest.fail("a zero gradient was cloned"))
    monkeypatch.setattr(TORCH, "clone_detached", lambda t: pytest.fail("a zero gradient was cloned"))
    snaps = [SideSnapshot.take(PADDLE, layer, inp[0], keep_values=False),
             SideSnapshot.take(TORCH, module, inp[1], keep_values=False)]
    assert all(isinstance(g, ZeroGrad) for s in snaps for _, g in s.grads)
    layer(**inp[0]).sum().backward()  # a run leaves its own gradients ...
    module(**inp[1]).sum().backward()
    if not zeros_left:  # ... or none at all (stopped before backward)
        layer.clear_gradients(False)
        module.zero_grad(set_to_none=True)
    for s in snaps:
        s.restore(values=False, grads=True)
    for p in layer.parameters():
        assert p.grad is not None and list(p.grad.shape) == list(p.shape) and not p.grad.numpy().any()
    for t in module.parameters():
        assert t.grad is not None and t.grad.shape == t.shape and not t.grad.any()


def test_a_gradient_with_a_negative_zero_is_cloned() -> None:
    from padiff.adapters.snapshot import SideSnapshot, ZeroGrad

    layer, _module, inp = _pair()
    layer(**inp[0]).sum().backward()
    layer.clear_gradients()
    w = layer[0].weight
    w.grad = paddle.to_tensor(np.full(w.shape, -0.0, "float32"))
    snap = SideSnapshot.take(PADDLE, layer, inp[0], keep_values=False)
    kept = dict((id(t), g) for t, g in snap.grads)
    assert not isinstance(kept[id(w)], ZeroGrad)
    snap.restore(values=False, grads=True)
    assert np.signbit(w.grad.numpy()).all()


def test_a_failing_run_clones_the_gradients_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The op view and the randomness probes run forwards only: they keep no gradients of their own."""
    layer, module, inp = _pair()
    layer(**inp[0]).sum().backward()
    module(**inp[1]).sum().backward()
    before = [p.grad.numpy().copy() for p in layer.parameters()]
    clones = {PADDLE.name: 0, TORCH.name: 0}
    for side in (PADDLE, TORCH):
        real = side.clone_detached

        def counting(t: object, real: object = real, name: str = side.name) -> object:
            if tuple(t.shape) in ((WIDTH, WIDTH), (WIDTH,)):  # type: ignore[attr-defined]  # a parameter's grad
                clones[name] += 1
            return real(t)  # type: ignore[operator]

        monkeypatch.setattr(side, "clone_detached", counting)
    handle = module[0].register_forward_hook(lambda _m, _i, out: out * 1.05)
    try:
        rep = padiff.compare(layer, module, inp, auto_weights=True, atol=1e-5, rtol=1e-4)
    finally:
        handle.remove()
    assert not bool(rep) and rep.first_diff.torch_path == "0" and rep.first_diff.op is not None
    n = len(before)
    assert clones == {PADDLE.name: n, TORCH.name: n}, clones  # the first snapshot's, nothing more
    for b, p in zip(before, layer.parameters()):
        np.testing.assert_array_equal(b, p.grad.numpy())
