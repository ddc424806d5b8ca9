"""The ``padiff`` command, driven as a subprocess: help, usage errors, suggest/review/diff, run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli_fixtures")
PAIRS = os.path.join(FIXTURES, "pairs.py")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def padiff(*args: str, cwd=None, module: str = "padiff", timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PADIFF_LOG_DIR", os.path.join(str(cwd or "/tmp"), "logs"))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout, check=False)


# --- help -----------------------------------------------------------------------------------
def test_top_level_help_lists_commands_and_workflow():
    r = padiff("--help")
    assert r.returncode == 0
    for cmd in ("suggest", "review", "diff", "run"):
        assert cmd in r.stdout
    assert "padiff suggest models.py:make_pair --out map.yaml" in r.stdout


@pytest.mark.parametrize("cmd,example", [
    ("suggest", "padiff suggest models.py:make_pair --out map.yaml"),
    ("review", "padiff review map.yaml"),
    ("diff", "padiff diff map_before.yaml map_after.yaml"),
    ("run", "padiff run models.py:make_pair --map map.yaml --options atol=1e-5"),
])
def test_each_subcommand_help_has_an_example(cmd, example):
    r = padiff(cmd, "--help")
    assert r.returncode == 0
    assert "example" in r.stdout and example in r.stdout
    assert "usage: padiff " + cmd in r.stdout


def test_python_m_padiff_cli_works_too():
    r = padiff("--version", module="padiff.cli")
    assert r.returncode == 0 and r.stdout.startswith("padiff ")


@pytest.mark.skipif(shutil.which("padiff") is None, reason="console script not installed")
def test_console_script():
    r = subprocess.run(["padiff", "review", "--help"], capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 0 and "padiff review map.yaml" in r.stdout


# --- usage errors: exit 2 with a hint ------------------------------------------------------------
@pytest.mark.parametrize("args,expected", [
    ((), "usage: padiff"),
    (("run",), "the following arguments are required: FILE.py:FUNC"),
    (("run", "no_colon"), "expected FILE.py:FUNC"),
    (("run", "missing.py:f"), "no such file: missing.py"),
    (("run", PAIRS + ":nope"), "has no function 'nope'; functions defined there: "),
    (("run", PAIRS + ":not_a_tuple"), "must return (layer, module, example_inp)"),
    (("run", PAIRS + ":raises"), "raised ValueError: the user's FUNC is broken"),
    (("run", os.path.join(FIXTURES, "broken_import.py") + ":make_pair"), "No module named"),
    (("run", PAIRS + ":mlp", "--options", "atol"), "--options expects key=value pairs"),
    (("run", PAIRS + ":mlp", "--steps", "0"), "--steps: must be at least 1"),
    (("run", PAIRS + ":mlp", "--bogus"), "unrecognized arguments: --bogus"),
    (("review", "nope.yaml"), "does not exist"),
    (("suggest", PAIRS + ":mlp", "--out", "map.txt"), ".yaml, .yml or .json"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
])
def test_usage_errors_exit_2_with_hint(tmp_path, args, expected):
    r = padiff(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert expected in r.stderr
    if args:
        assert "Try 'padiff" in r.stderr and "--help'" in r.stderr
    assert "Traceback (most recent call last)" not in r.stderr


def test_missing_func_lists_functions_not_classes(tmp_path):
    r = padiff("run", PAIRS + ":nope", cwd=tmp_path)
    listed = r.stderr.split("functions defined there: ")[1].split(" (")[0]
    assert "mlp" in listed.split(", ") and "PaddleMLP" not in listed and "TorchMLP" not in listed
    assert "are not FUNCs" in r.stderr


def test_run_help_asks_for_an_optimizer_where_it_shows_steps():
    text = padiff("run", "--help").stdout
    steps = [i for i, ln in enumerate(text.splitlines()) if "--steps 3" in ln]
    assert steps and all("optimizer" in " ".join(text.splitlines()[i:i + 2]) for i in steps)
    assert "--map auto --steps" not in text


def test_loading_line_comes_at_once(tmp_path):
    import time

    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PADIFF_LOG_DIR=str(tmp_path / "logs"))
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "padiff", "run", PAIRS + ":mlp_synced"], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path)
    try:
        first = proc.stderr.readline()
        took = time.monotonic() - start
        running = proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    assert first == f"padiff: loading {PAIRS}:mlp_synced ...\n"
    assert running and took < 5  # before the user's file (paddle, torch) is imported


def test_user_traceback_points_at_user_code(tmp_path):
    r = padiff("run", PAIRS + ":raises", cwd=tmp_path)
    assert f'File "{PAIRS}", line' in r.stderr and 'raise ValueError("the user' in r.stderr
    assert os.sep + "padiff" + os.sep + "cli" not in r.stderr


@pytest.mark.parametrize("func,args,expected", [
    ("mlp", ("--options", "colour=red"), "unknown option(s) 'colour'"),
    ("swapped", (), "swapped"),
])
def test_padiff_errors_from_misuse_exit_2(tmp_path, func, args, expected):
    r = padiff("run", f"{PAIRS}:{func}", *args, cwd=tmp_path)
    assert r.returncode == 2 and expected in r.stderr and "Try 'padiff run --help'" in r.stderr


# --- suggest / review / diff --------------------------------------------------------------------
@pytest.fixture(scope="module")
def suggested(tmp_path_factory):
    d = tmp_path_factory.mktemp("suggest")
    r = padiff("suggest", PAIRS + ":mlp", "--out", "map.yaml", "--no-input", cwd=d)
    assert r.returncode == 0, r.stderr
    return d, r


def test_suggest_writes_map_and_prints_review(suggested):
    d, r = suggested
    assert "Layer map review" in r.stdout and "fc1 (Linear)" in r.stdout and "first (Linear)" in r.stdout
    assert "Wrote map.yaml" in r.stdout
    data = yaml.safe_load((d / "map.yaml").read_text())
    assert [(p["paddle_path"], p["torch_path"]) for p in data["pairs"]] == [
        ("fc1", "first"), ("fc2", "middle"), ("fc3", "last")]


def test_suggest_does_not_overwrite_without_force(suggested):
    d, _ = suggested
    (d / "keep.yaml").write_text("mine\n")
    r = padiff("suggest", PAIRS + ":mlp", "--out", "keep.yaml", "--no-input", cwd=d)
    assert r.returncode == 2 and "--force" in r.stderr
    assert (d / "keep.yaml").read_text() == "mine\n"
    r = padiff("suggest", PAIRS + ":mlp", "--out", "keep.yaml", "--no-input", "--force", cwd=d)
    assert r.returncode == 0 and (d / "keep.yaml").read_text().startswith("# padiff layer map")


def test_review_needs_no_models(suggested):
    d, _ = suggested
    r = padiff("review", "map.yaml", cwd=d)
    assert r.returncode == 0
    assert "route: structure" in r.stdout and "Unpaired layers" in r.stdout and "act" in r.stdout


def test_review_of_a_broken_file_names_the_line(suggested):
    d, _ = suggested
    (d / "bad.yaml").write_text("version: 1\npairs:\n- paddle_path: fc1\n  torch_path: first\n- torch_path: x\n")
    r = padiff("review", "bad.yaml", cwd=d)
    assert r.returncode == 2 and "line 5" in r.stderr and "pairs[1]" in r.stderr and "paddle_path" in r.stderr


def test_diff_exit_codes_and_repairing(suggested):
    d, _ = suggested
    r = padiff("diff", "map.yaml", "map.yaml", cwd=d)
    assert r.returncode == 0 and "no changes." in r.stdout
    text = (d / "map.yaml").read_text().replace("torch_path: middle", "torch_path: TMP", 1)
    text = text.replace("torch_path: last", "torch_path: middle", 1).replace("torch_path: TMP", "torch_path: last")
    (d / "edited.yaml").write_text(text)
    r = padiff("diff", "map.yaml", "edited.yaml", cwd=d)
    assert r.returncode == 1
    assert "2 re-paired" in r.stdout or "re-paired" in r.stdout
    assert any("fc2" in ln and "middle" in ln and "last" in ln for ln in r.stdout.splitlines())


# --- run ----------------------------------------------------------------------------------------------
def test_run_aligned_exits_0_and_writes_reports(tmp_path):
    r = padiff("run", PAIRS + ":mlp", "--auto-weights", "--options", "atol=1e-5,rtol=1e-5,compare_mode=strict",
               "--report", "out/report.html", "--json", "out/report.json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "padiff: SUCCESS" in r.stdout
    assert "HTML report: " in r.stdout and "JSON report: " in r.stdout
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "paddle-tree" in html and "http" not in html
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["ok"] is True and data["options"]["compare_mode"] == "strict"


def test_run_difference_exits_1_and_names_the_first_pair(tmp_path):
    r = padiff("run", PAIRS + ":mlp_tanh", "--auto-weights", "--options", "atol=1e-5", "--log-dir", "mylogs",
               cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    out = r.stdout
    assert "padiff: FAILED — first difference in forward, step 0" in out
    assert "First differing layer pair: paddle fc3 (Linear) <-> torch last (Linear) [forward, step 0]" in out
    assert "fc3 (Linear)  <--- *** HERE ***" in out and "last (Linear)  <--- *** HERE ***" in out
    assert "cli.py" not in out  # only the user's frames
    log_line = next(ln for ln in out.splitlines() if ln.startswith("Full logs: "))
    log_dir = log_line.split(": ", 1)[1]
    assert log_dir.startswith("mylogs") and os.path.isfile(tmp_path / log_dir / "records.txt")


def test_run_with_synced_weights_and_no_auto_weights(tmp_path):
    r = padiff("run", PAIRS + ":mlp_synced", "--options", "atol=1e-5", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_run_with_a_map_file_and_with_a_bad_one(suggested):
    d, _ = suggested
    r = padiff("run", PAIRS + ":mlp", "--map", "map.yaml", "--auto-weights", "--options", "atol=1e-5", cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    (d / "wrong.yaml").write_text((d / "map.yaml").read_text().replace("torch_path: middle", "torch_path: midle"))
    r = padiff("run", PAIRS + ":mlp", "--map", "wrong.yaml", cwd=d)
    assert r.returncode == 2
    assert "pairs[1]" in r.stderr and "'midle'" in r.stderr and "Did you mean 'middle'" in r.stderr


def test_run_steps_with_optimizer_from_func(tmp_path):
    r = padiff("run", PAIRS + ":mlp_with_optimizer", "--steps", "2", "--options", "atol=1e-5", "--json", "r.json",
               cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["steps"] == 2 and {rec["step"] for rec in data["records"]} == {0, 1}


def test_run_with_map_auto(tmp_path):
    r = padiff("run", PAIRS + ":mlp", "--map", "auto", "--auto-weights", "--options", "atol=1e-5", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "padiff: layer map (route: " in r.stdout and "Layer map review" not in r.stdout  # a summary only
    review = r.stdout.split("full review: ")[1].split(";")[0].strip()
    assert review.endswith(os.path.join("auto-map", "review.txt"))
    with open(review) as fh:
        assert "Layer map review" in fh.read()


def test_full_workflow_suggest_edit_review_run(tmp_path):
    """From two models to a reviewed, edited map file and an HTML report, only through the command."""
    r = padiff("suggest", PAIRS + ":mlp", "--out", "map.yaml", "--no-input", cwd=tmp_path)
    assert r.returncode == 0
    text = (tmp_path / "map.yaml").read_text()
    # the person adds an ignore for the paddle ReLU that has no torch counterpart
    text = text.replace("ignores: []", "ignores:\n- side: paddle\n  kind: self\n  path: act")
    (tmp_path / "map.yaml").write_text(text)
    r = padiff("review", "map.yaml", cwd=tmp_path)
    assert r.returncode == 0 and any("paddle" in ln and "self" in ln and "act" in ln for ln in r.stdout.splitlines())
    r = padiff("run", PAIRS + ":mlp", "--map", "map.yaml", "--auto-weights", "--options", "atol=1e-5",
               "--report", "report.html", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "report.html").is_file()
