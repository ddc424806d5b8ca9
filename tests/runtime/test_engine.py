"""The eager engine: success and failure for every stage, options, pairing rules."""

from __future__ import annotations

import json
import threading

import numpy as np
import paddle
import pytest
import torch
from models.basic import (
    DoubleGrad,
    PaddleMLP,
    TorchMLP,
    conv_pair,
    inputs,
    mlp_pair,
    perturb_torch,
    rand,
    stack_pair,
    two_heads_pair,
)

import padiff
from padiff import MappingError, OptionsError

#: tests that check how the engine picks the backward mode, so the fixture below leaves it alone
_PICKS_ITS_OWN_MODE = {"test_backward_mode_follows_free_cores_and_memory",
                       "test_backward_passes_run_together_holding_few_paddle_gradients",
                       "test_ahead_paddle_backward_runs_beside_torch_forward_on_the_core_torch_leaves",
                       "test_ahead_a_failing_torch_forward_waits_for_paddle_backward_and_leaves_both_models_as_they_were"}


@pytest.fixture(autouse=True, params=["sequential", "overlap", "ahead"])
def backward_mode(request, monkeypatch):
    """Every engine test runs three times: backward passes one after the other, overlapped, and paddle's ahead.

    Which one a run takes depends on the machine (cores, torch's threads, memory left), so
    both are forced here rather than left to wherever the suite happens to run.
    """
    from padiff.runtime.engine import backward_mode

    if request.node.originalname not in _PICKS_ITS_OWN_MODE:
        monkeypatch.setattr(backward_mode, "choose_backward_mode", lambda machine, grad_bytes, mode=request.param: mode)
    return request.param


def synced(pair):
    layer, module, inp = pair
    assert padiff.assign_weight(layer, module)
    return layer, module, inp


def test_agreeing_mlp_passes_and_records_every_stage():
    layer, module, inp = mlp_pair()
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-6})
    assert rep and rep.first_diff is None
    stages = {r.stage for r in rep.records}
    assert stages == {"forward", "loss", "backward", "grad"}
    fwd = [(r.paddle_path, r.torch_path) for r in rep.by_stage("forward") if r.paddle_path]
    assert fwd == [("fc1", "first"), ("fc2", "middle"), ("fc3", "last")]
    grads = {(r.paddle_path, r.item) for r in rep.by_stage("grad")}
    assert ("fc2", "weight") in grads and ("fc2", "bias") in grads
    # the ReLU layer has no torch counterpart (functional there) and is passed over, not an error
    assert any(s.path == "act" and s.side == "paddle" for s in rep.skipped)


def test_forward_fault_names_the_faulty_pair():
    layer, module, inp = synced(mlp_pair())
    perturb_torch(module, "middle.weight")
    rep = padiff.compare(layer, module, inp, options={"atol": 1e-6})
    assert not rep
    first = rep.first_diff
    assert (first.stage, first.step, first.paddle_path, first.torch_path) == ("forward", 0, "fc2", "middle")
    assert (first.paddle_class, first.torch_class) == ("Linear", "Linear")
    assert first.max_abs_diff > 1e-3 and first.total == 3 * 16
    assert first.paddle_stack and first.torch_stack  # user code locations on both sides


class TorchMLPBadBackward(TorchMLP):
    def forward(self, inp):
        h = torch.relu(self.first(inp))
        h = DoubleGrad.apply(h)  # forward identical, backward doubled below this point
        return self.last(torch.relu(self.middle(h)))


def test_backward_fault_names_the_layer_below_it():
    layer, module = PaddleMLP(), TorchMLPBadBackward()
    inp = inputs(("x", "inp", rand(3, 8)))
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-6})
    assert not rep
    first = rep.first_diff
    assert first.stage == "backward"
    assert (first.paddle_path, first.torch_path) == ("fc1", "first")
    assert all(r.passed for r in rep.by_stage("forward"))


def test_grad_fault_is_reported_in_the_grad_stage():
    layer, module, inp = mlp_pair()
    module.middle.weight.register_hook(lambda g: g * 1.5)
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-6})
    assert not rep
    first = rep.first_diff
    assert (first.stage, first.paddle_path, first.torch_path, first.item) == ("grad", "fc2", "middle", "weight")


