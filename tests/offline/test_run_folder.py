"""Run folders: damaged, other-version, tampered, cut-short and reused folders; one framework per process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import padiff
from padiff.errors import RunFolderError
from tests.offline.conftest import env

TOL = {"atol": 1e-6, "rtol": 1e-5}


def _copy(src: str, tmp_path: object, name: str) -> str:
    dst = os.path.join(str(tmp_path), name)
    shutil.copytree(src, dst)
    return dst


def test_missing_folder_and_header_are_named(runs: dict[str, str], tmp_path: object) -> None:
    with pytest.raises(RunFolderError, match="not a folder"):
        padiff.compare_runs(os.path.join(str(tmp_path), "nope"), runs["pt"])
    bad = _copy(runs["pt"], tmp_path, "no_header")
    os.remove(os.path.join(bad, "rank-0", "run.json"))
    with pytest.raises(RunFolderError, match=r"run\.json is missing"):
        padiff.compare_runs(runs["pd"], bad)
    bad = _copy(runs["pt"], tmp_path, "no_skeleton")
    os.remove(os.path.join(bad, "rank-0", "skeleton.json"))
    with pytest.raises(RunFolderError, match=r"skeleton\.json is missing"):
        padiff.compare_runs(runs["pd"], bad)


def test_other_format_version_is_refused(runs: dict[str, str], tmp_path: object) -> None:
    bad = _copy(runs["pt"], tmp_path, "v99")
    path = os.path.join(bad, "rank-0", "run.json")
    meta = json.loads(Path(path).read_text())
    meta["version"] = 99
    Path(path).write_text(json.dumps(meta))
    with pytest.raises(RunFolderError, match="version 99"):
        padiff.compare_runs(runs["pd"], bad)


def test_tampered_tensor_file_and_index_are_detected(runs: dict[str, str], tmp_path: object) -> None:
    bad = _copy(runs["pt"], tmp_path, "tampered")
    f = os.path.join(bad, "rank-0", "steps", "step-000001.safetensors")
    data = bytearray(Path(f).read_bytes())
    data[-3] ^= 0xFF
    Path(f).write_bytes(bytes(data))
    with pytest.raises(RunFolderError, match=r"step-000001\.safetensors does not match the SHA-256"):
        padiff.compare_runs(runs["pd"], bad)
    bad = _copy(runs["pt"], tmp_path, "bad_index")
    index = os.path.join(bad, "rank-0", "index.jsonl")
    lines = Path(index).read_text().splitlines(keepends=True)
    Path(index).write_text(lines[0] + "{garbage\n" + "".join(lines[1:]))
    with pytest.raises(RunFolderError, match="line 2 is not a valid step record"):
        padiff.compare_runs(runs["pd"], bad)


def test_an_edited_index_line_is_detected(runs: dict[str, str], tmp_path: object) -> None:
    bad = _copy(runs["pt_scale"], tmp_path, "edited")
    index = os.path.join(bad, "rank-0", "index.jsonl")
    lines = Path(index).read_text().splitlines(keepends=True)
    line = json.loads(lines[1])
    line["entries"][0]["stats"][0] += 1.0  # a statistic changed by hand
    Path(index).write_text(lines[0] + json.dumps(line) + "\n" + "".join(lines[2:]))
    with pytest.raises(RunFolderError, match=r"line 2 \(step 1\) does not match the SHA-256"):
        padiff.compare_runs(runs["pd"], bad)
    del line["check"]  # removing the check does not hide the edit
    Path(index).write_text(lines[0] + json.dumps(line) + "\n" + "".join(lines[2:]))
    with pytest.raises(RunFolderError, match="line 2"):
        padiff.compare_runs(runs["pd"], bad)


def test_partial_last_index_line_is_dropped_with_a_warning(runs: dict[str, str], tmp_path: object) -> None:
    cut = _copy(runs["pt"], tmp_path, "cut")
    index = os.path.join(cut, "rank-0", "index.jsonl")
    lines = Path(index).read_text().splitlines(keepends=True)
    Path(index).write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    rep = padiff.compare_runs(runs["pd"], cut, options=TOL)
    assert rep and rep.steps == 2
    assert any("last line is incomplete" in w for w in rep.warnings)


def test_a_recorded_folder_is_never_written_into(runs: dict[str, str]) -> None:
    import torch

    with pytest.raises(RunFolderError, match="already holds a recording"):
        padiff.Recorder(torch.nn.Linear(2, 2), runs["pt"])


def test_runs_swapped_are_a_usage_error(runs: dict[str, str]) -> None:
    with pytest.raises(padiff.InputError, match="paddle run first"):
        padiff.compare_runs(runs["pt"], runs["pd"])


BLOCK_BOTH = """
import sys
class B:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('paddle', 'torch'):
            raise ImportError(name + ' blocked')
