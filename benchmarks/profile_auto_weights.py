"""Where the time of ``auto_diff(..., auto_weights=True)`` goes, by part, under ``cProfile``.

One case of :mod:`models`, the frameworks' default threads unless ``--threads`` says
otherwise; one warm-up call, then ``--calls`` profiled calls and as many bare
forward+backward runs timed in the same process. The table splits the compared call into
what padiff adds (comparisons, weight copy, snapshots, hooks and bookkeeping) and what the
two models cost themselves (their forward and backward passes, hooks included).

    python benchmarks/profile_auto_weights.py [--case convnet] [--calls 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import bare_run, compared_run, pin_threads

#: parts of a compared call: (label, file suffix, function name) whose cumulative time is shown
PARTS = [
    ("whole auto_diff call", "padiff/api.py", "compare"),
    ("compared run (Engine.run)", "padiff/runtime/engine/run.py", "run"),
    ("  comparisons (compare_arrays)", "padiff/compare/arrays.py", "compare_arrays"),
    ("  backward passes (both models; gradient comparisons inside)", "padiff/runtime/engine/calls.py", "run_backward"),
    ("  forward passes (both models, hooked; outputs compared inside)", "padiff/runtime/engine/calls.py", "call_model"),
    ("discovery forward (discover_pairs)", "padiff/runtime/discovery.py", "discover_pairs"),
    ("weight plan + copy (_assign)", "padiff/api.py", "_assign"),
    ("snapshots (SideSnapshot.take)", "padiff/adapters/snapshot.py", "take"),
]


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    """Cumulative seconds of the function ``name`` defined in a file ending with ``suffix``."""
    total = 0.0
    for (path, _line, fn), row in stats.stats.items():  # type: ignore[attr-defined]
        if fn == name and path.endswith(suffix):
            total += row[3]
    return total


def main(argv: list[str] | None = None) -> None:
    """Command line: print the per-part table for one case."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="convnet")
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="threads per framework (0: their defaults)")
    args = ap.parse_args(argv)
    pin_threads(args.threads or None)
    import models

    case = models.build(args.case)
    compared_run(case, "both_auto_weights")  # warm-up
    bare_run(case, "fwd_bwd")
    t0 = time.perf_counter()
    for _ in range(args.calls):
        bare_run(case, "fwd_bwd")
    bare = (time.perf_counter() - t0) / args.calls
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(args.calls):
        compared_run(case, "both_auto_weights")
    prof.disable()
    wall = (time.perf_counter() - t0) / args.calls
    stats = pstats.Stats(prof)
    whole = cumulative(stats, "padiff/api.py", "compare") / args.calls
    print(f"{args.case}: bare fwd+bwd {bare:.3f} s, compared (profiled) {wall:.3f} s per call, "
          f"ratio {wall / bare:.2f}")
    print("| part | s per call | share of the call |\n|---|---|---|")
    for label, suffix, name in PARTS:
        s = cumulative(stats, suffix, name) / args.calls
        print(f"| {label} | {s:.3f} | {100 * s / whole:.0f}% |")


if __name__ == "__main__":
    main()