def test_weight_fault_after_optimizer_step():
    layer, module, inp = mlp_pair()
    opts = [paddle.optimizer.SGD(0.1, parameters=layer.parameters()), torch.optim.SGD(module.parameters(), lr=0.2)]
    rep = padiff.compare(layer, module, inp, auto_weights=True, optimizer=opts, options={"atol": 1e-6})
    assert not rep
    assert rep.first_diff.stage == "weight"
    assert all(r.passed for r in rep.records if r.stage != "weight")


def test_loss_fault_is_its_own_stage():
    layer, module, inp = mlp_pair()
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-6},
                         loss_fn=[lambda o: o.mean(), lambda o: o.sum()])
    assert not rep and rep.first_diff.stage == "loss"


def test_assign_weight_failure_is_the_first_diff():
    layer, module = PaddleMLP(d_hidden=16), TorchMLP(d_hidden=17)
    inp = inputs(("x", "inp", rand(3, 8)))
    rep = padiff.compare(layer, module, inp, auto_weights=True)
    assert not rep
    assert rep.first_diff.stage == "assign_weight"
    assert padiff.auto_diff(layer, module, inp, auto_weights=True) is False


def test_auto_diff_returns_bool_and_prints(capsys):
    layer, module, inp = mlp_pair()
    assert padiff.auto_diff(layer, module, inp, auto_weights=True, options={"atol": 1e-6}) is True
    assert "SUCCESS" in capsys.readouterr().out


def test_tolerances_decide():
    layer, module, inp = synced(mlp_pair())
    perturb_torch(module, "last.bias", 1e-4)
    assert not padiff.compare(layer, module, inp, options={"atol": 1e-6, "compare_mode": "strict"})
    assert padiff.compare(layer, module, inp, options={"atol": 1e-3, "compare_mode": "strict"})
    # mean mode judges the means: the shifted bias moves every output, and the loss (their mean here), by 1e-4
    mean_loss = [lambda out: out.mean(), lambda out: out.mean()]
    assert padiff.compare(layer, module, inp, options={"atol": 2e-4, "compare_mode": "mean"}, loss_fn=mean_loss)
    assert not padiff.compare(layer, module, inp, options={"atol": 5e-5, "compare_mode": "mean"}, loss_fn=mean_loss)


class TorchMLPFlipped(TorchMLP):
    def forward(self, inp):
        return super().forward(inp).flip(-1)  # same mean, different elements


def test_a_same_mean_permutation_fails_in_both_modes():
    # padiff 0.2.0's "mean" compared the two means, which a permutation leaves equal
    layer, module = PaddleMLP(), TorchMLPFlipped()
    inp = inputs(("x", "inp", rand(3, 8)))
    for mode in ("mean", "strict"):
        rep = padiff.compare(layer, module, inp, auto_weights=True,
                             options={"atol": 1e-5, "rtol": 1e-4, "diff_phase": "forward", "compare_mode": mode})
        assert not rep and rep.first_diff.item == "model output"
        assert rep.first_diff.stats.mode == mode and rep.first_diff.mismatched > 0
        assert abs(rep.first_diff.paddle_mean - rep.first_diff.torch_mean) < 1e-5  # the means agree


def test_diff_phase_forward_skips_backward_entirely():
    layer, module, inp = mlp_pair()
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"diff_phase": "forward", "atol": 1e-6})
    assert rep and {r.stage for r in rep.records} == {"forward", "loss"}
    assert all(p.grad is None for p in module.parameters())


def test_single_step_judges_each_layer_alone():
    layer, module, inp = synced(mlp_pair())
    perturb_torch(module, "first.weight")
    normal = padiff.compare(layer, module, inp, options={"atol": 1e-6, "diff_phase": "forward"})
    single = padiff.compare(layer, module, inp, options={"atol": 1e-6, "diff_phase": "forward", "single_step": True})
    fails = lambda rep: [r.paddle_path for r in rep.by_stage("forward") if not r.passed]  # noqa: E731
    assert fails(normal)[:3] == ["fc1", "fc2", "fc3"]
    assert fails(single)[0] == "fc1" and "fc2" not in fails(single) and "fc3" not in fails(single)


def test_single_step_both_phases_runs_two_passes():
    layer, module, inp = mlp_pair()
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"single_step": True, "atol": 1e-6})
    assert rep
    assert {"forward", "backward", "grad"} <= {r.stage for r in rep.records}


def test_single_step_backward_only():
    layer, module, inp = mlp_pair()
    rep = padiff.compare(layer, module, inp, auto_weights=True,
                         options={"single_step": True, "diff_phase": "backward", "atol": 1e-6})
    assert rep and {r.stage for r in rep.records} == {"backward", "grad"}


