"""PaConvert's torch-compatible paddle layers (``paddle.compat.nn``) are copied and compared in torch's layout."""

from __future__ import annotations

import numpy as np
import paddle
import torch
from models.port_pairs import CompatNet, TorchNet, inputs

import padiff


def _opts(layer: CompatNet, module: TorchNet) -> list:
    return [paddle.optimizer.SGD(0.1, parameters=layer.parameters()), torch.optim.SGD(module.parameters(), 0.1)]


def test_assign_weight_copies_compat_linears_untransposed_square_and_not():
    layer, module = CompatNet(), TorchNet()
    assert padiff.assign_weight(layer, module)
    for name in ("square", "wide", "narrow"):
        np.testing.assert_array_equal(getattr(layer, name).weight.numpy(),
                                      getattr(module, name).weight.detach().numpy())
    x = inputs(3, 2, 8)
    with torch.no_grad():
        want = module(**x[1]).numpy()
    np.testing.assert_allclose(layer(**x[0]).numpy(), want, atol=1e-5)


def test_assign_weight_copies_compat_multihead_attention_by_name():
    layer, module = CompatNet(), TorchNet()
    assert padiff.assign_weight(layer, module)
    t_params = dict(module.attn.named_parameters())
    for name, p in layer.attn.named_parameters():
        np.testing.assert_array_equal(p.numpy(), t_params[name].detach().numpy())


def test_auto_diff_passes_a_converted_port_forward_grads_and_trained_weights():
    layer, module = CompatNet(), TorchNet()
    rep = padiff.compare(layer, module, inputs(3, 2, 8), auto_weights=True, layer_map="auto", steps=2,
                         optimizer=_opts(layer, module), options={"atol": 1e-5, "rtol": 1e-4})
    assert rep, rep.first_diff
    stages = {r.stage for r in rep.records}
    assert {"grad", "weight"} <= stages, stages  # gradients and trained weights were compared (in torch's layout)


def test_auto_diff_still_names_a_planted_fault():
    layer, module = CompatNet(fault=0.05), TorchNet()
    rep = padiff.compare(layer, module, inputs(3, 2, 8), auto_weights=True, layer_map="auto",
                         options={"atol": 1e-5, "rtol": 1e-4})
    assert not rep
    # the fault is added between narrow and attn: attn is the first layer whose output differs
    assert (rep.first_diff.stage, rep.first_diff.paddle_path, rep.first_diff.torch_path) == ("forward", "attn", "attn")