sys.meta_path.insert(0, B())
"""


def test_compare_runs_and_the_cli_import_neither_framework(runs: dict[str, str], tmp_path: object) -> None:
    code = BLOCK_BOTH + f"""
import padiff
from padiff.cli import main
rep = padiff.compare_runs({runs['pd']!r}, {runs['pt_scale']!r}, layer_map='auto', options={TOL!r})
assert not rep and rep.first_diff.paddle_path == 'fc2'
code = main(['compare-runs', {runs['pd']!r}, {runs['pt']!r}, '--options', 'atol=1e-6,rtol=1e-5',
             '--json', {os.path.join(str(tmp_path), 'r.json')!r},
             '--report', {os.path.join(str(tmp_path), 'r.html')!r}])
assert code == 0, code
assert 'torch' not in sys.modules and 'paddle' not in sys.modules
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stdout + out.stderr
    assert json.loads(Path(tmp_path, "r.json").read_text())["ok"] is True
    assert os.path.getsize(os.path.join(str(tmp_path), "r.html")) > 0


def test_cli_exit_codes(runs: dict[str, str], tmp_path: object) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "padiff", "compare-runs", *args], env=env(),
                              capture_output=True, text=True, timeout=120)

    js = os.path.join(str(tmp_path), "diff.json")
    out = cli(runs["pd"], runs["pt_scale"], "--options", "atol=1e-6,rtol=1e-5", "--json", js)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "paddle fc2" in out.stdout and json.loads(Path(js).read_text())["first_diff"]["paddle_path"] == "fc2"
    out = cli(runs["pd"], os.path.join(str(tmp_path), "missing"))
    assert out.returncode == 2 and "RunFolderError" in out.stderr
    out = cli(runs["pd"], runs["pt"], "--options", "nonsense=1")
    assert out.returncode == 2


def test_auto_map_pairs_renamed_and_reordered_layers(runs: dict[str, str]) -> None:
    rep = padiff.compare_runs(runs["pd"], runs["pt_renamed"], layer_map="auto", options=TOL)
    pairs = {(m["paddle_path"], m["torch_path"]) for m in rep.mapping}
    assert {("fc1", "first"), ("fc2", "second")} <= pairs  # parameter-free leaves: as the tree matcher decides
    assert rep, rep.failures()[:2]
    assert {r.stage for r in rep.records} == {"forward", "loss", "backward", "grad", "weight"}


def test_a_map_file_pairs_what_the_user_wrote(runs: dict[str, str], tmp_path: object) -> None:
    from padiff.layer_map import LayerMap, LayerPair

    path = os.path.join(str(tmp_path), "map.json")
    LayerMap([LayerPair("fc1", "first"), LayerPair("act", "relu"), LayerPair("fc2", "second")]).save(path)
    rep = padiff.compare_runs(runs["pd"], runs["pt_renamed"], layer_map=path, options=TOL)
    assert rep and rep.mapping_route == "layer map"
    assert any(r.paddle_path == "act" and r.torch_path == "relu" for r in rep.records)
    LayerMap([LayerPair("fc1", "nonexistent")]).save(os.path.join(str(tmp_path), "bad.json"))
    with pytest.raises(padiff.MappingError, match="no such layer"):
        padiff.compare_runs(runs["pd"], runs["pt_renamed"], layer_map=os.path.join(str(tmp_path), "bad.json"))
