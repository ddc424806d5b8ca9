"""A map's notes carry a kind decisions test, kept through the codec and the file text: no framework."""

from __future__ import annotations

import pickle

import pytest

from padiff.errors import MapFileError
from padiff.maps import codec, text_io
from padiff.maps.notes import MapNote, note_entry, note_kind, notes_of
from padiff.maps.types import LayerPair, MapData

SETTLED = MapNote.numeric("settled numerically (structural choice confirmed): blocks.0.fc")
QUIET = MapNote.numeric("order of the parts of qkv <-> q not settled: check it by hand")  # no "numeric" in it


def test_a_note_is_its_text_with_a_kind():
    assert SETTLED == "settled numerically (structural choice confirmed): blocks.0.fc"
    assert (note_kind(SETTLED), note_kind("route: graph"), note_kind(MapNote("x"))) == ("numeric", "general", "general")
    back = pickle.loads(pickle.dumps(SETTLED))
    assert back == SETTLED and note_kind(back) == "numeric"


def test_decisions_read_the_kind_never_the_wording():
    notes = ["route: graph (numeric ids in the export)", SETTLED, QUIET]
    assert notes_of(notes, "numeric") == [str(SETTLED), str(QUIET)]
    assert notes_of(notes, "general") == ["route: graph (numeric ids in the export)"]


def test_a_typed_note_survives_the_codec_and_the_yaml_text():
    md = MapData([LayerPair("fc", "linear")], route="graph", notes=["route: graph", SETTLED])
    data = codec.map_to_dict(md)
    assert data["version"] == 3  # a kind needs format 3; a map without one stays version 1
    assert data["notes"] == ["route: graph", {"kind": "numeric", "text": str(SETTLED)}]
    text = text_io.to_yaml(data)
    loaded, lines = text_io.parse_text(text, "yaml")
    back = codec.map_from_dict(loaded, lines=lines)
    assert back.notes == ["route: graph", str(SETTLED)]
    assert [note_kind(n) for n in back.notes] == ["general", "numeric"]
    assert codec.map_to_dict(MapData([LayerPair("fc", "linear")], notes=["plain"]))["version"] == 1
    assert note_entry("plain") == "plain"


def test_old_files_load_and_their_notes_are_general():
    old = {"version": 1, "route": "graph", "notes": ["settled numerically (re-paired a -> b): a"],
           "pairs": [{"paddle_path": "a", "torch_path": "b"}]}
    back = codec.map_from_dict(old)
    assert back.notes == ["settled numerically (re-paired a -> b): a"] and notes_of(back.notes, "numeric") == []


@pytest.mark.parametrize("entry, message", [
    ({"kind": "loud", "text": "x"}, r"notes\[0\]: kind must be one of \['general', 'numeric'\]"),
    ({"kind": "numeric"}, r"notes\[0\]: missing \['text'\]"),
    ({"kind": "numeric", "text": "x", "colour": 1}, r"unknown field\(s\) \['colour'\]"),
    ([1], "must be text"),
])
def test_a_wrong_note_entry_is_named(entry, message):
    with pytest.raises(MapFileError, match=message):
        codec.map_from_dict({"version": 3, "notes": [entry]})