def test_single_step_backward_localises_a_backward_fault():
    layer, module = PaddleMLP(), TorchMLPBadBackward()
    inp = inputs(("x", "inp", rand(3, 8)))
    rep = padiff.compare(layer, module, inp, auto_weights=True,
                         options={"single_step": True, "diff_phase": "backward", "atol": 1e-6})
    bad = {r.paddle_path for r in rep.by_stage("backward") if not r.passed}
    assert bad == {"fc1"}


@pytest.mark.parametrize("kind", ["objects", "lambdas"])
def test_several_steps_with_optimizers(kind):
    layer, module, inp = mlp_pair()
    p_opt = paddle.optimizer.SGD(0.05, parameters=layer.parameters())
    t_opt = torch.optim.SGD(module.parameters(), lr=0.05)
    if kind == "objects":
        opt = [p_opt, t_opt]
    else:
        opt = [lambda: (p_opt.step(), p_opt.clear_grad()), lambda: (t_opt.step(), t_opt.zero_grad())]
    rep = padiff.compare(layer, module, inp, auto_weights=True, steps=3, optimizer=opt,
                         options={"atol": 1e-5, "rtol": 1e-4})
    assert rep, rep.first_diff
    assert {r.step for r in rep.by_stage("weight")} == {0, 1, 2}
    # a training check trains: the weights after the run are the trained ones, equal on both sides
    np.testing.assert_allclose(layer.fc1.weight.numpy().T, module.first.weight.detach().numpy(), atol=1e-5)


def test_steps_need_an_optimizer():
    layer, module, inp = mlp_pair()
    with pytest.raises(OptionsError, match="optimizer"):
        padiff.compare(layer, module, inp, steps=2)


def test_two_inputs_other_key_names_dict_and_tuple_outputs_reused_layer():
    layer, module, inp = two_heads_pair()
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-6})
    assert rep, rep.first_diff
    shared = [r for r in rep.by_stage("forward") if r.paddle_path == "shared"]
    assert [r.call for r in shared] == [0, 1]  # compared at each call
    outs = [r for r in rep.by_stage("forward") if r.item.startswith("model output")]
    assert len(outs) == 2  # the int in the tuple is passed over


@pytest.mark.parametrize("train", [False, True])
def test_wrapper_vs_flat_conv_net_with_batchnorm(train):
    layer, module, inp = conv_pair()
    if not train:
        layer.eval()
        module.eval()
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-5, "rtol": 1e-4})
    assert rep, rep.first_diff
    pairs = [(r.paddle_path, r.torch_path) for r in rep.by_stage("forward") if r.paddle_path]
    assert ("stem.0", "conv1") in pairs and ("bn", "bn2") in pairs and ("head", "fc") in pairs


def test_functional_gelu_vs_layer_does_not_break_pairing():
    layer, module, inp = stack_pair(3)
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-5})
    assert rep, rep.first_diff
    assert {s.cls for s in rep.skipped} == {"GELU"}


