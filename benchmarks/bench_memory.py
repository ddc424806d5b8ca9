"""Peak extra memory (RSS) of a compared run over the bare run, each in a fresh process.

Every measurement is its own subprocess (imports, case built, one run, then
``getrusage(RUSAGE_SELF).ru_maxrss``), so nothing cached by an earlier run is counted:

- ``idle``: imports (padiff included, in every worker) and the built models only;
- ``paddle`` / ``torch``: one forward+backward of that model alone — minus ``idle`` this is
  the model's own activation memory (the yardstick of the target);
- ``bare``: both models forward+backward, one after the other (the baseline);
- ``forward`` / ``both`` / ``single_step``: one ``auto_diff`` in that mode.

Extra memory of a mode = its peak − the bare peak; the ratio divides it by the larger
model's activation memory (target ≤ 1.5). ``--python`` runs the workers with another
interpreter (the padiff 0.2.0 venv, see :mod:`bench_padiff02`).

    python benchmarks/bench_memory.py [--cases convnet] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WHATS = ("idle", "paddle", "torch", "bare", "forward", "both", "single_step")


def worker(case_name: str, what: str, threads: int) -> dict[str, Any]:
    """Run one measurement in this (fresh) process and return its peak RSS in MiB."""
    from timing import MODES, bare_paddle, bare_torch, compared_run, pin_threads

    pin_threads(threads or None)
    import models

    import padiff  # noqa: F401 - in every worker alike, so only the run itself is measured

    case = models.build(case_name)
    passed = None
    if what == "paddle":
        bare_paddle(case.layer, case.example_inp[0], True)
    elif what == "torch":
        bare_torch(case.module, case.example_inp[1], True)
    elif what == "bare":
        bare_paddle(case.layer, case.example_inp[0], True)
        bare_torch(case.module, case.example_inp[1], True)
    elif what in MODES:
        passed = compared_run(case, what)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"case": case_name, "what": what, "peak_mib": round(peak_kib / 1024, 1), "passed": passed}


def spawn(case_name: str, what: str, python: str, threads: int) -> dict[str, Any]:
    """One measurement in a fresh subprocess of ``python``; its cwd is a temp dir (log files)."""
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run([python, str(HERE / "bench_memory.py"), "--worker", case_name, what,
                               "--threads", str(threads)], cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": ""}, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"case": case_name, "what": what, "error": (proc.stderr or proc.stdout)[-600:]}
    return json.loads(lines[-1])


def measure(case_name: str, python: str = sys.executable, threads: int = 1,
            whats: tuple[str, ...] = WHATS) -> dict[str, Any]:
    """All measurements of one case, and the derived activation memory, extras and ratios."""
    raw = {w: spawn(case_name, w, python, threads) for w in whats}
    peak = {w: r.get("peak_mib") for w, r in raw.items()}
    out: dict[str, Any] = {"case": case_name, "peak_mib": peak, "threads": threads or "default",
                           "errors": {w: r["error"] for w, r in raw.items() if "error" in r}}
    if None in (peak.get("idle"), peak.get("paddle"), peak.get("torch"), peak.get("bare")):
        return out
    act = {"paddle": peak["paddle"] - peak["idle"], "torch": peak["torch"] - peak["idle"]}
    larger = max(act.values())
    out["activation_mib"] = {k: round(v, 1) for k, v in act.items()}
    out["extra_mib"] = {w: round(peak[w] - peak["bare"], 1) for w in whats if w in ("forward", "both",
                                                                                    "single_step") and peak[w]}
    out["extra_ratio"] = {w: round(v / larger, 3) for w, v in out["extra_mib"].items()} if larger > 0 else {}
    out["passed"] = {w: raw[w].get("passed") for w in out["extra_mib"]}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line (driver, or ``--worker CASE WHAT`` inside a subprocess)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("CASE", "WHAT"))
    ap.add_argument("--cases", nargs="*", default=["convnet", "transformer", "resnet50"])
    ap.add_argument("--modes", nargs="*", default=["forward", "both", "single_step"])
    ap.add_argument("--python", default=sys.executable, help="interpreter for the workers")
    ap.add_argument("--threads", type=int, default=1, help="threads per framework (0: their defaults)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.threads)), flush=True)
        return {}
    whats = ("idle", "paddle", "torch", "bare", *args.modes)
    results = {}
    for name in args.cases:
        res = measure(name, args.python, args.threads, whats)
        results[name] = res
        print(f"{name}: activation {res.get('activation_mib')} MiB, extra {res.get('extra_mib')} MiB, "
              f"ratio {res.get('extra_ratio')} errors {list(res['errors'])}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
