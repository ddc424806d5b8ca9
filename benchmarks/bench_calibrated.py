"""The cost of compare_mode="calibrated": extra time and peak memory of the float64 reference run.

A calibrated run also runs a float64 copy of the torch model (one more forward and backward,
one more model copy, its layer outputs and output gradients kept in float64). Measured against
the same run in ``diff_phase="both"`` mean mode, one thread per framework:

- time: interleaved repeats of both runs in this process (median wall seconds, ratio);
- memory: each run in a fresh process (``bench_memory.py`` workers), peak RSS; the extra of
  calibrated over mean, also divided by the larger model's activation memory.

    python benchmarks/bench_calibrated.py [--cases convnet transformer] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def measure(case_name: str, repeats: int) -> dict[str, Any]:
    """Time and memory of ``both`` and ``calibrated`` on one case."""
    import bench_memory
    import models
    from timing import compared_run, interleaved, pin_threads

    pin_threads(1)
    case = models.build(case_name)
    times = interleaved({m: (lambda m=m: compared_run(case, m)) for m in ("both", "calibrated")}, repeats)
    peaks = {w: bench_memory.spawn(case_name, w, sys.executable, 1).get("peak_mib")
             for w in ("idle", "paddle", "torch", "both", "calibrated")}
    out: dict[str, Any] = {"case": case_name, "seconds": {k: round(v["median"], 3) for k, v in times.items()},
                           "passed": {m: compared_run(case, m) for m in ("both", "calibrated")}, "peak_mib": peaks}
    out["time_ratio"] = round(times["calibrated"]["median"] / times["both"]["median"], 3)
    if None not in peaks.values():
        larger = max(peaks["paddle"] - peaks["idle"], peaks["torch"] - peaks["idle"])
        out["extra_mib"] = round(peaks["calibrated"] - peaks["both"], 1)
        out["extra_over_activation"] = round(out["extra_mib"] / larger, 2) if larger > 0 else None
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=["convnet", "transformer"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    results = {}
    for name in args.cases:
        res = measure(name, args.repeats)
        results[name] = res
        print(json.dumps(res), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