def test_fault_in_a_deep_block_is_found():
    layer, module, inp = synced(stack_pair(3))
    perturb_torch(module, "layers.2.fc_in.bias", 0.01)
    rep = padiff.compare(layer, module, inp, options={"atol": 1e-5})
    assert (rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("blocks.2.up", "layers.2.fc_in")


def test_report_is_json_serialisable():
    layer, module, inp = synced(mlp_pair())
    perturb_torch(module, "middle.weight")
    d = padiff.compare(layer, module, inp, options={"atol": 1e-6}).to_dict()
    text = json.dumps(d)
    assert d["ok"] is False and d["first_diff"]["paddle_path"] == "fc2"
    assert "records" in json.loads(text)


def test_unpairable_models_raise_a_mapping_error():
    class P(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.a, self.b = paddle.nn.Linear(4, 4), paddle.nn.Linear(4, 4)

        def forward(self, x):
            return self.b(self.a(x))

    class T(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x)

    with pytest.raises(MappingError, match="layer_map='auto'"):
        padiff.compare(P(), T(), inputs(("x", "x", rand(2, 4))))


def test_nan_is_never_agreement():
    layer, module, inp = synced(mlp_pair())
    with torch.no_grad():
        module.middle.bias[0] = float("nan")
        layer.fc2.bias.set_value(module.middle.bias.detach().numpy())
    rep = padiff.compare(layer, module, inp, options={"atol": 1e-6})
    assert not rep and rep.first_diff.note == "nan"


class _PaddleTwin(paddle.nn.Layer):
    def __init__(self):
        super().__init__()
        self.a = paddle.nn.Linear(4, 4)
        self.b = paddle.nn.Linear(4, 4)

    def forward(self, x):
        return self.b(paddle.tanh(self.a(x)))


class _TorchTwinReordered(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.y = torch.nn.Linear(4, 4)  # defined first, called second
        self.x = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.y(torch.tanh(self.x(x)))


def test_auto_weights_follow_call_order_not_definition_order():
    layer, module = _PaddleTwin(), _TorchTwinReordered()
    inp = inputs(("x", "x", rand(3, 4)))
    rep = padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-6})
    assert rep, rep.first_diff
    np.testing.assert_allclose(layer.a.weight.numpy().T, module.x.weight.detach().numpy())


def test_auto_weights_with_reordered_definitions_of_different_shapes():
    class TorchReversed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.last = torch.nn.Linear(16, 4)
            self.middle = torch.nn.Linear(16, 16)
            self.first = torch.nn.Linear(8, 16)

        def forward(self, inp):
            return self.last(torch.relu(self.middle(torch.relu(self.first(inp)))))

    rep = padiff.compare(PaddleMLP(), TorchReversed(), inputs(("x", "inp", rand(3, 8))), auto_weights=True,
                         options={"atol": 1e-6})
    assert rep, rep.first_diff


@pytest.mark.parametrize("layer_map", [None, "auto"])
def test_attention_block_is_one_unit_without_a_map(layer_map):
    from models.special_pairs import PaddleAttnBlock, TorchAttnBlock

    layer, module = PaddleAttnBlock(), TorchAttnBlock()
    x, k = rand(2, 3, 8, seed=3), rand(2, 3, 8, seed=4)
    inp = inputs(("x", "x", x), ("k", "k", k), ("v", "v", k))
    rep = padiff.compare(layer, module, inp, auto_weights=True, layer_map=layer_map, options={"atol": 1e-5})
    assert rep, rep.first_diff
    fwd = {(r.paddle_path, r.torch_path) for r in rep.by_stage("forward")}
    assert ("attn", "attn") in fwd and ("attn.q_proj", "attn") not in fwd
    grads = {r.item for r in rep.by_stage("grad") if r.paddle_path == "attn"}
    assert {"q_proj.weight", "out_proj.bias"} <= grads  # unit grads compared in paddle layout


def test_log_dir_receives_the_long_logs_of_a_failed_run(tmp_path):
    layer, module, inp = synced(mlp_pair())
    perturb_torch(module, "middle.weight")
    rep = padiff.compare(layer, module, inp, options={"atol": 1e-6}, log_dir=str(tmp_path))
    assert rep.log_dir and rep.log_dir.startswith(str(tmp_path))
    assert any(tmp_path.rglob("*"))


class PaddleWritesOutputInPlace(paddle.nn.Layer):
    """Writes into a layer's output after the layer returned (``h[:, 0] = 0``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(4)
        self.head = paddle.nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        h = self.bn(self.conv(x))
        h[:, 0] = 0.0
        return self.head(h.flatten(1))


class TorchMasksOutput(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        h = self.bn(self.conv(x))
        keep = torch.ones(1, 4, 1, 1)
        keep[:, 0] = 0.0
        return self.head((h * keep).flatten(1))


@pytest.mark.parametrize("single_step", [False, True])
def test_output_written_in_place_after_return_is_compared_as_returned(single_step):
    # paddle outputs are kept by reference while torch runs; one written in place afterwards
    # must still be compared with the value the layer returned, and the forward that is run
    # again for it must not update the BatchNorm statistics twice
    layer, module = PaddleWritesOutputInPlace(), TorchMasksOutput()
    inp = inputs(("x", "x", rand(2, 3, 6, 6)))
    opts = None if single_step else [paddle.optimizer.SGD(0.1, parameters=layer.parameters()),
                                     torch.optim.SGD(module.parameters(), lr=0.1)]
    # strict: a BatchNorm output's mean is 0 with or without the zeroed channel
    rep = padiff.compare(layer, module, inp, auto_weights=True, optimizer=opts, steps=1 if single_step else 2,
                         options={"atol": 1e-5, "rtol": 1e-4, "compare_mode": "strict", "single_step": single_step})
    # (paddle keeps the biased batch variance as running variance, torch the unbiased one, so
    # only the running mean is expected to agree after the steps)
    assert all(r.passed for r in rep.records if r.item != "_variance"), rep.first_diff
    bn_fwd = [r for r in rep.by_stage("forward") if r.paddle_path == "bn"]
    assert len(bn_fwd) == (1 if single_step else 2) and all(r.passed for r in bn_fwd)
    if single_step:
        return
    assert any(r.paddle_path == "bn" and r.item == "_mean" for r in rep.by_stage("weight"))
    np.testing.assert_allclose(layer.bn._mean.numpy(), module.bn.running_mean.numpy(), atol=1e-5)


class _PaddleDeep(paddle.nn.Layer):
    def __init__(self, n: int = 16, d: int = 128) -> None:
        super().__init__()
        self.fcs = paddle.nn.LayerList([paddle.nn.Linear(d, d) for _ in range(n)])

    def forward(self, x):
        for fc in self.fcs:
            x = paddle.tanh(fc(x))
        return x


class _TorchDeep(torch.nn.Module):
    def __init__(self, n: int = 16, d: int = 128) -> None:
        super().__init__()
        self.fcs = torch.nn.ModuleList([torch.nn.Linear(d, d) for _ in range(n)])

    def forward(self, x):
        for fc in self.fcs:
            x = torch.tanh(fc(x))
        return x


def _record_exchanges(monkeypatch, budget_bytes: int | None = None) -> list:
    """Make the engine use GradExchange objects this test can inspect; returns the list they land in."""
    from padiff.runtime import grad_exchange
    from padiff.runtime.engine import run

    made: list = []

    class Recorded(grad_exchange.GradExchange):
        def __init__(self) -> None:
            super().__init__(grad_exchange.BUDGET_BYTES if budget_bytes is None else budget_bytes)
            made.append(self)

    monkeypatch.setattr(run, "GradExchange", Recorded)
    return made


def test_backward_passes_run_together_holding_few_paddle_gradients(monkeypatch):
    # paddle's output gradients are handed over while both backward passes run, so only a few
    # are held at once instead of all of them (the memory the benchmarks measure)
    from padiff.runtime import grad_exchange
    from padiff.runtime.engine import backward_mode

    one = 64 * 128 * 4
    made = _record_exchanges(monkeypatch, budget_bytes=2 * one)
    monkeypatch.setattr(backward_mode, "choose_backward_mode", lambda machine, grad_bytes: grad_exchange.OVERLAP)
    layer, module = _PaddleDeep(), _TorchDeep()
    rep = padiff.compare(layer, module, inputs(("x", "x", rand(64, 128))), auto_weights=True,
                         options={"atol": 1e-5, "rtol": 1e-4})
    assert rep, rep.first_diff
    assert len([r for r in rep.by_stage("backward") if r.paddle_path.startswith("fcs.")]) == 16
    ex = made[-1]
    assert ex.concurrent
    assert 0 < ex.peak_held <= 4 * one < 16 * one


class _PaddleSin(paddle.autograd.PyLayer):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return paddle.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensor()
        return g * paddle.cos(x) + paddle.zeros_like(x)  # paddle ops, run in the backward thread


class _PaddleSinNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = paddle.nn.Linear(8, 8), paddle.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(_PaddleSin.apply(self.fc1(x)))


class _TorchSinNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(8, 8), torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.sin(self.fc1(x)))


def test_paddle_custom_backward_runs_right_in_the_backward_thread():
    rep = padiff.compare(_PaddleSinNet(), _TorchSinNet(), inputs(("x", "x", rand(4, 8))), auto_weights=True,
                         options={"atol": 1e-6, "rtol": 1e-5})
    assert rep, rep.first_diff
    assert {(r.paddle_path, r.item) for r in rep.by_stage("grad")} >= {("fc1", "weight"), ("fc2", "weight")}


@pytest.mark.parametrize("cores, torch_threads, free_memory, mode", [
    (1, 1, 1 << 10, "sequential"),  # one core: nothing to overlap on, even with memory short
    (2, 1, 1 << 40, "overlap"),  # torch leaves a core free: overlapping is faster too
    (2, 2, 1 << 40, "ahead"),  # torch fills the cores, memory is plenty: paddle's backward beside torch's forward
    (2, 2, 1 << 10, "overlap"),  # holding every gradient could exhaust memory: overlap anyway
])
def test_backward_mode_follows_free_cores_and_memory(monkeypatch, cores, torch_threads, free_memory, mode):
    from padiff import adapters
    from padiff.runtime.engine import backward_mode

    made = _record_exchanges(monkeypatch)
    monkeypatch.setattr(backward_mode, "usable_cores", lambda: cores)
    monkeypatch.setattr(backward_mode, "available_memory", lambda: free_memory)
    monkeypatch.setattr(type(adapters.TORCH), "compute_threads", lambda self: torch_threads)
    rep = padiff.compare(_PaddleDeep(n=4), _TorchDeep(n=4), inputs(("x", "x", rand(8, 128))), auto_weights=True,
                         options={"atol": 1e-5, "rtol": 1e-4})
    assert rep, rep.first_diff
    assert made[-1].mode == mode
    assert made[-1].concurrent is (mode != "sequential")
    assert len(rep.by_stage("backward")) >= 4


class _PaddleSeenNet(_PaddleSinNet):
    """:class:`_PaddleSinNet` whose sin's backward notes its thread and sets ``log["started"]``."""

    def __init__(self, log: dict) -> None:
        super().__init__()

        class Sin(_PaddleSin):
            @staticmethod
            def backward(ctx, g):
                log["paddle_backward_thread"] = threading.current_thread()
                log["started"].set()
                return _PaddleSin.backward(ctx, g)

        self.sin = Sin

    def forward(self, x):
        return self.fc2(self.sin.apply(self.fc1(x)))


class _TorchSeenNet(_TorchSinNet):
    """:class:`_TorchSinNet` noting torch's kernel threads and whether paddle's backward had started."""

    def __init__(self, log: dict, fail: bool = False) -> None:
        super().__init__()
        self.log, self.fail = log, fail

    def forward(self, x):
        self.log["torch_threads"] = torch.get_num_threads()
        self.log["paddle_backward_seen"] = self.log["started"].wait(timeout=10)
        if self.fail:
            raise ValueError("planted: torch's forward fails")
        return super().forward(x)


def _ahead(monkeypatch) -> None:
    from padiff.runtime import grad_exchange
    from padiff.runtime.engine import backward_mode

    monkeypatch.setattr(backward_mode, "choose_backward_mode", lambda machine, grad_bytes: grad_exchange.AHEAD)
    monkeypatch.setattr(backward_mode, "usable_cores", lambda: 2)


def test_ahead_paddle_backward_runs_beside_torch_forward_on_the_core_torch_leaves(monkeypatch):
    # torch's threads fill the cores (its default) and paddle's kernels run in one thread: paddle's
    # backward starts before torch's forward, in the worker, while torch keeps one core fewer
    _ahead(monkeypatch)
    log = {"started": threading.Event()}
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rep = padiff.compare(_PaddleSeenNet(log), _TorchSeenNet(log), inputs(("x", "x", rand(4, 8))),
                             auto_weights=True, options={"atol": 1e-6, "rtol": 1e-5})
        assert rep, rep.first_diff
        assert log["paddle_backward_seen"] and log["paddle_backward_thread"] is not threading.main_thread()
        assert log["torch_threads"] == 1
        assert torch.get_num_threads() == 2  # put back
        assert {(r.paddle_path, r.item) for r in rep.by_stage("grad")} >= {("fc1", "weight"), ("fc2", "weight")}
        assert len(rep.by_stage("backward")) >= 2
    finally:
        torch.set_num_threads(before)


def test_ahead_a_failing_torch_forward_waits_for_paddle_backward_and_leaves_both_models_as_they_were(monkeypatch):
    # (the weights auto_weights copied into paddle stay, as after any run)
    _ahead(monkeypatch)
    log = {"started": threading.Event()}
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    layer, module = _PaddleSeenNet(log), _TorchSeenNet(log, fail=True)
    t_before = {k: v.detach().clone() for k, v in module.state_dict().items()}
    try:
        with pytest.raises(Exception, match="planted"):
            padiff.compare(layer, module, inputs(("x", "x", rand(4, 8))), auto_weights=True)
        assert log["paddle_backward_seen"]
        assert torch.get_num_threads() == 2
        assert all(torch.equal(module.state_dict()[k], v) for k, v in t_before.items())
        assert all(p.grad is None for p in layer.parameters()) and all(p.grad is None for p in module.parameters())
        module.fail, log["started"] = False, threading.Event()  # the worker is free for the next run
        assert padiff.compare(layer, module, inputs(("x", "x", rand(4, 8))), auto_weights=True,
                              options={"atol": 1e-6, "rtol": 1e-5})
    finally:
        torch.set_num_threads(before)
