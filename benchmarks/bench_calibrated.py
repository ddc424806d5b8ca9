"""The cost of compare_mode="calibrated": extra time and peak memory of the float64 reference run.

A calibrated run also runs a float64 copy of the torch model (one more forward and backward,
one more model copy, its layer outputs and output gradients kept in float64). Measured against
the same run in ``diff_phase="both"`` mean mode, one thread per framework:

- time: interleaved repeats of both runs in this process (median wall seconds, ratio);
- memory: each run in a fresh process, how far RSS grows during the run (sampled); the extra of
  calibrated over mean, also divided by the torch model's own forward+backward growth.

    python benchmarks/bench_calibrated.py [--cases convnet transformer] [--repeats 3] [--json out.json]

A case ``real:<pair>`` is a real pair of tests/real_pairs (run in the real-pairs venv from the
repository root): both packages' models, the torch weights copied once under the aligner's
proposal, which every run then uses as its layer map.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def build_case(case_name: str) -> Any:
    """The benchmark case ``case_name`` (models.py), or ``real:<pair>``: a real pair, weights copied, with its map."""
    import models

    if not case_name.startswith("real:"):
        return models.build(case_name)
    import contextlib
    import io

    import padiff
    from padiff.assign import with_special_pairs
    from tests.real_pairs.pairs import by_name
    from tests.real_pairs.score import build

    layer, module, p_inp, t_inp = build(by_name(case_name[5:]))
    with contextlib.redirect_stdout(io.StringIO()):
        lm = with_special_pairs(padiff.suggest_layer_map(layer, module, ({**p_inp}, {**t_inp})), layer, module)
        if not padiff.assign_weight(layer, module, layer_map=lm):
            raise RuntimeError(f"{case_name}: the weights could not be copied")
    case = models.Case(case_name, layer, module, (p_inp, t_inp))
    case.layer_map = lm  # type: ignore[attr-defined]
    return case


def measure(case_name: str, repeats: int) -> dict[str, Any]:
    """Time and memory of ``both`` and ``calibrated`` on one case."""
    from timing import compared_run, interleaved, pin_threads

    pin_threads(1)
    case = build_case(case_name)
    times = interleaved({m: (lambda m=m: compared_run(case, m)) for m in ("both", "calibrated")}, repeats)
    grown = {w: _spawn(case_name, w).get("grown_mib") for w in ("torch", "both", "calibrated")}
    out: dict[str, Any] = {"case": case_name, "seconds": {k: round(v["median"], 3) for k, v in times.items()},
                           "cpu_seconds": {k: round(v["cpu_median"], 3) for k, v in times.items()},
                           "passed": {m: compared_run(case, m) for m in ("both", "calibrated")}, "grown_mib": grown}
    out["time_ratio"] = round(times["calibrated"]["median"] / times["both"]["median"], 3)
    out["cpu_ratio"] = round(times["calibrated"]["cpu_median"] / times["both"]["cpu_median"], 3)
    if None not in grown.values():
        out["extra_mib"] = round(grown["calibrated"] - grown["both"], 1)
        out["extra_over_torch_activation"] = round(out["extra_mib"] / grown["torch"], 2) if grown["torch"] else None
    return out


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(case_name: str, what: str) -> dict[str, Any]:
    """In a fresh process: how far RSS grows above its level before the run, during one run of ``what``.

    The peak RSS of the whole process is the imports' (about 1.3 GB), so the growth during the run
    is sampled every 2 ms instead; a first run warms the allocators up and is not counted.
    """
    from timing import bare_torch, compared_run, pin_threads

    pin_threads(1)
    case = build_case(case_name)

    def run() -> None:
        if what == "torch":
            bare_torch(case.module, case.example_inp[1], True)
        else:
            compared_run(case, what)

    run()
    base, peak, done = _rss_mib(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.002)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    run()
    done.set()
    th.join()
    return {"case": case_name, "what": what, "grown_mib": round(max(peak[0], _rss_mib()) - base, 1)}


def _spawn(case_name: str, what: str) -> dict[str, Any]:
    """One :func:`worker` in a fresh process, importing this checkout's padiff."""
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", case_name, what],
                              cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(HERE.parent)}, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if proc.returncode == 0 and lines else {"error": (proc.stderr or proc.stdout)[-400:]}


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=["convnet", "transformer"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", nargs=2, metavar=("CASE", "WHAT"))
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)), flush=True)
        return
    results = {}
    for name in args.cases:
        res = measure(name, args.repeats)
        results[name] = res
        print(json.dumps(res), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
