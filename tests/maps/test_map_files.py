"""Layer-map files (save / edit / load), review and diff of maps, and a fuzzed loader."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from models.basic import mlp_pair, stack_pair

from padiff import LayerMap, LayerPair, MapFileError, MappingError
from padiff.layer_map import Ignore, Unpaired, map_from_dict, map_to_dict, parse_map_text
from padiff.maps.review import review_map


def stack_map() -> LayerMap:
    """A hand-built proposal for ``stack_pair(2)`` with every section filled."""
    pairs = []
    for i in range(2):
        for p, t, cls, conf in (("norm", "ln", "LayerNorm", 0.95), ("up", "fc_in", "Linear", 0.9),
                                ("down", "fc_out", "Linear", 0.5)):
            pairs.append(LayerPair(f"blocks.{i}.{p}", f"layers.{i}.{t}", cls, cls, confidence=conf,
                                   evidence=("same dataflow position", f"block {i}")))
    lm = LayerMap(pairs, route="graph", notes=["route: graph (test)"],
                  unpaired=[Unpaired("paddle", "blocks.0.act", "GELU", "functional gelu on the torch side")])
    lm.baseline = [LayerPair("blocks.0.norm", "layers.0.ln", "LayerNorm", "LayerNorm", confidence=0.0),
                   LayerPair("blocks.0.up", "layers.1.fc_in", "Linear", "Linear", confidence=0.0)]
    lm.ignores = [Ignore("paddle", "self", "blocks.1.act"), Ignore("torch", "class", "", "LayerNorm")]
    return lm


def pair_paths(lm: LayerMap) -> list[tuple[str, str, bool]]:
    return [(p.paddle_path, p.torch_path, p.opaque) for p in lm.pairs]


# --- round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", ["yaml", "yml", "json"])
def test_round_trip_without_models_keeps_every_section(tmp_path, ext):
    lm = stack_map()
    lm.pairs.append(LayerPair("blocks.1.act", "layers.1", "GELU", "TorchBlock", opaque=True))
    path = tmp_path / f"map.{ext}"
    lm.save(str(path))
    back = LayerMap.load(str(path))
    assert back.pairs == lm.pairs
    assert back.ignores == lm.ignores
    assert back.unpaired == lm.unpaired
    assert back.baseline == lm.baseline
    assert (back.route, back.notes) == (lm.route, lm.notes)
    # saving what was loaded gives the same file
    path2 = tmp_path / f"again.{ext}"
    back.save(str(path2))
    assert path.read_text() == path2.read_text().replace("again." + ext, "map." + ext)


def test_yaml_is_block_style_with_header_and_one_entry_per_pair(tmp_path):
    path = tmp_path / "map.yaml"
    stack_map().save(str(path))
    text = path.read_text()
    assert text.startswith("# padiff layer map")
    assert "How to edit" in text
    assert text.count("- paddle_path: blocks.") == 6 + 2  # pairs + baseline entries
    assert "# pairs[2]  LOW CONFIDENCE" in text
    assert "{" not in text.split("version:")[1]  # no flow mappings
    data = yaml.safe_load(text)
    assert data["version"] == 1 and len(data["pairs"]) == 6


def test_json_keeps_shapes_on_one_line(tmp_path):
    layer, module, _ = mlp_pair()
    lm = LayerMap([LayerPair("fc1", "first")])
    path = tmp_path / "m.json"
    lm.save(str(path))
    back = LayerMap.load(str(path), layer, module)
    back.save(str(path))
    text = path.read_text()
    assert '"paddle_shapes": [[8, 16], [16]]' in text
    assert json.loads(text)["pairs"][0]["torch_shapes"] == [[16, 8], [16]]


def test_object_entries_need_the_models(tmp_path):
    layer, module, _ = mlp_pair()
    lm = LayerMap()
    lm.map = {layer.fc2: module.middle}
    lm.ignore(layer.act)
    lm.ignore_class(module, type(module.first))
    path = tmp_path / "m.yaml"
    path.write_text("keep me\n")
    with pytest.raises(MappingError, match="pass both models"):
        lm.save(str(path))
    assert path.read_text() == "keep me\n"  # nothing overwritten on error
    lm.save(str(path), layer, module)
    back = LayerMap.load(str(path), layer, module)
    assert pair_paths(back) == [("fc2", "middle", True)]
    assert back.pairs[0].paddle_shapes == ((16, 16), (16,))
    assert back.ignores == [Ignore("paddle", "self", "act"), Ignore("torch", "class", "", "Linear")]
    # the loaded map drives the same resolution the objects did
    resolved = back.resolve(layer, module)
    assert resolved.opaque_paths("paddle") == {"fc2"}
    assert "act" in resolved.ignored["paddle"]
    assert {"first", "middle", "last"} <= resolved.ignored["torch"]


def test_object_map_with_swapped_sides_is_a_clear_error():
    layer, module, _ = mlp_pair()
    lm = LayerMap()
    lm.map = {module.first: layer.fc1}
    with pytest.raises(MappingError, match="paddle first"):
        lm.to_dict(layer, module)


def test_object_ignore_outside_both_models_is_not_dropped():
    layer, module, _ = mlp_pair()
    other, _, _ = mlp_pair()
    lm = LayerMap()
    lm.ignore(other.fc1)
    with pytest.raises(MappingError, match="neither model"):
        lm.to_dict(layer, module)


# --- a person's edits --------------------------------------------------------------------------
def test_edits_to_the_yaml_text_are_honoured_exactly(tmp_path):
    layer, module, _ = stack_pair(2)
    path = tmp_path / "map.yaml"
    stack_map().save(str(path), layer, module)
    text = path.read_text()
    # swap the blocks of the two `up` pairs, lower a confidence, drop the last pair, add one by hand
    text = text.replace("torch_path: layers.0.fc_in", "torch_path: TMP")
    text = text.replace("torch_path: layers.1.fc_in", "torch_path: layers.0.fc_in", 1)
    text = text.replace("torch_path: TMP", "torch_path: layers.1.fc_in", 1)
    text = text.replace("confidence: 0.95", "confidence: 0.3", 1)
    head, rest = text.split("# pairs[5]", 1)
    text = head + "# --- map" + rest.split("# --- Opaque", 1)[1].replace("\nmap: []", "\nmap:\n- paddle_path: blocks.1"
                                                                          "\n  torch_path: layers.1", 1)
    path.write_text(text)
    lm = LayerMap.load(str(path), layer, module)
    assert pair_paths(lm) == [
        ("blocks.0.norm", "layers.0.ln", False), ("blocks.0.up", "layers.1.fc_in", False),
        ("blocks.0.down", "layers.0.fc_out", False), ("blocks.1.norm", "layers.1.ln", False),
        ("blocks.1.up", "layers.0.fc_in", False), ("blocks.1", "layers.1", True),
    ]
    assert lm.pairs[0].confidence == 0.3
    assert lm.pairs[5].paddle_class == "PaddleBlock" and lm.pairs[5].torch_class == "TorchBlock"
    assert lm.pairs[1].paddle_shapes == ((16, 32), (32,)) and lm.pairs[1].torch_shapes == ((32, 16), (32,))
    assert len(lm.ignores) == 2 and len(lm.unpaired) == 1


def test_stale_classes_in_the_file_are_refreshed_and_noted():
    layer, module, _ = mlp_pair()
    data = {"version": 1, "pairs": [{"paddle_path": "fc1", "torch_path": "first", "paddle_class": "Conv2D"}]}
    lm = map_from_dict(data, layer, module)
    assert lm.pairs[0].paddle_class == "Linear"
    assert any("pairs[0]" in n and "paddle_class" in n and "Conv2D" in n for n in lm.notes)


# --- errors naming the entry ---------------------------------------------------------------------
def write(tmp_path, text, name="map.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = """\
version: 1
pairs:
- paddle_path: fc1
  torch_path: first
