"""The same overhead and memory cases with padiff 0.2.0 from PyPI, in its own venv.

Set-up (once, idempotent): ``benchmarks/.venv-padiff02`` is created with this
interpreter, a ``.pth`` file lets it see this venv's packages (paddle, torch, numpy: the
same builds as ours, nothing re-downloaded), and ``pip install --no-deps padiff==0.2.0
pyyaml`` puts the old tool in the venv's own site-packages, which come first. Our padiff
is installed in editable mode through a ``.pth`` *hook*, and ``.pth`` files of a
directory added by another ``.pth`` are not run, so ``import padiff`` there is 0.2.0; the
set-up checks it. The two packages named padiff never meet in one process: the old one
runs :mod:`bench_overhead` and :mod:`bench_memory` in subprocesses of the venv's python,
with the very harness (models, bare runs, options) used for ours.

    python benchmarks/bench_padiff02.py [--cases convnet transformer resnet50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-padiff02"

#: fewer rounds than for ours: padiff 0.2.0 takes ~3x longer per run
REPEATS = {"convnet": 3, "transformer": 3, "resnet50": 1}


def venv_python() -> Path:
    return VENV / "bin" / "python"


def setup() -> str:
    """Create the venv and install padiff 0.2.0 (skipped when present); returns its version."""
    py = venv_python()
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        Path(site, "_padiff_bench_base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = [str(py), "-c", "import padiff, sys; print(padiff.__version__, padiff.__file__)"]
    got = subprocess.run(probe, capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False)
    if got.returncode != 0 or not got.stdout.startswith("0.2.0 "):
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "padiff==0.2.0", "pyyaml"], check=True)
        got = subprocess.run(probe, capture_output=True, text=True, cwd=tempfile.gettempdir(), check=True)
    version, path = got.stdout.split()[:2]
    if version != "0.2.0" or str(VENV) not in path:
        raise RuntimeError(f"the padiff 0.2.0 venv imports padiff {version} from {path}")
    return version


def _run_json(args: list[str]) -> dict[str, Any]:
    """Run one of our scripts with the venv's python (cwd: a temp dir for 0.2.0's log files)."""
    with tempfile.TemporaryDirectory() as cwd:
        out = Path(cwd) / "out.json"
        proc = subprocess.run([str(venv_python()), *args, "--json", str(out)], cwd=cwd, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": ""}, check=False)
        if proc.returncode != 0 or not out.exists():
            return {"error": (proc.stderr or proc.stdout)[-1500:]}
        return json.loads(out.read_text())


def measure(cases: list[str], threads: int = 1, memory: bool = True) -> dict[str, Any]:
    """Overhead (all modes) and memory (``both``) of padiff 0.2.0 on ``cases``."""
    version = setup()
    overhead: dict[str, Any] = {}
    for name in cases:
        res = _run_json([str(HERE / "bench_overhead.py"), "--cases", name, "--repeats", str(REPEATS.get(name, 3)),
                         "--threads", str(threads)])
        overhead[name] = res.get(name, res)
        print(f"padiff {version} {name}: wall ratios {overhead[name].get('ratios')} "
              f"cpu ratios {overhead[name].get('cpu_ratios')} errors {overhead[name].get('errors')}", flush=True)
    mem: dict[str, Any] = {}
    if memory:
        mem = _run_json([str(HERE / "bench_memory.py"), "--cases", *cases, "--modes", "both",
                         "--threads", str(threads), "--python", str(venv_python())])
        for name, res in mem.items():
            print(f"padiff {version} {name}: extra memory {res.get('extra_mib')} MiB ratio {res.get('extra_ratio')}",
                  flush=True)
    return {"version": version, "overhead": overhead, "memory": mem}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: set up, measure, optionally write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=["convnet", "transformer", "resnet50"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--setup-only", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.setup_only:
        print(f"padiff {setup()} ready in {VENV}")
        return {}
    res = measure(args.cases, args.threads, not args.no_memory)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
