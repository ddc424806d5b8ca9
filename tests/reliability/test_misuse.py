"""Misuse gets a clear PadiffError naming what was wrong and what to do — never a framework traceback."""

from __future__ import annotations

import math

import numpy as np
import paddle
import pytest
import torch
from reliability._helpers import PNet, TNet, copy_weights, net_pair, pair_inputs, rand

import padiff
from padiff import InputError, ModelRunError, OptionsError, PadiffError

# --- example_inp ----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda p, t: p,                      # one dict
    lambda p, t: None,
    lambda p, t: [p, t, t],              # three halves
    lambda p, t: (p["x"], t["x"]),       # tensors, not dicts
    lambda p, t: "x",
    lambda p, t: {"paddle": p, "torch": t},
], ids=["one-dict", "none", "three", "tensors", "string", "dict-of-dicts"])
def test_example_inp_not_a_pair_of_dicts(make):
    layer, module, (p, t) = net_pair()
    with pytest.raises(InputError, match=r"pair of dicts \(paddle_input, torch_input\)"):
        padiff.compare(layer, module, make(p, t))


def test_halves_swapped_are_named_as_swapped():
    layer, module, (p, t) = net_pair()
    with pytest.raises(InputError, match="swapped") as info:
        padiff.compare(layer, module, (t, p))
    assert "(paddle_input, torch_input)" in str(info.value)


@pytest.mark.parametrize("which", ["paddle", "torch"])
def test_one_half_holds_the_other_frameworks_tensors(which):
    layer, module, (p, t) = net_pair()
    inp = (t, t) if which == "paddle" else (p, p)
    with pytest.raises(InputError, match=f"the {which} half of example_inp") as info:
        padiff.compare(layer, module, inp)
    assert ("paddle.to_tensor" if which == "paddle" else "torch.from_numpy") in str(info.value)


def test_models_swapped():
    layer, module, inp = net_pair()
    with pytest.raises(InputError, match="models are swapped"):
        padiff.compare(module, layer, inp)
    with pytest.raises(InputError, match=r"must be a torch\.nn\.Module"):
        padiff.compare(layer, PNet(), inp)
    with pytest.raises(InputError, match=r"must be a paddle\.nn\.Layer"):
        padiff.compare(TNet(), module, inp)


@pytest.mark.parametrize("side", ["paddle", "torch"])
def test_a_key_the_forward_does_not_take(side):
    layer, module, (p, t) = net_pair()
    inp = ({"y": p["x"]}, t) if side == "paddle" else (p, {"y": t["x"]})
    with pytest.raises(InputError) as info:
        padiff.compare(layer, module, inp)
    msg = str(info.value)
    assert f"the {side} model's forward does not take 'y'" in msg and "it takes 'x'" in msg


def test_a_key_the_forward_requires_is_missing():
    layer, module, (_, t) = net_pair()
    with pytest.raises(InputError, match="lacks 'x'"):
        padiff.compare(layer, module, ({}, t))


@pytest.mark.parametrize("side", ["paddle", "torch"])
def test_wrong_input_shape_is_the_models_own_error_with_model_and_layer(side):
    layer, module, (p, t) = net_pair()
    bad = rand(3, 5)
    inp = ({"x": paddle.to_tensor(bad)}, t) if side == "paddle" else (p, {"x": torch.tensor(bad)})
    with pytest.raises(ModelRunError) as info:
        padiff.compare(layer, module, inp)
    msg = str(info.value)
    assert f"the {side} model raised during forward" in msg
    assert "inside layer fc1 (Linear)" in msg
    assert f"Check the {side} half of example_inp" in msg
    assert info.value.__cause__ is not None  # the framework's own error is chained, not lost


class _PaddleRootRaises(PNet):
    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h.reshape([-1, 7]))  # the root's own code fails, after fc1 returned


class _TorchInnerRaises(TNet):
    def __init__(self):
        super().__init__()
        self.block = _TorchBlockRaises()

    def forward(self, x):
        return self.block(self.fc2(torch.tanh(self.fc1(x))))


