"""Paths that cannot be written, a FUNC that exits, a key given twice: usage errors, the result kept."""

from __future__ import annotations

import os

import pytest
from reliability._helpers import PNet, TNet, net_pair

import padiff
from padiff import MapFileError, OutputPathError, PadiffError
from padiff.cli import main
from padiff.layer_map import parse_map_text

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cli_fixtures")
PAIRS = os.path.join(FIXTURES, "pairs.py")


@pytest.fixture
def afile(tmp_path):
    path = tmp_path / "afile"
    path.write_text("the user's file\n")
    return str(path)


@pytest.mark.parametrize("kind", ["json_path", "report", "log_dir"])
def test_compare_to_a_path_under_a_file_names_it_and_keeps_the_report(kind, afile):
    layer, module, inp = net_pair(0)
    with pytest.raises(OutputPathError, match="is a file, not a directory") as info:
        if kind == "log_dir":  # logs are written for a failing run only
            layer.fc2.bias.set_value(layer.fc2.bias.numpy() + 1.0)
        padiff.compare(layer, module, inp, options={"atol": 1e-5}, **{kind: os.path.join(afile, "out")})
    err = info.value
    assert isinstance(err, PadiffError) and os.path.join(afile, "out") in str(err)
    assert err.report is not None and err.report.records
    assert bool(err.report) == (kind != "log_dir")
    with open(afile) as fh:
        assert fh.read() == "the user's file\n"


def test_auto_diff_prints_the_report_before_the_path_error(afile, capsys):
    layer, module, inp = net_pair(0)
    with pytest.raises(OutputPathError):
        padiff.auto_diff(layer, module, inp, options={"atol": 1e-5}, json_path=os.path.join(afile, "r.json"))
    assert "SUCCESS" in capsys.readouterr().out


def test_layer_map_save_onto_a_directory_names_the_path(tmp_path):
    layer, module = PNet(), TNet()
    target = tmp_path / "maps.yaml"
    target.mkdir()
    with pytest.raises(MapFileError, match="is a directory") as info:
        padiff.LayerMap().save(str(target), layer, module)
    assert str(target) in str(info.value)
    assert target.is_dir() and not list(target.iterdir())


def test_cli_run_json_under_a_file_exits_2_and_still_prints_the_result(afile, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["run", f"{PAIRS}:mlp_synced", "--json", os.path.join(afile, "out")])
    out, err = capsys.readouterr()
    assert code == 2
    assert "SUCCESS" in out
    assert os.path.join(afile, "out") in err and "internal error" not in err


def test_cli_suggest_out_onto_a_directory_is_a_usage_error(tmp_path, capsys):
    target = tmp_path / "map.yaml"
    target.mkdir()
    code = main(["suggest", f"{PAIRS}:mlp", "--out", str(target), "--force", "--no-input"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(target) in err and "is a directory" in err and "internal error" not in err
    assert target.is_dir() and not list(target.iterdir())


@pytest.mark.parametrize("body", ["sys.exit(0)", "sys.exit(1)", "raise SystemExit('bye')"])
def test_a_func_that_calls_sys_exit_is_a_usage_error(tmp_path, capsys, body):
    target = tmp_path / "exits.py"
    target.write_text(f"import sys\n\n\ndef make():\n    {body}\n")
    code = main(["run", f"{target}:make"])
    err = capsys.readouterr().err
    assert code == 2
    assert "sys.exit" in err and "nothing was compared" in err



def test_a_key_given_twice_in_one_map_entry_names_the_line():
    text = ("version: 1\n"
            "pairs:\n"
            "- paddle_path: fc1\n"
            "  torch_path: fc1\n"
            "  torch_path: fc2\n")
    with pytest.raises(MapFileError, match=r"line 5: 'torch_path' is given twice.*first on line 4"):
        parse_map_text(text, "yaml", source="map.yaml")
    once = parse_map_text(text.replace("  torch_path: fc2\n", ""), "yaml", source="map.yaml")
    assert [(p.paddle_path, p.torch_path) for p in once.pairs] == [("fc1", "fc1")]
