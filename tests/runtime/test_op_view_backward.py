"""The op view in backward: the first op whose gradients part, when the first difference is a gradient.

Each pair's forward agrees and its backward does not: a custom PyLayer / autograd.Function
whose hand-written backward is wrong (alone, and on a residual branch ``h + f(h)``, where the
add must not be blamed), a gradient hook that scales a gradient on one side, a scale one side
detaches. With and without ``single_step`` the op is named in backward order, with its source
line on each side (markers in tests/models/grad_pairs.py), and nothing stays patched or hooked.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch
from models import grad_pairs as G
from models import op_pairs as M
from models.basic import inputs, rand

import padiff
from padiff.adapters import PADDLE, TORCH
from padiff.adapters.paddle_ops import patched_names
from padiff.report.html import render_html
from padiff.report.json_report import report_from_dict
from padiff.report.logs import render_report

OPTS = {"atol": 1e-6, "rtol": 1e-5}

CASES = {
    # case: (paddle class, torch class, marker, op names, item, phrase in the note, where)
    "pylayer": (G.PaddleCustomAct, G.TorchCustomAct, "pylayer", ("paddle.tanh", "torch.tanh"), "input 0",
                "custom autograd function returns, PaddleTanh (paddle) and TorchTanh (torch)",
                "between `fc1` and `fc2`"),
    "residual": (G.PaddleResidualAct, G.TorchResidualAct, "pylayer", ("paddle.tanh", "torch.tanh"), "input 0",
                 "custom autograd function returns, PaddleTanh (paddle) and TorchTanh (torch)",
                 "between `fc1` and `fc2`"),
    # the function's body runs two ops; its gradient goes to the first one's input
    "squared": (G.PaddleSquaredAct, G.TorchSquaredAct, "squared", ("Tensor.__mul__", "Tensor.mul"), "input 0",
                "PaddleSquaredReLU (paddle) and TorchSquaredReLU (torch)", "between `fc1` and `fc2`"),
    "hook": (G.PaddleGradHook, G.TorchGradHook, "hook", ("F.linear", "F.linear"), "output 0",
             "gradient hook registered on that tensor (on the paddle side)", "inside `fc1`"),
    # torch's in-place ReLU makes fc1's output a new value: its gradient is not the one fc1's output had
    "inplace": (G.PaddleHookRelu, G.TorchHookInplaceRelu, "inplace", ("F.linear", "F.linear"), "output 0",
                "gradient hook registered on that tensor (on the paddle side)", "inside `fc1`"),
    # the same paddle hook on fc1, followed by code the two ports write differently with equal values
    **{f"hooked-{name}": (getattr(G, f"Paddle{cls}"), getattr(G, f"Torch{cls}"), "hooked", ("F.linear", "F.linear"),
                          "output 0", "gradient hook registered on that tensor (on the paddle side)", "inside `fc1`")
       for name, cls in (("swapped-operands", "SwappedMul"), ("other-layout", "OtherLayout"),
                         ("full-slice", "FullSlice"), ("reshaped-per-reader", "SharedReshape"))},
    "detach": (G.PaddleDetachedScale, G.TorchDetachedScale, "detach", ("Tensor.__truediv__", "Tensor.div"), "input 1",
               "on the torch side only", "between `fc1` and `fc2`"),
}


def _run(p_cls, t_cls, single_step=False, **p_kwargs):
    torch.manual_seed(0)
    return padiff.compare(p_cls(**p_kwargs), t_cls(), inputs(("x", "x", rand(3, 8))), auto_weights=True,
                          options={**OPTS, "single_step": single_step})


@pytest.mark.parametrize("single_step", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_gradient_only_fault_is_named_at_its_op(case, single_step):
    p_cls, t_cls, marker, names, item, phrase, where = CASES[case]
    rep = _run(p_cls, t_cls, single_step)
    first = rep.first_diff
    assert not rep and first.stage in ("backward", "grad"), first
    assert not [r for r in rep.records if r.stage == "forward" and not r.passed]  # the forward agrees
    op = first.op
    assert op is not None, rep.warnings
    assert op.phase == "backward" and (op.paddle_op, op.torch_op) == names and op.grad_item == item
    assert op.where == where
    assert phrase in op.note
    assert op.paddle_frame[:2] == (G.__file__, G.marked_line(marker, "paddle"))
    assert op.torch_frame[:2] == (G.__file__, G.marked_line(marker, "torch"))
    assert op.stats is not None and not op.stats.passed


def test_correct_ports_have_no_backward_difference():
    assert _run(G.PaddleGradHook, G.TorchGradHook, factor=1.0)
    assert _run(G.PaddleDetachedScale, G.TorchDetachedScale, detach=False)


def test_a_forward_fault_under_single_step_is_still_named_in_forward():
    torch.manual_seed(0)
    rep = padiff.compare(M.PaddleGeluMLP(), M.TorchGeluMLP(), inputs(("x", "x", rand(3, 8))), auto_weights=True,
                         options={**OPTS, "single_step": True})
    assert rep.first_diff.stage != "forward" and rep.first_diff.op.phase == "forward"
    assert rep.first_diff.op.kind == "gelu"


def test_reports_show_the_backward_op():
    rep = _run(G.PaddleCustomAct, G.TorchCustomAct)
    text = render_report(rep, write_log=False)
    assert "in backward, at op paddle.tanh (paddle) vs torch.tanh (torch) between `fc1` and `fc2`" in text
    assert f"grad_pairs.py:{G.marked_line('pylayer', 'paddle')}" in text
    assert "in backward, at op paddle.tanh" in render_html(rep)
    d = rep.to_dict()
    assert d["first_diff"]["op"]["phase"] == "backward" and d["first_diff"]["op"]["grad_item"] == "input 0"
    again = report_from_dict(d).first_diff.op
    assert again.phase == "backward" and again.summary() == rep.first_diff.op.summary()


def _grads(layer, module, x):
    """Parameter gradients of one plain backward of each model (the models' grads are cleared after)."""
    out = []
    for side, model, inp in ((PADDLE, layer, paddle.to_tensor(x)), (TORCH, module, torch.tensor(x))):
        side.backward(side.mean(model(inp)))
        out.append([side.to_numpy(side.grad(p)) for _, p in sorted(model.named_parameters())])
        side.clear_grads(model)
    return out


def test_nothing_stays_patched_or_hooked_and_models_are_as_before():
    before = list(patched_names())
    torch.manual_seed(0)
    layer, module = G.PaddleResidualAct(), G.TorchResidualAct()
    padiff.assign_weight(layer, module)
    x = rand(3, 8)
    grads = _grads(layer, module, x)
    p_state = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
    t_state = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    rep = padiff.compare(layer, module, inputs(("x", "x", x)), options=OPTS)
    assert rep.first_diff.op is not None and rep.first_diff.op.phase == "backward"
    assert all(a[2] is b[2] for a, b in zip(before, patched_names()))
    assert torch._C._len_torch_function_stack() == 0
    assert all(np.array_equal(v.numpy(), p_state[k]) for k, v in layer.state_dict().items())
    assert all(np.array_equal(v.detach().numpy(), t_state[k]) for k, v in module.state_dict().items())
    assert all(p.grad is None for p in layer.parameters()) and all(p.grad is None for p in module.parameters())
    assert PADDLE.hook_count(layer) == 0 and TORCH.hook_count(module) == 0
    again = _grads(layer, module, x)  # no gradient hook left on a parameter
    assert all(np.array_equal(a, b) for side in range(2) for a, b in zip(grads[side], again[side]))


def test_a_backward_re_run_that_raises_leaves_the_verdict_and_puts_everything_back(monkeypatch):
    from padiff.runtime.ops.grads import GradTrace

    def broken(self, outputs, grads):
        raise RuntimeError("backward refused")

    monkeypatch.setattr(GradTrace, "backward", broken)
    before = list(patched_names())
    torch.manual_seed(0)
    layer, module = G.PaddleCustomAct(), G.TorchCustomAct()
    rep = padiff.compare(layer, module, inputs(("x", "x", rand(3, 8))), auto_weights=True, options=OPTS)
    assert not rep and rep.first_diff.stage == "backward" and rep.first_diff.op is None
    assert any("op view could not re-run" in w and "backward refused" in w for w in rep.warnings)
    assert all(a[2] is b[2] for a, b in zip(before, patched_names()))
    assert torch._C._len_torch_function_stack() == 0
    assert all(p.grad is None for p in layer.parameters()) and all(p.grad is None for p in module.parameters())
    monkeypatch.undo()
    assert padiff.compare(G.PaddleGradHook(factor=1.0), G.TorchGradHook(), inputs(("x", "x", rand(3, 8))),
                          auto_weights=True, options=OPTS)


def test_a_planted_forward_hook_is_named_as_the_differing_op():
    torch.manual_seed(0)
    layer, module = M.PaddleGeluMLP(approximate=False), M.TorchGeluMLP()
    handle = layer.fc1.register_forward_post_hook(lambda lay, args, out: out * 1.05)
    try:
        rep = padiff.compare(layer, module, inputs(("x", "x", rand(3, 8))), auto_weights=True, options=OPTS)
    finally:
        handle.remove()
    op = rep.first_diff.op
    assert rep.first_diff.stage == "forward" and rep.first_diff.paddle_path == "fc1"
    assert (op.paddle_op, op.torch_op, op.only_paddle) == ("Tensor.__mul__", "", ("Tensor.__mul__",))
    assert op.inputs_agree and "already differ" not in op.note
    assert "paddle alone runs Tensor.__mul__" in op.note and "this op is the difference" in op.note
    assert op.paddle_frame[2] == "<lambda>"
    assert "Tensor.__mul__ (paddle only)" in op.summary() and "output shape" not in op.summary()


def test_gradients_are_judged_relative_to_their_size():
    # the re-run's output gradient is padiff's, not the run's: an atol that hides 5% of a small
    # activation gradient must not hide the hook that made the parameter gradients fail
    torch.manual_seed(0)
    rep = padiff.compare(G.PaddleGradHook(), G.TorchGradHook(), inputs(("x", "x", rand(3, 8))), auto_weights=True,
                         options={"atol": 1e-3, "rtol": 1e-3})
    assert rep.first_diff.stage == "grad" and rep.first_diff.op is not None
    assert rep.first_diff.op.paddle_op == "F.linear" and "gradient hook" in rep.first_diff.op.note