class _TorchBlockRaises(torch.nn.Module):  # no parameters: padiff does not hook it
    def forward(self, h):
        return h.view(-1)[100]


def test_the_raising_layer_is_named_even_when_padiff_does_not_hook_it():
    layer, module, inp = _PaddleRootRaises(), TNet(), pair_inputs(x=rand(3, 4))
    with pytest.raises(ModelRunError, match=r"inside layer <root> \(_PaddleRootRaises\)"):
        padiff.compare(layer, module, inp)
    layer, module = PNet(), _TorchInnerRaises()
    with pytest.raises(ModelRunError, match=r"torch model raised during forward .*inside layer block "
                                            r"\(_TorchBlockRaises\)"):
        padiff.compare(layer, module, inp)


# --- options ---------------------------------------------------------------------------------
def test_unknown_option_keys_name_the_valid_ones():
    layer, module, inp = net_pair()
    with pytest.raises(OptionsError) as info:
        padiff.compare(layer, module, inp, options={"atoll": 1e-5, "mode": "strict"})
    msg = str(info.value)
    assert "'atoll'" in msg and "'mode'" in msg
    for key in ("atol", "rtol", "diff_phase", "compare_mode", "single_step"):
        assert key in msg


@pytest.mark.parametrize("options, match", [
    ({"diff_phase": "backward"}, "only valid with single_step=True"),
    ({"diff_phase": "sideways"}, "'diff_phase' must be one of 'both', 'forward', 'backward'"),
    ({"compare_mode": "max"}, "'compare_mode' must be one of 'mean', 'strict'"),
    ({"atol": -1e-6}, "'atol' must be a finite number >= 0"),
    ({"rtol": -1}, "'rtol' must be a finite number >= 0"),
    ({"atol": math.nan}, "'atol' must be a finite number >= 0"),
    ({"rtol": math.inf}, "'rtol' must be a finite number >= 0"),
    ({"atol": 10 ** 400}, "'atol' must be a finite number >= 0"),
    ({"atol": "1e-5"}, "'atol' must be a number"),
    ({"atol": True}, "'atol' must be a number"),
    ({"single_step": "yes"}, "'single_step' must be True or False"),
    ({"diff_phase": np.array(["both"])}, "'diff_phase' must be one of"),
], ids=lambda v: str(v)[:30])
def test_bad_option_values(options, match):
    layer, module, inp = net_pair()
    with pytest.raises(OptionsError, match=match):
        padiff.compare(layer, module, inp, options=options)


def test_numpy_numbers_are_valid_tolerances():
    layer, module, inp = net_pair()
    rep = padiff.compare(layer, module, inp, options={"atol": np.float32(1e-5), "rtol": np.float64(1e-4)})
    assert rep, rep.first_diff
    assert rep.options["atol"] == pytest.approx(1e-5) and isinstance(rep.options["atol"], float)


def test_options_must_be_a_dict():
    layer, module, inp = net_pair()
    with pytest.raises(OptionsError, match="options must be a dict"):
        padiff.compare(layer, module, inp, options=[("atol", 1e-5)])


def _opts(layer, module):
    return [paddle.optimizer.SGD(0.1, parameters=layer.parameters()), torch.optim.SGD(module.parameters(), lr=0.1)]


def test_steps_rules():
    layer, module, inp = net_pair()
    with pytest.raises(OptionsError, match=r"steps=2 needs optimizer=\[paddle_opt, torch_opt\]"):
        padiff.compare(layer, module, inp, steps=2)
    with pytest.raises(OptionsError, match="steps=3 needs diff_phase='both'"):
        padiff.compare(layer, module, inp, steps=3, optimizer=_opts(layer, module), options={"diff_phase": "forward"})
    with pytest.raises(OptionsError, match="cannot be combined with single_step"):
        padiff.compare(layer, module, inp, steps=2, optimizer=_opts(layer, module), options={"single_step": True})
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(OptionsError, match="steps must be"):
            padiff.compare(layer, module, inp, steps=bad)


def test_auto_weights_must_be_a_bool():
    layer, module, inp = net_pair()
    with pytest.raises(OptionsError, match="auto_weights must be True or False"):
        padiff.compare(layer, module, inp, auto_weights="yes")


