"""Hostile map files: nested YAML aliases ("billion laughs") and recursive aliases are refused fast,
with the alias's line named; a map that merely repeats an entry through an alias still loads."""

from __future__ import annotations

import time

import pytest

from padiff import LayerMap, MapFileError


def _laughs(depth: int = 9) -> str:
    """About 1 KB of YAML whose last alias expands to 9**depth scalars."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, depth)]
    return "\n".join([*lines, f"pairs: *a{depth - 1}"]) + "\n"


def test_billion_laughs_is_refused_in_well_under_a_second_naming_the_line(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text(_laughs())
    assert path.stat().st_size < 1200
    start = time.perf_counter()
    with pytest.raises(MapFileError, match=r"map\.yaml line 10: the alias \*a8 expands to") as info:
        LayerMap.load(str(path))
    assert time.perf_counter() - start < 0.5
    assert "write the entries out" in str(info.value)


def test_a_recursive_alias_is_refused_naming_its_line(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("version: 1\npairs:\n- &p {paddle_path: fc, torch_path: fc, more: [*p]}\n")
    start = time.perf_counter()
    with pytest.raises(MapFileError, match=r"line 3: the alias \*p refers to an entry that contains it"):
        LayerMap.load(str(path))
    assert time.perf_counter() - start < 0.5


def test_a_small_alias_still_loads(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("version: 1\npairs:\n- &p {paddle_path: fc, torch_path: fc}\nbaseline:\n- *p\n")
    lm = LayerMap.load(str(path))
    assert [(p.paddle_path, p.torch_path) for p in lm.pairs] == [("fc", "fc")]
    assert [(p.paddle_path, p.torch_path) for p in lm.baseline] == [("fc", "fc")]
