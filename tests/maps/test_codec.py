"""The map records, their one parser, the codec, file text and the diff record: no models, no framework.

Runs in the framework-free subprocess of tests/test_framework_free.py, so nothing here may
import paddle or torch.
"""

from __future__ import annotations

import math

import pytest

from padiff.errors import MapFileError, MappingError
from padiff.maps import codec, text_io
from padiff.maps.diff import diff_maps, render_diff
from padiff.maps.review import review_map
from padiff.maps.types import LOW_CONFIDENCE, Ignore, LayerPair, MapData, ParamPair, Unpaired, first_duplicate
from padiff.names import class_key, depth, id_index, is_within, json_number, number_from_json, show

FC = LayerPair("fc", "linear", "Linear", "Linear", ((4, 2), (2,)), ((2, 4), (2,)), 0.9, ("same shapes",))
QKV = LayerPair("qkv", "q", torch_parts=("q", "k", "v"), axis=-1)


def sample() -> MapData:
    md = MapData([FC, QKV, LayerPair("blk", "block", opaque=True)], route="graph", notes=["a note"],
                 unpaired=[Unpaired("paddle", "act", "GELU", "functional on the torch side")])
    md.params = [ParamPair("w0", "fc1.weight", "transpose")]
    md.ignores = [Ignore("torch", "class", "", "Dropout")]
    md.baseline = [LayerPair("fc", "linear")]
    return md


def test_codec_round_trip_keeps_every_section():
    data = codec.map_to_dict(sample())
    assert data["version"] == 2  # a fused pair and a parameter pair need version 2
    assert [e["paddle_path"] for e in data["pairs"]] == ["fc", "qkv"] and data["map"][0]["paddle_path"] == "blk"
    back = codec.map_from_dict(data)
    assert back.pairs == sample().pairs and back.params == sample().params
    assert back.ignores == sample().ignores and back.unpaired == sample().unpaired
    assert back.baseline == sample().baseline and (back.route, back.notes) == ("graph", ["a note"])


def test_text_round_trip_yaml_and_json(tmp_path):
    data = codec.map_to_dict(sample())
    for name in ("m.yaml", "m.json"):
        path = str(tmp_path / name)
        text_io.write_text(path, data)
        again, lines = text_io.parse_text(text_io.read_text(path), text_io.format_of(path))
        assert codec.map_from_dict(again).pairs == sample().pairs
        assert bool(lines) == name.endswith(".yaml")  # YAML knows where each entry is
    assert f"confidence < {LOW_CONFIDENCE}" in (tmp_path / "m.yaml").read_text()


def test_one_parser_for_pairs_refuses_what_a_file_may_not_hold():
    with pytest.raises(MapFileError, match=r"pairs\[0\]: confidence must be a number from 0 to 1"):
        LayerPair.from_dict({"paddle_path": "a", "torch_path": "b", "confidence": "0.5"}, "pairs[0]")
    with pytest.raises(MapFileError, match="unknown field"):
        LayerPair.from_dict({"paddle_path": "a", "torch_path": "b", "color": 1})
    with pytest.raises(MapFileError, match="both lists"):
        LayerPair.from_dict({"paddle_path": ["a", "b"], "torch_path": ["c", "d"]})
    assert LayerPair.from_dict(QKV.to_dict()) == QKV
    assert LayerPair.from_dict({"paddle_path": None, "torch_path": ""}).paddle_path == ""  # empty YAML is the root
    with pytest.raises(MapFileError, match="conversion must be one of"):
        ParamPair.from_dict({"paddle_param": "w", "torch_param": "fc.weight", "conversion": "flip"})
    with pytest.raises(MapFileError, match="needs cls"):
        Ignore.from_dict({"side": "torch", "kind": "class", "path": ""})


def test_a_layer_paired_twice_is_found_once_and_worded_by_each_caller():
    dup = first_duplicate([("pairs[0]", FC), ("pairs[1]", LayerPair("fc2", "linear"))])
    assert dup is not None and (dup.side, dup.path, dup.first, dup.label) == ("torch", "linear", "pairs[0]", "pairs[1]")
    assert first_duplicate([("a", FC), ("b", QKV)]) is None
    with pytest.raises(MapFileError, match=r"pairs\[1\].*already paired by pairs\[0\]"):
        codec.decode({"version": 1, "pairs": [FC.to_dict(), {"paddle_path": "x", "torch_path": "linear"}]})
    md = MapData([FC, LayerPair("x", "linear")])
    with pytest.raises(MappingError, match="cannot save this LayerMap"):
        codec.map_to_dict(md)


def test_layer_objects_are_not_data():
    md = MapData()
    md.ignore(object())
    with pytest.raises(MappingError, match="pass both models"):
        codec.map_to_dict(md)


def test_map_diff_is_a_record_truthy_when_anything_changed():
    a, b = sample(), sample()
    assert not diff_maps(a, b) and "no changes." in render_diff(diff_maps(a, b), fancy=False)
    b.pairs = [LayerPair("fc", "other"), *b.pairs[1:]]
    b.ignores = []
    d = diff_maps(a, b)
    assert d and [(r.side, r.path, r.was, r.now) for r in d.repaired] == [("paddle", "fc", "linear", "other")]
    assert d.ignores_removed == (Ignore("torch", "class", "", "Dropout"),) and d.n_changes == 2
    assert "1 re-paired" in render_diff(d, fancy=False)
    c = sample()
    c.pairs = [LayerPair(FC.paddle_path, FC.torch_path, confidence=0.5), *c.pairs[1:]]
    assert [(f.field, f.was, f.now) for f in diff_maps(a, c).changed][:1] == [("confidence", 0.9, 0.5)]


def test_review_needs_no_models():
    md = sample()
    md.pairs.append(LayerPair("unsure", "guess", confidence=LOW_CONFIDENCE - 0.1))
    text = review_map(md, fancy=False)
    assert "Check these first" in text and "unsure" in text and "functional on the torch side" in text


def test_names_helpers():
    assert show("") == "<root>" and show("a.b") == "a.b"
    assert is_within("a.b", "a") and is_within("a", "a") and is_within("x", "") and not is_within("ab", "a")
    assert [depth(p) for p in ("", "a", "a.b.c")] == [0, 1, 3]
    assert class_key("Conv2D") == class_key("Conv2d") == "conv" and class_key("Linear") == "linear"
    objs = [object(), object()]
    assert id_index([("x", objs[0]), ("y", objs[1])]) == {id(objs[0]): "x", id(objs[1]): "y"}
    for v in (1.5, math.inf, -math.inf):
        assert number_from_json(json_number(v)) == v
    assert json_number(math.nan) == "nan" and math.isnan(number_from_json("nan"))
