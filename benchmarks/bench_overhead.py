"""Time overhead of ``padiff.auto_diff`` over running the two models bare, as ratios.

For each case (see :mod:`models`) and mode (``forward``, ``both``, ``single_step``) the
compared run and the bare runs are interleaved in one process; the ratio is the median
compared time over the median bare time: bare forward for ``forward``, bare
forward+backward for ``both`` and ``single_step``. Weights are made equal when the case
is built, so ``auto_weights`` is off and no weight copy is timed; the opt-in mode
``both_auto_weights`` times what a user types, ``auto_diff(..., auto_weights=True)``.

    python benchmarks/bench_overhead.py [--cases convnet transformer] [--repeats 7] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import DEFAULT_MODES, MODES, bare_run, compared_run, interleaved, pin_threads, ratios

#: repeats per case (resnet50 is slow on 2 cores: fewer rounds keep run_all under ~10 min)
DEFAULT_REPEATS = {"convnet": 5, "transformer": 5, "resnet50": 3}


def measure(name: str, repeats: int | None = None, modes: tuple[str, ...] = DEFAULT_MODES) -> dict[str, Any]:
    """Times, ratios (wall and CPU) and verdicts for one case."""
    import models

    case = models.build(name)
    repeats = repeats or DEFAULT_REPEATS.get(name, 5)
    verdicts: dict[str, bool] = {}

    def run_mode(mode: str) -> Any:
        def fn() -> None:
            verdicts[mode] = compared_run(case, mode)
        return fn

    fns = {"bare_fwd": lambda: bare_run(case, "fwd"), "bare_fwd_bwd": lambda: bare_run(case, "fwd_bwd")}
    errors: dict[str, str] = {}
    for m in modes:  # the warm-up round; a mode the tool cannot run is reported, not timed
        try:
            run_mode(m)()
            fns[m] = run_mode(m)
        except Exception as e:  # noqa: BLE001 - padiff 0.2.0 raises plain RuntimeError/AssertionError
            errors[m] = f"{type(e).__name__}: {str(e)[:300]}"
    for fn in list(fns.values())[:2]:
        fn()
    times = interleaved(fns, repeats, warmup=0)
    return {"case": name, "repeats": repeats, "times": times, "ratios": ratios(times),
            "cpu_ratios": ratios(times, "cpu_median"), "passed": verdicts, "errors": errors}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: measure the chosen cases, print one line per case, optionally write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="*", default=["convnet", "transformer", "resnet50"])
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--modes", nargs="*", default=list(DEFAULT_MODES), choices=list(MODES))
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--threads", type=int, default=1, help="threads per framework (0: their defaults)")
    args = ap.parse_args(argv)
    pin_threads(args.threads or None)
    import padiff

    tool = f"padiff {padiff.__version__}"
    results = {}
    for name in args.cases:
        res = measure(name, args.repeats, tuple(args.modes))
        res["threads"] = args.threads or "default"
        res["tool"] = tool
        results[name] = res
        bare = {k: round(v["median"], 3) for k, v in res["times"].items() if k.startswith("bare")}
        print(f"{tool} {name}: wall ratios {res['ratios']} cpu ratios {res['cpu_ratios']} bare {bare} "
              f"passed {res['passed']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
