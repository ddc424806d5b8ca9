"""The user's models, inputs, options and working directory after every call, success or failure.

Each scenario prepares state a user may have — gradients from their own backward, a frozen
parameter, a submodule in eval mode, an input that requires grad, their own hooks, a seeded
random generator — runs one padiff call and checks everything is as it was. Faults raised
inside either model, a loss or an optimizer come back as a PadiffError with padiff's context
and the original exception chained.
"""

from __future__ import annotations

import copy
import os
import types

import numpy as np
import paddle
import pytest
import torch
from reliability._helpers import PNet, TNet, assert_same_state, copy_weights, net_pair, pair_inputs, rand, user_state

import padiff
from padiff import InputError, MappingError, ModelRunError, OptionsError, PadiffError


def _lived_in(seed: int = 0):
    """A model pair in the state a user's session leaves it."""
    layer, module, (p, t) = net_pair(seed)
    layer(**p).sum().backward()  # the user's own gradients
    module(**t).sum().backward()
    layer.fc1.bias.stop_gradient = True  # a frozen parameter
    module.fc1.bias.requires_grad_(False)
    layer.fc2.eval()  # a submodule in eval mode
    module.fc2.eval()
    p["x"].stop_gradient = False  # an input that requires grad, with a grad of its own
    t["x"].requires_grad_(True)
    (p["x"] * 3).sum().backward()
    (t["x"] * 3).sum().backward()
    calls = []
    layer.fc1.register_forward_post_hook(lambda *a: calls.append("paddle"))  # the user's own hooks
    module.fc1.register_forward_hook(lambda *a: calls.append("torch"))
    module.fc2.register_full_backward_hook(lambda *a: None)
    return layer, module, (p, t)


class _TorchRaises(TNet):
    def forward(self, x):
        torch.tanh(self.fc1(x))
        raise RuntimeError("user bug in torch forward")


class _PaddleRaises(PNet):
    def forward(self, x):
        raise ValueError("user bug in paddle forward")


class _BadGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        raise ArithmeticError("user bug in torch backward")


class _TorchBackwardRaises(TNet):
    def forward(self, x):
        return self.fc2(_BadGrad.apply(torch.tanh(self.fc1(x))))


class _PaddleBadGrad(paddle.autograd.PyLayer):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        raise ArithmeticError("user bug in paddle backward")


class _PaddleBackwardRaises(PNet):
    def forward(self, x):
        return self.fc2(_PaddleBadGrad.apply(paddle.tanh(self.fc1(x))))


def _swap(cls_p=None, cls_t=None):
    """A _lived_in pair whose paddle or torch model is replaced by a faulty subclass, same weights."""
    layer, module, inp = _lived_in()
    if cls_p is not None:
        new = cls_p()
        new.set_state_dict(layer.state_dict())
        new.fc1.bias.stop_gradient = True
        new.fc2.eval()
        layer = new
    if cls_t is not None:
        new = cls_t()
        new.load_state_dict(module.state_dict())
        new.fc1.bias.requires_grad_(False)
        new.fc2.eval()
        module = new
    return layer, module, inp


def _raise(msg):
    raise RuntimeError(msg)


