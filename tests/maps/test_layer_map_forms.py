"""The forms of layer maps users of the original PaDiff wrote keep working."""

from __future__ import annotations

import paddle
import pytest
import torch
from models.basic import conv_pair, mlp_pair

from padiff import LayerMap, MappingError


def test_dict_in_either_orientation_resolves_to_the_same_pair():
    layer, module, _ = mlp_pair()
    a = LayerMap.coerce({layer.fc2: module.middle}).resolve(layer, module)
    b = LayerMap.coerce({module.middle: layer.fc2}).resolve(layer, module)
    assert [(p.paddle_path, p.torch_path, p.opaque) for p in a.pairs] == [("fc2", "middle", True)]
    assert [(p.paddle_path, p.torch_path) for p in b.pairs] == [("fc2", "middle")]


def test_map_entry_from_another_model_is_a_clear_error():
    layer, module, _ = mlp_pair()
    stranger = paddle.nn.Linear(2, 2)
    with pytest.raises(MappingError, match="not a sublayer of the paddle model"):
        LayerMap.coerce({stranger: module.middle}).resolve(layer, module)


def test_dict_of_paths_pairs_like_the_dict_of_objects():
    layer, module, _ = mlp_pair()
    by_path = LayerMap.coerce({"fc2": "middle"}).resolve(layer, module)
    by_obj = LayerMap.coerce({layer.fc2: module.middle}).resolve(layer, module)
    assert [(p.paddle_path, p.torch_path, p.opaque) for p in by_path.pairs] == \
        [(p.paddle_path, p.torch_path, p.opaque) for p in by_obj.pairs] == [("fc2", "middle", True)]


def test_dict_path_that_does_not_exist_names_the_side_and_near_paths():
    layer, module, _ = mlp_pair()
    with pytest.raises(MappingError, match=r"torch model has no layer at 'midle'.*Did you mean 'middle'"):
        LayerMap.coerce({"fc2": "midle"}).resolve(layer, module)


def test_ignore_accepts_lists_and_ignore_class_accepts_tuples():
    layer, module, _ = conv_pair()
    lm = LayerMap()
    lm.ignore([layer.stem[2], module.pool])
    lm.ignore_class(layer, (paddle.nn.BatchNorm2D, paddle.nn.ReLU))
    lm.ignore_class(module, torch.nn.BatchNorm2d)
    r = lm.resolve(layer, module)
    assert {"stem.1", "stem.2", "bn"} <= r.ignored["paddle"]
    assert {"pool", "bn1", "bn2"} <= r.ignored["torch"]


def test_ignore_needs_layers():
    with pytest.raises(MappingError, match="needs a layer object"):
        LayerMap().ignore("fc1")
    with pytest.raises(MappingError, match="needs a class"):
        LayerMap().ignore_class(paddle.nn.Linear(1, 1), "Linear")
