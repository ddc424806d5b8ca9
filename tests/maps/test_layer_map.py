"""Every LayerMap method, checked through ``resolve()`` against live models, and ``auto()``."""

from __future__ import annotations

import logging

import paddle
import pytest
import torch
from models.special_pairs import (
    Nop,
    PaddleAttnBlock,
    PaddleEmbLSTM,
    PaddleWithNop,
    TorchAttnBlock,
    TorchEmbLSTM,
    TorchNoNop,
)

from padiff.errors import MappingError
from padiff.layer_map import LayerMap


class PaddleNested(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.block = paddle.nn.Sequential(paddle.nn.Linear(4, 4), Nop(), paddle.nn.Linear(4, 4))
        self.nop = Nop()
        self.head = paddle.nn.Linear(4, 2)


class TorchNested(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
        self.head = torch.nn.Linear(4, 2)


def test_map_dict_resolves_to_opaque_pairs_with_paths_and_classes():
    layer, module = PaddleNested(), TorchNested()
    resolved = LayerMap.coerce({layer.block: module.block}).resolve(layer, module)
    (pair,) = resolved.pairs
    assert (pair.paddle_path, pair.torch_path, pair.paddle_class, pair.torch_class) == \
        ("block", "block", "Sequential", "Sequential")
    assert pair.opaque
    assert resolved.opaque_paths("paddle") == frozenset({"block"})


def test_map_attribute_on_a_layermap_object():
    layer, module = PaddleNested(), TorchNested()
    lm = LayerMap()
    lm.map = {layer.head: module.head}
    assert [(p.paddle_path, p.torch_path) for p in lm.resolve(layer, module).pairs] == [("head", "head")]


def test_ignore_skips_the_layer_itself_only():
    layer, module = PaddleNested(), TorchNested()
    lm = LayerMap()
    lm.ignore(layer.block)
    r = lm.resolve(layer, module)
    assert r.skipped("paddle", "block")
    assert not r.skipped("paddle", "block.0") and not r.hidden("paddle", "block")


@pytest.mark.parametrize("method", ["ignore_recursivly", "ignore_recursively"])
def test_ignore_recursively_and_its_original_spelling(method):
    layer, module = PaddleNested(), TorchNested()
    lm = LayerMap()
    getattr(lm, method)(layer.block)
    r = lm.resolve(layer, module)
    assert r.hidden("paddle", "block") and r.hidden("paddle", "block.2") and r.skipped("paddle", "block.0")
    assert not r.skipped("paddle", "head")


def test_ignore_works_on_the_torch_side_too():
    layer, module = PaddleNested(), TorchNested()
    lm = LayerMap()
    lm.ignore_recursively(module.block)
    r = lm.resolve(layer, module)
    assert r.hidden("torch", "block.1") and not r.hidden("paddle", "block.1")


def test_ignore_class_skips_every_instance_under_the_root():
    layer, module = PaddleNested(), TorchNested()
    lm = LayerMap()
    lm.ignore_class(layer, Nop)
    r = lm.resolve(layer, module)
    assert r.skipped("paddle", "nop") and r.skipped("paddle", "block.1")
    assert not r.skipped("paddle", "block.0")


def test_ignore_class_is_limited_to_the_given_subtree():
    layer, module = PaddleNested(), TorchNested()
    lm = LayerMap()
    lm.ignore_class(layer.block, Nop)
    r = lm.resolve(layer, module)
    assert r.skipped("paddle", "block.1") and not r.skipped("paddle", "nop")


def test_resolve_rejects_layers_of_other_models():
    layer, module = PaddleNested(), TorchNested()
    lm = LayerMap()
    lm.map = {paddle.nn.Linear(1, 1): module.head}
    with pytest.raises(MappingError, match="not a sublayer"):
        lm.resolve(layer, module)


def test_auto_on_mha(caplog):
    layer, module = PaddleAttnBlock(), TorchAttnBlock()
    with caplog.at_level(logging.INFO, logger="padiff"):
        lm = LayerMap().auto(layer, module)
    assert lm.map == {layer.attn: module.attn}
    assert [(p.paddle_path, p.torch_path, p.opaque) for p in lm.resolve(layer, module).pairs] == \
        [("attn", "attn", True)]
    assert "attn" in caplog.text and "MultiheadAttention" in caplog.text


def test_auto_on_lstm():
    layer, module = PaddleEmbLSTM(), TorchEmbLSTM()
    lm = LayerMap().auto(layer, module)
    assert lm.map == {layer.lstm: module.lstm}


class PaddleGRUNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.proj = paddle.nn.Linear(4, 4)
        self.rnn = paddle.nn.GRU(4, 3, num_layers=2)


class TorchGRUNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = torch.nn.GRU(4, 3, num_layers=2)  # defined first, another name
        self.fc = torch.nn.Linear(4, 4)


def test_auto_on_gru_with_other_names_and_order():
    layer, module = PaddleGRUNet(), TorchGRUNet()
    lm = LayerMap().auto(layer, module)
    assert lm.map == {layer.rnn: module.gru}


def test_auto_finds_nothing_in_plain_models():
    layer, module = PaddleWithNop(), TorchNoNop()
    assert LayerMap().auto(layer, module).map == {}