- paddle_path: fc2
  torch_path: middle
"""


def test_missing_path_names_entry_line_and_suggests(tmp_path):
    layer, module, _ = mlp_pair()
    path = write(tmp_path, GOOD.replace("torch_path: middle", "torch_path: midle"))
    with pytest.raises(MapFileError) as err:
        LayerMap.load(path, layer, module)
    msg = str(err.value)
    assert "line 5" in msg and "pairs[1]" in msg and "'fc2'" in msg and "'midle'" in msg
    assert "Did you mean 'middle'" in msg


def test_duplicated_layer_names_both_entries(tmp_path):
    path = write(tmp_path, GOOD.replace("torch_path: middle", "torch_path: first"))
    with pytest.raises(MapFileError) as err:
        LayerMap.load(path)  # duplicates are found even without models
    msg = str(err.value)
    assert "pairs[1]" in msg and "pairs[0]" in msg and "'first'" in msg and "paired" in msg


def test_duplicate_across_pairs_and_map_sections(tmp_path):
    text = GOOD + "map:\n- paddle_path: fc1\n  torch_path: last\n"
    with pytest.raises(MapFileError, match=r"map\[0\].*already paired by .*pairs\[0\]"):
        LayerMap.load(write(tmp_path, text))


def test_shapes_that_cannot_be_paired(tmp_path):
    layer, module, _ = mlp_pair()
    path = write(tmp_path, GOOD.replace("torch_path: middle", "torch_path: last"))
    with pytest.raises(MapFileError) as err:
        LayerMap.load(path, layer, module)
    msg = str(err.value)
    assert "pairs[1]" in msg and "line 5" in msg and "shapes cannot be paired" in msg and "[16, 16]" in msg


def test_ignore_with_missing_path(tmp_path):
    layer, module, _ = mlp_pair()
    text = GOOD + "ignores:\n- side: torch\n  kind: self\n  path: nope\n"
    with pytest.raises(MapFileError, match=r"line 8: ignores\[0\] \(torch 'nope'\)"):
        LayerMap.load(write(tmp_path, text), layer, module)


@pytest.mark.parametrize("text,expected", [
    ("version: 1\npairs:\n- paddle_path: fc1\n  torch_path: [first\n", r"line \d+ column \d+: not valid YAML"),
    ("pairs: []\n", "missing 'version'"),
    ("version: 9\n", "version 9 is not supported"),
    ("version: 1\nparis: []\n", r"unknown key\(s\) \['paris'\]"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("", "expected a mapping"),
    ("version: 1\npairs: {a: 1}\n", "must be a list"),
    ("version: 1\npairs:\n- paddle_path: a\n", r"pairs\[0\].*missing \['torch_path'\]"),
    ("version: 1\npairs:\n- {paddle_path: a, torch_path: b, confidence: 2}\n", "confidence must be a number"),
    ("version: 1\npairs:\n- {paddle_path: a, torch_path: b, paddle_shapes: [3]}\n", "list of shapes"),
    ("version: 1\npairs:\n- {paddle_path: a, torch_path: b, colour: red}\n", r"unknown field\(s\) \['colour'\]"),
    ("version: 1\npairs:\n- {paddle_path: 3, torch_path: b}\n", "must be a layer path string"),
    ("version: 1\nignores:\n- {side: jax, kind: self, path: a}\n", "side must be 'paddle' or 'torch'"),
    ("version: 1\nignores:\n- {side: torch, kind: class, path: a}\n", "needs cls"),
    ("version: 1\nmap:\n- {paddle_path: a, torch_path: b, opaque: false}\n", r"unknown field\(s\) \['opaque'\]"),
])
def test_malformed_yaml_says_what_to_do(tmp_path, text, expected):
    with pytest.raises(MapFileError, match=expected):
        LayerMap.load(write(tmp_path, text))


def test_malformed_json_gives_line(tmp_path):
    with pytest.raises(MapFileError, match=r"line 2 column .*not valid JSON"):
        LayerMap.load(write(tmp_path, '{"version": 1,\n "pairs": [,]}', "m.json"))


def test_missing_file_and_bad_extension(tmp_path):
    with pytest.raises(MapFileError, match=r"does not exist.*padiff suggest"):
        LayerMap.load(str(tmp_path / "nope.yaml"))
    with pytest.raises(MapFileError, match=r"\.yaml, \.yml or \.json"):
        LayerMap.load(write(tmp_path, GOOD, "map.txt"))
    with pytest.raises(MapFileError, match=r"\.yaml, \.yml or \.json"):
        LayerMap().save(str(tmp_path / "map.toml"))


def test_empty_yaml_value_means_root():
    lm = map_from_dict({"version": 1, "pairs": [{"paddle_path": None, "torch_path": ""}]})
    assert lm.pairs[0].paddle_path == "" and lm.pairs[0].torch_path == ""


# --- review and diff -------------------------------------------------------------------------------
def test_review_shows_pairs_doubts_baseline_unpaired_and_ignores():
    text = stack_map().review()
    lines = text.splitlines()
    assert "route: graph" in text and "note: route: graph (test)" in text
    row = next(ln for ln in lines if "blocks.0.up (Linear)" in ln and "<->" in ln)
    assert "layers.0.fc_in (Linear)" in row and "0.90" in row and "default:" not in row
    assert not row.startswith("!")  # differing from default pairing is not a problem by itself
    low = [ln for ln in lines if "LOW CONFIDENCE" in ln]
    assert len(low) == 2 and all("down" in ln for ln in low)
    assert any(ln.startswith("!") and "blocks.0.down" in ln and "same dataflow position" in ln for ln in lines)
    assert "where the proposal differs from default" in text
    section = text.split("where the proposal differs from default")[1]
    assert any(ln.startswith("  blocks.0.up") and ln.index("layers.1.fc_in") < ln.index("layers.0.fc_in")
               for ln in section.splitlines())
    assert text.index("Check these first") < text.index("Proposed pairs") < text.index("where the proposal")
    assert any("blocks.0.act" in ln and "GELU" in ln and "functional gelu" in ln for ln in lines)
    assert any("blocks.1.act" in ln and "self" in ln for ln in lines)


def test_review_of_object_map_needs_no_models():
    layer, module, _ = mlp_pair()
    lm = LayerMap()
    lm.map = {layer.fc1: module.first}
    text = lm.review()
    assert "<Linear object>" in text and "opaque" in text
    assert "Default pairing: not recorded" in text


def test_review_with_rich_tables_keeps_the_content():
    text = review_map(stack_map(), fancy=True, width=120)
    assert "blocks.0.down" in text and "LOW CONFIDENCE" in text and "\x1b[" in text


def test_diff_added_removed_repaired():
    a = stack_map()
    b = stack_map()
    b.pairs = [p for p in b.pairs if p.paddle_path != "blocks.1.down"]  # removed
    b.pairs = [LayerPair(p.paddle_path, "layers.1.fc_out", p.paddle_class, p.torch_class)
               if p.paddle_path == "blocks.0.down" else p for p in b.pairs]  # re-paired
    b.pairs.append(LayerPair("blocks.0.act", "layers.0", "GELU", "TorchBlock", opaque=True))  # added
    b.ignores = b.ignores[:1]
    text = a.diff(b)
    assert "1 added, 0 removed, 2 re-paired" in text
    lines = text.splitlines()
    assert any("blocks.0.act (GELU)" in ln and "layers.0 (TorchBlock)" in ln for ln in lines)
    assert any("paddle" in ln and "blocks.0.down" in ln and "layers.0.fc_out" in ln and "layers.1.fc_out" in ln
               for ln in lines)
    assert any("torch" in ln and "layers.1.fc_out" in ln and "blocks.1.down" in ln for ln in lines)
    assert any("removed" in ln and "class" in ln and "LayerNorm" in ln for ln in lines)
    changes = a.changes(b)
    assert changes and changes.n_changes == 1 + 2 + 1  # added, re-paired (both sides), ignore removed
    assert [p.paddle_path for p in changes.added] == ["blocks.0.act"]
    assert [(r.side, r.path) for r in changes.repaired] == [("paddle", "blocks.0.down"), ("torch", "layers.1.fc_out")]
    assert not a.changes(stack_map())  # the exit code of `padiff diff` comes from this record
    assert "no changes." in a.diff(stack_map())


def test_diff_reports_removed_pair():
    a, b = stack_map(), stack_map()
    b.pairs = b.pairs[:-1]
    text = a.diff(b)
    assert "0 added, 1 removed" in text and "blocks.1.down (Linear)" in text


# --- suggest -> save -> load ----------------------------------------------------------------------
def test_suggested_map_saves_and_loads_against_the_models(tmp_path):
    import padiff

    layer, module, _ = stack_pair(2)
    lm = padiff.suggest_layer_map(layer, module)
    path = tmp_path / "s.yaml"
    lm.save(str(path), layer, module)
    back = LayerMap.load(str(path), layer, module)
    assert back.pairs == lm.pairs and back.unpaired == lm.unpaired and back.baseline == lm.baseline
    assert back.route == lm.route


# --- fuzzing: only MapFileError / MappingError ever escape ------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(["fc1", "first", "", "paddle", "torch", "self", "class"]))
keys = st.one_of(st.sampled_from(["version", "route", "notes", "pairs", "map", "ignores", "unpaired", "baseline",
                                  "paddle_path", "torch_path", "paddle_class", "confidence", "evidence",
                                  "paddle_shapes", "torch_shapes", "opaque", "compare_output", "side", "kind",
                                  "path", "cls", "reason"]), st.text(max_size=5))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(keys, inner, max_size=5)), max_leaves=25)
docs = st.fixed_dictionaries({"version": st.one_of(st.just(1), scalars)},
                             optional={k: values for k in ("route", "notes", "pairs", "map", "ignores", "unpaired",
                                                           "baseline")})

MODELS = mlp_pair()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(docs, values))
def test_fuzz_map_from_dict(data):
    for models in ((None, None), MODELS[:2]):
        try:
            lm = map_from_dict(data, *models)
        except MappingError:  # MapFileError is a MappingError
            continue
        # what loads must save and load again unchanged
        again = map_from_dict(map_to_dict(lm))
        assert again.pairs == lm.pairs and again.ignores == lm.ignores


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), values.map(lambda v: yaml.safe_dump(v)),
                 docs.map(lambda v: yaml.safe_dump(v))))
def test_fuzz_yaml_text(text):
    try:
        parse_map_text(text, "yaml", *MODELS[:2])
    except MappingError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), docs.map(json.dumps)))
def test_fuzz_json_text(text):
    try:
        parse_map_text(text, "json")
    except MappingError:
        pass


def test_no_temp_files_left_behind(tmp_path):
    stack_map().save(str(tmp_path / "a.yaml"))
    assert os.listdir(tmp_path) == ["a.yaml"]


def test_saving_with_models_describes_hand_written_pairs(tmp_path):
    layer, module, _ = mlp_pair()
    lm = LayerMap([LayerPair("fc2", "middle")])
    data = lm.to_dict(layer, module)
    assert data["pairs"][0]["paddle_class"] == "Linear" and data["pairs"][0]["torch_shapes"] == [[16, 16], [16]]
    assert lm.pairs[0].paddle_class == ""  # the user's map itself is not changed


def test_a_map_that_could_not_be_loaded_back_is_not_saved(tmp_path):
    layer, module, _ = mlp_pair()
    lm = LayerMap([LayerPair("fc1", "first")])
    lm.map = {layer.fc1: module.middle}
    with pytest.raises(MappingError, match=r"cannot save.*'fc1' is already paired"):
        lm.save(str(tmp_path / "m.yaml"), layer, module)
    assert not (tmp_path / "m.yaml").exists()


def test_review_flags_only_what_needs_a_person():
    lm = stack_map()
    lm.pairs.append(LayerPair("blocks.1.norm2", "layers.1.ln2", "LayerNorm", "LayerNorm", confidence=0.95,
                              evidence=("same op kind norm", "1/3 calls agree")))
    lm.pairs.append(LayerPair("blocks.1.fc", "layers.1.fc", "Linear", "Linear", confidence=0.95,
                              evidence=("same op kind linear", "3/3 calls agree", "2/2 graph neighbours agree")))
    lines = review_map(lm, fancy=False).splitlines()
    flagged = [ln for ln in lines if ln.startswith("!")]
    # low-confidence pairs (twice: check list and pairs table), the contradicted pair (twice), the unpaired layer
    assert len(flagged) == 2 * 2 + 2 + 1
    assert any("blocks.1.norm2" in ln and "check: 1/3 calls agree" in ln for ln in flagged)
    assert not any("blocks.1.fc " in ln or "blocks.0.up" in ln or "blocks.0.norm" in ln for ln in flagged)


def test_review_in_a_100_column_terminal_does_not_break_paths():
    import re

    lm = stack_map()
    deep = [LayerPair(f"encoder.layer.{i}.attention.output.dense", f"bert.encoder.layer.{i}.attn.out_proj",
                      "Linear", "Linear", ((768, 768), (768,)), ((768, 768), (768,)), confidence=0.6,
                      evidence=("same op kind linear", "1/2 graph neighbours agree")) for i in range(3)]
    lm.pairs += deep
    text = re.sub(r"\x1b\[[0-9;]*m", "", review_map(lm, fancy=True, width=100))
    assert max(len(ln) for ln in text.splitlines()) <= 100
    words = set(re.split(r"[\s│┃]+", text))
    for p in lm.pairs[:6]:  # short paths stay whole
        assert p.paddle_path in words and p.torch_path in words
    for p in deep:  # long ones break only after a dot
        for part in (*p.paddle_path.split("."), *p.torch_path.split(".")):
            assert any(w.strip(".") == part for w in re.split(r"[\s│┃.]+", text)), part
        assert p.paddle_path in text.replace("\n", "") or "encoder.layer." in text
