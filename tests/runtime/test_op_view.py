"""The op view (README "Down to the operation"): the first differing framework op inside the first differing pair.

Each case is a real port mistake; the op view must name the op on both sides, the setting
that differs where it can be read, and the user's source line on each side (looked up by
markers in tests/models/op_pairs.py). A correct port of the same models gets no op record.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch
from models import op_pairs as M
from models.basic import inputs, rand

import padiff
from padiff.adapters import PADDLE, TORCH
from padiff.adapters.paddle_ops import patched_names
from padiff.options import DiffOptions
from padiff.report.html import render_html
from padiff.report.logs import render_report
from padiff.runtime.ops import op_view

OPTS = {"atol": 1e-6, "rtol": 1e-5}


def _run(p_cls, t_cls, shape, p_kwargs=None, t_kwargs=None):
    torch.manual_seed(0)
    layer, module = p_cls(**(p_kwargs or {})), t_cls(**(t_kwargs or {}))
    rep = padiff.compare(layer, module, inputs(("x", "x", rand(*shape))), auto_weights=True, options=OPTS)
    return rep


CASES = {
    # case: (paddle class, torch class, input shape, first pair, op names, kind, setting differing, where)
    "gelu": (M.PaddleGeluMLP, M.TorchGeluMLP, (3, 8), "fc2", ("F.gelu", "F.gelu"), "gelu",
             ("approximate", "tanh", "none"), "between `fc1` and `fc2`"),
    "scale": (M.PaddleScaled, M.TorchScaled, (3, 6), "b", ("Tensor.__mul__", "Tensor.mul"), "mul",
              ("scalar", 0.5, 0.51), "between `a` and `b`"),
    "eps": (M.PaddleNormed, M.TorchNormed, (3, 8), "norm", ("Tensor.__add__", "Tensor.add"), "add",
            ("scalar", 1e-5, 1e-6), "in `norm`"),
    "heads": (M.PaddleAttnBlock, M.TorchAttnBlock, (2, 3, 8), "attn.o", ("Tensor.reshape", "Tensor.view"), "reshape",
              None, "in `attn`, between `attn.q` and `attn.k`"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_names_the_op_with_both_source_lines(case):
    p_cls, t_cls, shape, pair, names, kind, setting, where = CASES[case]
    rep = _run(p_cls, t_cls, shape)
    first = rep.first_diff
    assert not rep and first.stage == "forward" and first.paddle_path == pair
    op = first.op
    assert op is not None, rep.warnings
    assert (op.paddle_op, op.torch_op, op.kind) == (*names, kind)
    assert op.where == where
    assert op.paddle_frame[0] == M.__file__ and op.paddle_frame[1] == M.marked_line(case, "paddle")
    assert op.torch_frame[0] == M.__file__ and op.torch_frame[1] == M.marked_line(case, "torch")
    assert op.inputs_agree
    if setting is None:
        assert op.paddle_shape != op.torch_shape  # the heads came out in another layout
    else:
        assert op.args == (setting,)
        assert op.stats is not None and not op.stats.passed


def test_correct_ports_get_no_op_record():
    rep = _run(M.PaddleGeluMLP, M.TorchGeluMLP, (3, 8), p_kwargs={"approximate": False})
    assert rep and rep.first_diff is None
    rep = _run(M.PaddleScaled, M.TorchScaled, (3, 6), t_kwargs={"factor": 0.5})
    assert rep
    rep = _run(M.PaddleAttnBlock, M.TorchAttnBlock, (2, 3, 8), p_kwargs={"transposed": False})
    assert rep


def test_reports_show_the_op():
    rep = _run(M.PaddleGeluMLP, M.TorchGeluMLP, (3, 8))
    text = render_report(rep, write_log=False)
    assert "first op" in text and "approximate='tanh' vs 'none'" in text
    assert f"op_pairs.py:{M.marked_line('gelu', 'paddle')}" in text
    assert "between `fc1` and `fc2`: F.gelu" in render_html(rep)
    d = rep.to_dict()["first_diff"]["op"]
    assert d["paddle_op"] == "F.gelu" and d["args"] == [["approximate", "tanh", "none"]]
    assert d["torch_frame"][1] == M.marked_line("gelu", "torch")


def _identities():
    return [(owner, name, obj) for owner, name, obj in patched_names()]


def _torch_modes() -> int:
    return torch._C._len_torch_function_stack()


def test_nothing_stays_patched_and_models_are_as_before():
    before = _identities()
    torch.manual_seed(0)
    layer, module = M.PaddleNormed(), M.TorchNormed()
    p_state = {k: v.numpy().copy() for k, v in layer.state_dict().items()}
    t_state = {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}
    rep = padiff.compare(layer, module, inputs(("x", "x", rand(3, 8))), options=OPTS)
    assert rep.first_diff.op is not None
    after = _identities()
    assert len(before) == len(after) > 500
    assert all(a[2] is b[2] for a, b in zip(before, after))
    assert _torch_modes() == 0
    assert all(np.array_equal(v.numpy(), p_state[k]) for k, v in layer.state_dict().items())
    assert all(np.array_equal(v.detach().numpy(), t_state[k]) for k, v in module.state_dict().items())


def test_op_view_puts_running_statistics_back():
    class PaddleBN(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc, self.bn, self.out = paddle.nn.Linear(4, 4), paddle.nn.BatchNorm1D(4), paddle.nn.Linear(4, 2)

        def forward(self, x):
            return self.out(paddle.nn.functional.gelu(self.bn(self.fc(x)), approximate=True))

    class TorchBN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.bn, self.out = torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.out(torch.nn.functional.gelu(self.bn(self.fc(x))))

    layer, module = PaddleBN(), TorchBN()
    p_inp, t_inp = inputs(("x", "x", rand(5, 4)))
    rep = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True, options=OPTS)
    first = rep.first_diff
    assert first.op is not None and first.op.kind == "gelu"
    p_stats = [PADDLE.to_numpy(b) for b in layer.buffers()]
    t_stats = [TORCH.to_numpy(b) for b in module.buffers() if b.is_floating_point()]
    modes = (layer.training, module.training)
    again = op_view(layer, module, p_inp, t_inp, first, rep.mapping, DiffOptions.from_mapping(OPTS))
    assert again is not None and again.kind == "gelu"
    assert all(np.array_equal(PADDLE.to_numpy(b), a) for b, a in zip(layer.buffers(), p_stats))
    assert all(np.array_equal(TORCH.to_numpy(b), a)
               for b, a in zip([b for b in module.buffers() if b.is_floating_point()], t_stats))
    assert (layer.training, module.training) == modes
    assert PADDLE.hook_count(layer) == 0 and TORCH.hook_count(module) == 0


def test_a_re_run_that_raises_leaves_the_layer_verdict_and_says_why(monkeypatch):
    from padiff.runtime.ops import rerun

    def broken(*args, **kwargs):
        raise RuntimeError("second forward not allowed")

    monkeypatch.setattr(rerun, "_capture", broken)
    before = _identities()
    rep = _run(M.PaddleGeluMLP, M.TorchGeluMLP, (3, 8))
    assert not rep and rep.first_diff.paddle_path == "fc2" and rep.first_diff.op is None
    assert any("op view could not re-run" in w and "second forward not allowed" in w for w in rep.warnings)
    assert all(a[2] is b[2] for a, b in zip(before, _identities()))


def test_single_step_hides_a_forward_fault_the_op_view_still_names():
    torch.manual_seed(0)
    rep = padiff.compare(M.PaddleGeluMLP(), M.TorchGeluMLP(), inputs(("x", "x", rand(3, 8))), auto_weights=True,
                         options={**OPTS, "single_step": True})
    first = rep.first_diff
    assert not rep and first.stage != "forward"  # every synchronised forward compare passed
    assert first.op is not None and first.op.kind == "gelu" and first.op.where == "between `fc1` and `fc2`"
    assert "single_step" in first.op.note