# name -> (build models, call kwargs, expected exception or None)
SCENARIOS = {
    "agree": (_lived_in, {"options": {"atol": 1e-6}}, None),
    "forward-only": (_lived_in, {"options": {"diff_phase": "forward", "atol": 1e-6}}, None),
    "single-step": (_lived_in, {"options": {"single_step": True, "atol": 1e-6}}, None),
    "strict-differs": (lambda: _lived_in(), {"options": {"compare_mode": "strict"},
                                             "loss_fn": [lambda o: o.sum(), lambda o: o.mean()]}, None),
    "bad-option": (_lived_in, {"options": {"atol": -1}}, OptionsError),
    "bad-steps": (_lived_in, {"steps": 2}, OptionsError),
    "bad-loss-pair": (_lived_in, {"loss_fn": [len]}, OptionsError),
    "nonscalar-loss": (_lived_in, {"loss_fn": [lambda o: o, lambda o: o]}, OptionsError),
    "paddle-forward-raises": (lambda: _swap(cls_p=_PaddleRaises), {}, ModelRunError),
    "torch-forward-raises": (lambda: _swap(cls_t=_TorchRaises), {}, ModelRunError),
    "paddle-backward-raises": (lambda: _swap(cls_p=_PaddleBackwardRaises), {}, ModelRunError),
    "torch-backward-raises": (lambda: _swap(cls_t=_TorchBackwardRaises), {}, ModelRunError),
    "paddle-loss-raises": (_lived_in, {"loss_fn": [lambda o: o.no_such(), lambda o: o.mean()]}, ModelRunError),
    "torch-loss-raises": (_lived_in, {"loss_fn": [lambda o: o.mean(), lambda o: 1 / 0]}, ModelRunError),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_user_state_is_untouched(name, tmp_path, monkeypatch):
    build, kwargs, error = SCENARIOS[name]
    layer, module, inp = build()
    options = kwargs.get("options")
    frozen_options = copy.deepcopy(options)
    before = user_state(layer, module, inp)
    torch.manual_seed(123)
    paddle.seed(123)
    monkeypatch.chdir(tmp_path)
    if error is None:
        rep = padiff.compare(layer, module, inp, **kwargs)
        assert bool(rep) == (name != "strict-differs"), rep.first_diff
    else:
        with pytest.raises(error):
            padiff.compare(layer, module, inp, **kwargs)
    assert_same_state(before, user_state(layer, module, inp))
    assert options == frozen_options
    assert os.listdir(tmp_path) == []
    # the user's random stream goes on as if padiff had not run
    after_t, after_p = torch.rand(3), paddle.rand([3])
    torch.manual_seed(123)
    paddle.seed(123)
    assert torch.equal(after_t, torch.rand(3)) and np.array_equal(after_p.numpy(), paddle.rand([3]).numpy())


@pytest.mark.parametrize("name", ["paddle-forward-raises", "torch-forward-raises", "paddle-backward-raises",
                                  "torch-backward-raises", "paddle-loss-raises", "torch-loss-raises"])
def test_faults_are_padiff_errors_with_context_and_the_cause_chained(name):
    build, kwargs, _ = SCENARIOS[name]
    layer, module, inp = build()
    with pytest.raises(ModelRunError) as info:
        padiff.compare(layer, module, inp, **kwargs)
    err, msg = info.value, str(info.value)
    side, stage = name.split("-")[:2]
    assert isinstance(err, PadiffError)
    assert err.__cause__ is not None and type(err.__cause__).__name__ in msg
    if stage == "loss":
        assert f"loss_fn[{0 if side == 'paddle' else 1}] (the {side} loss function) raised during step 0" in msg
    else:
        assert f"the {side} model raised during {stage} (step 0)" in msg
        assert f"Check {'the' if stage == 'forward' else 'that the'} {side}" in msg  # says what to do
    if name == "torch-forward-raises":
        assert "inside layer <root> (_TorchRaises)" in msg and "user bug in torch forward" in msg


def test_an_optimizer_that_raises_is_reported_and_the_users_grads_come_back():
    layer, module, inp = _lived_in()
    before = user_state(layer, module, inp)
    p_opt = paddle.optimizer.SGD(0.1, parameters=layer.parameters())
    with pytest.raises(ModelRunError) as info:
        padiff.compare(layer, module, inp, optimizer=[p_opt, lambda: _raise("user bug in torch optimizer")])
    assert "the torch optimizer raised during step 0" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    # paddle stepped before torch raised: a training check may change weights, never the user's grads
    assert_same_state(before, user_state(layer, module, inp), except_values=True)


def test_a_training_check_keeps_the_trained_weights_and_nothing_else_changes():
    layer, module, inp = _lived_in()
    before = user_state(layer, module, inp)
    opts = [paddle.optimizer.SGD(0.1, parameters=layer.parameters()), torch.optim.SGD(module.parameters(), lr=0.1)]
    assert padiff.compare(layer, module, inp, optimizer=opts, steps=2, options={"atol": 1e-6})
    after = user_state(layer, module, inp)
    assert after["torch.fc1.weight.value"] != before["torch.fc1.weight.value"]  # trained, as asked
    assert_same_state(before, after, except_values=True, except_grads=True)


def test_keyboard_interrupt_is_not_swallowed_and_still_cleans_up():
    class TInterrupted(TNet):
        def forward(self, x):
            self.fc1(x)
            raise KeyboardInterrupt

    layer, module, inp = _swap(cls_t=TInterrupted)
    before = user_state(layer, module, inp)
    with pytest.raises(KeyboardInterrupt):
        padiff.compare(layer, module, inp)
    assert_same_state(before, user_state(layer, module, inp))


def test_a_failure_in_a_user_hook_is_a_model_error():
    layer, module, inp = net_pair()
    handle = module.fc2.register_forward_hook(lambda *a: _raise("user hook"))
    with pytest.raises(ModelRunError, match=r"torch model raised during forward.*inside layer fc2"):
        padiff.compare(layer, module, inp)
    handle.remove()
    assert padiff.compare(layer, module, inp, options={"atol": 1e-6})


def test_unpairable_models_leave_state_untouched():
    class PThree(PNet):
        def __init__(self):
            super().__init__()
            self.extra = paddle.nn.Linear(3, 3)

        def forward(self, x):
            return self.extra(super().forward(x))

    layer, module = PThree(), TNet()
    inp = pair_inputs(x=rand(3, 4))
    before = user_state(layer, module, inp)
    with pytest.raises(MappingError):
        padiff.compare(layer, module, inp)
    assert_same_state(before, user_state(layer, module, inp))


def test_batchnorm_statistics_in_train_mode_are_restored():
    class PBN(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = paddle.nn.Linear(4, 6)
            self.bn = paddle.nn.BatchNorm1D(6)

        def forward(self, x):
            return self.bn(self.fc(x))

    class TBN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 6)
            self.bn = torch.nn.BatchNorm1d(6)

        def forward(self, x):
            return self.bn(self.fc(x))

    layer, module = PBN(), TBN()
    copy_weights(layer, module)
    inp = pair_inputs(x=rand(5, 4))
    before = user_state(layer, module, inp)
    assert padiff.compare(layer, module, inp, options={"atol": 1e-5, "single_step": True})
    assert_same_state(before, user_state(layer, module, inp))
    with torch.no_grad():
        # a fault that reaches the output: a bias shift alone is cancelled by BatchNorm in train mode, so
        # its consumer agrees and fc's difference passes as a representation (README)
        module.fc.weight.add_(torch.linspace(-0.3, 0.3, module.fc.weight.numel()).reshape(module.fc.weight.shape))
    before = user_state(layer, module, inp)
    # a failed run also runs the randomness probe (one more torch forward in train mode)
    assert not padiff.compare(layer, module, inp, options={"atol": 1e-5, "compare_mode": "strict"})
    assert_same_state(before, user_state(layer, module, inp))


def test_a_training_check_that_fails_puts_batchnorm_statistics_and_grads_back():
    class TBNRaises(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 6)
            self.bn = torch.nn.BatchNorm1d(6)

        def forward(self, x):
            return self.bn(self.fc(x)).view(-1)[1000]

    class PBN(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = paddle.nn.Linear(4, 6)
            self.bn = paddle.nn.BatchNorm1D(6)

        def forward(self, x):
            return self.bn(self.fc(x))

    layer, module = PBN(), TBNRaises()
    copy_weights(layer, module)
    inp = pair_inputs(x=rand(5, 4))
    layer(**inp[0]).sum().backward()
    before = user_state(layer, module, inp)
    opts = [paddle.optimizer.SGD(0.1, parameters=layer.parameters()), torch.optim.SGD(module.parameters(), lr=0.1)]
    with pytest.raises(ModelRunError, match="torch model raised during forward"):
        padiff.compare(layer, module, inp, optimizer=opts)
    assert_same_state(before, user_state(layer, module, inp))  # paddle's forward had moved its statistics


def test_options_are_read_not_written():
    layer, module, inp = net_pair()
    options = types.MappingProxyType({"atol": 1e-6, "compare_mode": "strict"})  # mutation would raise
    assert padiff.compare(layer, module, inp, options=options)
    plain = {"atol": 1e-6}
    rep = padiff.compare(layer, module, inp, options=plain)
    rep.options["atol"] = 1.0
    assert plain == {"atol": 1e-6}


def test_auto_weights_changes_only_the_paddle_weights(tmp_path, monkeypatch):
    torch.manual_seed(7)
    layer, module = PNet(), TNet()  # different random weights
    inp = pair_inputs(x=rand(3, 4))
    before = user_state(layer, module, inp)
    monkeypatch.chdir(tmp_path)
    assert padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-6})
    after = user_state(layer, module, inp)
    assert_same_state({k: v for k, v in before.items() if not k.startswith("paddle.fc")}, after)
    assert_same_state(before, after, except_values=True)
    np.testing.assert_array_equal(layer.fc1.weight.numpy().T, module.fc1.weight.detach().numpy())
    assert os.listdir(tmp_path) == []