@pytest.mark.parametrize("loss_fn, match", [
    (lambda o: o.mean(), r"loss_fn must be \[paddle_fn, torch_fn\].*got function"),
    ([lambda o: o.mean()] * 3, "got a list of 3 item"),
    ((lambda o: o.mean(),), "got a tuple of 1 item"),
    ([lambda o: o.mean(), "mean"], "both items of loss_fn must be callables"),
])
def test_loss_fn_not_a_pair(loss_fn, match):
    layer, module, inp = net_pair()
    with pytest.raises(OptionsError, match=match):
        padiff.compare(layer, module, inp, loss_fn=loss_fn)


def test_optimizer_not_a_pair_or_swapped():
    layer, module, inp = net_pair()
    p_opt, t_opt = _opts(layer, module)
    with pytest.raises(OptionsError, match=r"optimizer must be \[paddle_opt, torch_opt\].*got SGD"):
        padiff.compare(layer, module, inp, optimizer=p_opt)
    with pytest.raises(OptionsError, match="got a list of 3 item"):
        padiff.compare(layer, module, inp, optimizer=[p_opt, t_opt, t_opt])
    with pytest.raises(OptionsError, match="the torch optimizer must be an optimizer or a zero-argument callable"):
        padiff.compare(layer, module, inp, optimizer=[p_opt, 0.1])
    with pytest.raises(OptionsError, match="optimizer is swapped"):
        padiff.compare(layer, module, inp, optimizer=[t_opt, p_opt])


@pytest.mark.parametrize("make, match", [
    (lambda: [lambda o: o * 2, lambda o: o * 2], r"returned a tensor of shape \[3, 3\]; it must return a scalar"),
    (lambda: [lambda o: o.mean(), lambda o: o * 2], r"loss_fn for torch returned a tensor of shape \[3, 3\]"),
    (lambda: [lambda o: 1.0, lambda o: 1.0], "must return a paddle tensor, got float"),
    (lambda: [lambda o: o.mean(), lambda o: o.mean().item()], "must return a torch tensor, got float"),
])
def test_a_loss_that_is_not_a_scalar_tensor(make, match):
    layer, module, inp = net_pair()
    with pytest.raises(OptionsError, match=match):
        padiff.compare(layer, module, inp, loss_fn=make())


def test_optimizer_with_forward_only_is_a_warning_not_silence():
    layer, module, inp = net_pair()
    rep = padiff.compare(layer, module, inp, optimizer=_opts(layer, module),
                         options={"diff_phase": "forward", "atol": 1e-6})
    assert rep
    assert any("optimizer is not used with diff_phase='forward'" in w for w in rep.warnings)


def test_every_misuse_error_is_a_padiff_error():
    """One catch clause is enough for a user: all of the above derive from PadiffError."""
    for cls in (InputError, OptionsError, ModelRunError, padiff.MappingError, padiff.MapFileError,
                padiff.WeightAssignError, padiff.ExportError):
        assert issubclass(cls, PadiffError)
    assert not issubclass(padiff.PadiffInternalError, PadiffError)


def test_input_dicts_with_different_keys_per_side():
    class TNetY(TNet):
        def forward(self, y):
            return super().forward(y)

    layer, module = PNet(), TNetY()
    copy_weights(layer, module)
    a = rand(3, 4)
    rep = padiff.compare(layer, module, ({"x": paddle.to_tensor(a)}, {"y": torch.tensor(a)}), options={"atol": 1e-6})
    assert rep, rep.first_diff


def test_assign_weight_and_auto_diff_name_swapped_models_too():
    layer, module, inp = net_pair()
    with pytest.raises(InputError, match="models are swapped"):
        padiff.assign_weight(module, layer)
    with pytest.raises(InputError, match="models are swapped"):
        padiff.auto_diff(module, layer, inp)


