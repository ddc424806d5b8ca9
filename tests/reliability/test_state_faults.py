"""Every buffer comes back, a one-sided frozen parameter fails both ways, dicts pair by key, empty batches fail."""

from __future__ import annotations

import sys

import numpy as np
import paddle
import pytest
import torch
from reliability._helpers import copy_weights, net_pair, pair_inputs, rand

import padiff
from padiff import ModelRunError


class PEma(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = paddle.nn.Linear(4, 3)
        self.bn = paddle.nn.BatchNorm1D(3)
        self.register_buffer("ema", paddle.zeros([3]), persistable=False)

    def forward(self, x):
        y = self.bn(self.fc(x))
        with paddle.no_grad():
            self.ema.set_value(self.ema * 0.5 + y.mean(0))
        return y


class TEma(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.bn = torch.nn.BatchNorm1d(3, momentum=None)  # cumulative average: uses num_batches_tracked
        self.register_buffer("ema", torch.zeros(3), persistent=False)

    def forward(self, x):
        y = self.bn(self.fc(x))
        with torch.no_grad():
            self.ema.mul_(0.5).add_(y.mean(0))
        return y


def _buffers(layer, module) -> dict[str, list]:
    out = {f"paddle.{n}": b.numpy().tolist() for n, b in layer.named_buffers()}
    out.update({f"torch.{n}": b.numpy().tolist() for n, b in module.named_buffers()})
    return out


@pytest.mark.parametrize("auto_weights", [False, True])
def test_every_buffer_comes_back_whatever_its_dtype_or_persistence(auto_weights):
    torch.manual_seed(0)
    layer, module = PEma(), TEma()
    copy_weights(layer, module)
    before = _buffers(layer, module)
    assert "torch.bn.num_batches_tracked" in before and "paddle.ema" in before and "torch.ema" in before
    padiff.compare(layer, module, pair_inputs(x=rand(5, 4)), auto_weights=auto_weights)
    after = _buffers(layer, module)
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"buffers not restored: {changed}"


def test_a_parameter_frozen_on_the_paddle_side_only_fails_like_the_mirror_case():
    layer, module, inp = net_pair(0)
    layer.fc1.weight.stop_gradient = True
    rep = padiff.compare(layer, module, inp)
    assert not rep
    bad = [r for r in rep.records if not r.passed]
    assert any(r.stage == "grad" and r.paddle_path == "fc1" and r.item == "weight"
               and "only on the torch side" in r.stats.note for r in bad), [(r.stage, r.stats.note) for r in bad]
    assert layer.fc1.weight.stop_gradient  # and the user's flag is untouched

    layer, module, inp = net_pair(0)
    module.fc1.weight.requires_grad_(False)
    mirror = padiff.compare(layer, module, inp)
    assert not mirror and any("only on the paddle side" in r.stats.note for r in mirror.records if not r.passed)


class PDict(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = paddle.nn.Linear(4, 6)
        self.fc2 = paddle.nn.Linear(6, 3)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h), {"hidden": h, "scaled": [h * 2.0, {"a": h + 1.0, "b": h - 1.0}]}


class TDict(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 6)
        self.fc2 = torch.nn.Linear(6, 3)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h), {"scaled": [h * 2.0, {"b": h - 1.0, "a": h + 1.0}], "hidden": h}


def test_nested_dicts_in_another_key_order_are_paired_by_key_at_every_depth():
    torch.manual_seed(0)
    layer, module = PDict(), TDict()
    copy_weights(layer, module)
    # float32 tolerances: the default rtol (1e-7) is below what two frameworks' float32 kernels agree to on
    # the loss on some CPUs; a wrong pairing (hidden against scaled) differs by far more
    rep = padiff.compare(layer, module, pair_inputs(x=rand(3, 4)), options={"atol": 1e-6, "rtol": 1e-5})
    assert rep, [(r.item, r.stats.note) for r in rep.records if not r.passed]
    assert sum(r.item.startswith("model output") for r in rep.records) == 5


class PInner(paddle.nn.Layer):
    """Holds a parameter itself, so its (dict) output is compared as a layer output."""

    def __init__(self) -> None:
        super().__init__()
        self.w = self.create_parameter([4, 4])

    def forward(self, x):
        h = paddle.matmul(x, self.w)
        return (h, {"p": h * 2.0, "q": h * 3.0})


class TInner(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        h = x @ self.w
        return (h, {"q": h * 3.0, "p": h * 2.0})


class POuter(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.inner = PInner()

    def forward(self, x):
        h, d = self.inner(x)
        return h + d["p"] + d["q"] * 0.5


class TOuter(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = TInner()

    def forward(self, x):
        h, d = self.inner(x)
        return h + d["p"] + d["q"] * 0.5


def test_a_layer_returning_a_dict_in_another_order_is_paired_by_key():
    torch.manual_seed(0)
    layer, module = POuter(), TOuter()
    layer.inner.w.set_value(module.inner.w.detach().numpy())
    rep = padiff.compare(layer, module, pair_inputs(x=rand(3, 4)))
    assert rep, [(r.stage, r.paddle_path, r.item, r.stats.note) for r in rep.records if not r.passed]
    assert any(r.paddle_path == "inner" and r.stage == "forward" for r in rep.records)


def test_an_empty_batch_is_nothing_compared_not_a_pass():
    layer, module, _ = net_pair(0)
    rep = padiff.compare(layer, module, pair_inputs(x=np.zeros((0, 4), "float32")))
    assert not rep
    notes = [r.stats.note for r in rep.records if not r.passed]
    assert any("nothing compared: the batch is empty" in n and "[0, 4]" in n for n in notes), notes
    assert not any("has no float tensor" in w for w in rep.warnings)


class PExits(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = paddle.nn.Linear(4, 3)

    def forward(self, x):
        sys.exit(0)


def test_a_model_that_calls_sys_exit_is_a_usage_error():
    _, module, inp = net_pair(0)
    with pytest.raises(ModelRunError, match=r"called sys.exit\(0\)"):
        padiff.compare(PExits(), module, inp)


class TRebinds(TEma):
    """Rebinds its buffer in forward (``self.ema = ...``) instead of updating it in place."""

    def forward(self, x):
        y = self.bn(self.fc(x))
        self.ema = (self.ema * 0.5 + y.mean(0)).detach()
        return y


def test_a_buffer_the_forward_rebinds_comes_back_as_the_same_tensor():
    torch.manual_seed(0)
    layer, module = PEma(), TRebinds()
    copy_weights(layer, module)
    original = module.ema
    padiff.compare(layer, module, pair_inputs(x=rand(5, 4)), options={"diff_phase": "forward"})
    assert module.ema is original and not original.any()
    assert "ema" not in module.state_dict()  # still non-persistent