def test_without_auto_weights_no_weight_is_copied():
    torch.manual_seed(7)
    layer, module = PNet(), TNet()
    inp = pair_inputs(x=rand(3, 4))
    before = user_state(layer, module, inp)
    assert not padiff.compare(layer, module, inp)
    assert_same_state(before, user_state(layer, module, inp))


@pytest.mark.parametrize("log_env", [True, False])
def test_auto_diff_writes_only_in_its_log_directory(log_env, tmp_path, monkeypatch, capsys):
    layer, module, inp = _lived_in()
    with torch.no_grad():
        module.fc2.bias.add_(0.5)
    before = user_state(layer, module, inp)
    work, logs = tmp_path / "work", tmp_path / "logs"
    work.mkdir()
    monkeypatch.chdir(work)
    if log_env:
        monkeypatch.setenv("PADIFF_LOG_DIR", str(logs))
    else:
        monkeypatch.delenv("PADIFF_LOG_DIR", raising=False)
    assert padiff.auto_diff(layer, module, inp, options={"atol": 1e-6}) is False
    assert capsys.readouterr().out
    assert os.listdir(work) == ([] if log_env else ["padiff_logs"])  # the default log root is ./padiff_logs
    assert set(os.listdir(tmp_path)) <= {"logs", "work"}
    assert_same_state(before, user_state(layer, module, inp))