def test_auto_diff_raises_for_misuse_and_returns_false_for_differences():
    layer, module, inp = net_pair()
    with pytest.raises(OptionsError):
        padiff.auto_diff(layer, module, inp, options={"tol": 1})
    with torch.no_grad():
        module.fc1.weight.mul_(1.1)
    assert padiff.auto_diff(layer, module, inp, options={"atol": 1e-6}) is False


def test_a_detached_loss_is_explained():
    layer, module, inp = net_pair()
    with pytest.raises(ModelRunError, match="a loss_fn that detaches") as info:
        padiff.compare(layer, module, inp, loss_fn=[lambda o: o.mean().detach(), lambda o: o.mean().detach()])
    assert "diff_phase': 'forward'" in str(info.value)


@pytest.mark.parametrize("how", ["script", "trace", "scripted-submodule"])
def test_compiled_torch_models_are_named(how):
    layer, module, inp = net_pair()
    if how == "script":
        module = torch.jit.script(module)
    elif how == "trace":
        module = torch.jit.trace(module, (inp[1]["x"],))
    else:
        module.fc2 = torch.jit.script(module.fc2)
    where = " at fc2" if how == "scripted-submodule" else ""
    with pytest.raises(InputError, match=f"the torch model{where} is compiled .*torch.jit.script/trace"):
        padiff.compare(layer, module, inp)


def test_a_loaded_static_paddle_model_is_named(tmp_path):
    layer, module, inp = net_pair()
    path = str(tmp_path / "net")
    paddle.jit.save(layer, path, input_spec=[paddle.static.InputSpec([None, 4], "float32")])
    loaded = paddle.jit.load(path)
    with pytest.raises(InputError, match=r"the paddle model is compiled \((Pir)?TranslatedLayer\)"):
        padiff.compare(loaded, module, inp)


class _PStaticForward(PNet):
    @paddle.jit.to_static(full_graph=True)
    def forward(self, x):
        return self.fc2(paddle.tanh(self.fc1(x)))


@pytest.mark.parametrize("how", ["to_static-call", "decorated-forward"])
def test_to_static_paddle_models_are_named_and_the_switch_works(how):
    layer, module, inp = net_pair()
    if how == "to_static-call":
        layer = paddle.jit.to_static(layer, full_graph=True)
    else:
        static = _PStaticForward()
        static.set_state_dict(layer.state_dict())
        layer = static
    with pytest.raises(InputError, match=r"paddle.jit.enable_to_static\(False\)"):
        padiff.compare(layer, module, inp)
    paddle.jit.enable_to_static(False)
    try:
        assert padiff.compare(layer, module, inp, options={"atol": 1e-6})
    finally:
        paddle.jit.enable_to_static(True)


def test_torch_compile_models_are_named():
    layer, module, inp = net_pair()
    with pytest.raises(InputError, match=r"module\._orig_mod"):
        padiff.compare(layer, torch.compile(module), inp)


def test_auto_diff_names_unknown_keyword_arguments():
    layer, module, inp = net_pair()
    with pytest.raises(OptionsError, match=r"unknown argument\(s\) 'optimiser'.*It takes layer, module"):
        padiff.auto_diff(layer, module, inp, optimiser=None)
    with pytest.raises(OptionsError, match=r"'atol' given both in options and as a keyword"):
        padiff.auto_diff(layer, module, inp, options={"atol": 1e-3}, atol=1e-5)


def test_option_names_are_accepted_as_keywords_like_older_padiff():
    layer, module, inp = net_pair()
    copy_weights(layer, module)
    strict = padiff.compare(layer, module, inp, atol=0.0, rtol=0.0, compare_mode="strict", diff_phase="forward")
    assert strict.options["compare_mode"] == "strict" and strict.options["diff_phase"] == "forward"
    assert {r.stage for r in strict.records} == {"forward", "loss"}
    assert padiff.auto_diff(layer, module, inp, atol=1e-4, rtol=1e-3, single_step=True) is True


def test_suggest_layer_map_says_when_the_models_are_swapped():
    import paddle
    import torch

    with pytest.raises(padiff.InputError, match=r"swapped.*suggest_layer_map"):
        padiff.suggest_layer_map(torch.nn.Linear(2, 2), paddle.nn.Linear(2, 2))
