"""A proposal never changes a model: attributes a forward caches during export or recording are put back."""

from __future__ import annotations

import numpy as np
import paddle
import torch
from models.port_pairs import PaddleCacheNet, TorchCacheNet, inputs

import padiff
from padiff.adapters import PADDLE, TORCH
from padiff.adapters.attrs import AttributeSnapshot


def test_suggest_layer_map_leaves_forward_caches_as_they_were():
    layer, module = PaddleCacheNet(), TorchCacheNet()
    inp = inputs(2, 16)
    lm = padiff.suggest_layer_map(layer, module, inp)
    assert lm.route == "graph"  # the export failed, the eager forwards were recorded instead
    assert layer.table is None and module.table is None
    assert layer.calls == 0 and module.calls == 0
    with torch.no_grad():  # and the next forward runs as the model's first one
        want = module(**inp[1]).numpy()
    got = layer(**inp[0]).numpy()
    assert got.shape == want.shape


def test_attribute_snapshot_puts_back_rebound_added_and_container_entries():
    layer = PaddleCacheNet()
    layer.lin.extra = [1]
    snap = AttributeSnapshot.take(PADDLE, layer)
    weight = layer.lin.weight
    layer.table = paddle.ones([16])  # rebound
    layer.lin.cache = paddle.ones([2])  # added
    layer.lin.extra.append(paddle.ones([1]))  # a container changed in place
    layer.calls = 5
    snap.restore()
    assert layer.table is None and "cache" not in layer.lin.__dict__ and layer.lin.extra == [1]
    assert layer.calls == 0 and layer.lin.weight is weight


def test_attribute_snapshot_on_torch_keeps_parameters_and_buffers():
    module = TorchCacheNet()
    module.register_buffer("buf", torch.zeros(3))
    snap = AttributeSnapshot.take(TORCH, module)
    buf = module.buf
    module.buf = torch.ones(3)
    module.table = torch.ones(16)
    module.lin.weight = torch.nn.Parameter(torch.zeros(16, 16))
    snap.restore()
    assert module.buf is buf and module.table is None
    assert not np.all(module.lin.weight.detach().numpy() == 0)