def test_assign_weight_changes_only_paddle_weights():
    torch.manual_seed(3)
    layer, module = PNet(), TNet()
    inp = pair_inputs(x=rand(3, 4))
    before = user_state(layer, module, inp)
    assert padiff.assign_weight(layer, module)
    after = user_state(layer, module, inp)
    assert_same_state({k: v for k, v in before.items() if not k.startswith("paddle.fc")}, after)
    assert_same_state(before, after, except_values=True)


@pytest.mark.parametrize("bad", [
    lambda inp: (inp[1], inp[0]),
    lambda inp: ({"nope": inp[0]["x"]}, inp[1]),
    lambda inp: inp[0],
])
def test_input_errors_leave_inputs_untouched(bad):
    layer, module, inp = _lived_in()
    before = user_state(layer, module, inp)
    with pytest.raises(InputError):
        padiff.compare(layer, module, bad(inp))
    assert_same_state(before, user_state(layer, module, inp))


class _TWiderHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 6)
        self.fc2 = torch.nn.Linear(6, 5)  # paddle's is 6 -> 3

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def test_a_failed_weight_copy_copies_nothing(capsys):
    layer, module = PNet(), _TWiderHead()
    inp = pair_inputs(x=rand(3, 4))
    before = user_state(layer, module, inp)
    assert padiff.assign_weight(layer, module) is False  # fc1 could be copied, fc2 cannot: all or nothing
    captured = capsys.readouterr()
    assert "fc2" in captured.out + captured.err  # says why
    assert_same_state(before, user_state(layer, module, inp))
    rep = padiff.compare(layer, module, inp, auto_weights=True)
    assert not rep and rep.first_diff.stage == "assign_weight"
    assert_same_state(before, user_state(layer, module, inp))


@pytest.mark.parametrize("with_input", [True, False])
def test_suggest_layer_map_leaves_everything_and_writes_nothing_here(with_input, tmp_path, monkeypatch):
    layer, module, inp = _lived_in()
    before = user_state(layer, module, inp)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(5)
    lm = padiff.suggest_layer_map(layer, module, inp if with_input else None)
    assert isinstance(lm, padiff.LayerMap)
    assert_same_state(before, user_state(layer, module, inp))
    assert os.listdir(tmp_path) == []
    after = torch.rand(3)
    torch.manual_seed(5)
    assert torch.equal(after, torch.rand(3))


def test_inputs_computed_from_other_tensors_do_not_leak_gradients_upstream(recwarn):
    layer, module, _ = net_pair()
    p_leaf = paddle.to_tensor(rand(3, 4))
    p_leaf.stop_gradient = False
    t_leaf = torch.tensor(rand(3, 4), requires_grad=True)
    encoder = torch.nn.Linear(4, 4)  # the user's other model produced the input
    t_in = encoder(t_leaf)
    p_in = paddle.to_tensor(t_in.detach().numpy()) * 1.0
    p_in = p_in + 0 * p_leaf  # non-leaf on the paddle side too
    rep = padiff.compare(layer, module, ({"x": p_in}, {"x": t_in}), options={"atol": 1e-6})
    assert rep, rep.first_diff
    assert [r.item for r in rep.by_stage("backward") if r.paddle_path == ""] == ["grad of input"]
    assert t_leaf.grad is None and p_leaf.grad is None and encoder.weight.grad is None
    assert not [w for w in recwarn if "not a leaf" in str(w.message)]


def test_a_forward_that_raises_inside_no_grad_leaves_grad_mode_on():
    class TRaisesInNoGrad(TNet):
        def forward(self, x):
            with torch.no_grad():
                self.fc1(x)
                raise RuntimeError("inside no_grad")

    layer, module, inp = _swap(cls_t=TRaisesInNoGrad)
    before = user_state(layer, module, inp)
    with pytest.raises(ModelRunError):
        padiff.compare(layer, module, inp)
    assert_same_state(before, user_state(layer, module, inp))
    assert torch.is_grad_enabled() and paddle.is_grad_enabled()
