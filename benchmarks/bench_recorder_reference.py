"""The cost of ``Recorder(..., reference="float64")``: extra time, memory and disk of the float64 copy.

    python benchmarks/bench_recorder_reference.py [--cases convnet transformer] [--steps 4]
                                                   [--out benchmarks/results/recorder_reference.json]

A torch model of :mod:`models` trains with AdamW in the user's own loop (its own input every step).
Each configuration runs in a fresh process pinned to one thread: ``bare`` (no Recorder), ``full``
(``Recorder(level="full")``), ``full+ref`` (the same with ``reference="float64"``, loss given as
``rec.loss(loss, fn=...)``) and ``stats+ref``. Measured per configuration: the median step (wall and
process CPU seconds, after a first recorded step that makes the copy), the step ratio over ``bare``,
how far RSS grows above its level before the Recorder is made (sampled every 2 ms over all steps),
and the bytes written per step. The figures to quote are ``full+ref`` against ``full``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIGS = ("bare", "full", "full+ref", "stats+ref")


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def worker(case_name: str, config: str, steps: int) -> dict[str, Any]:
    """In a fresh process: ``steps`` + 1 training steps of the case's torch model under ``config``."""
    sys.path.insert(0, str(HERE))
    from timing import pin_threads

    pin_threads(1)  # before either framework is imported
    import models
    import torch

    import padiff

    case = models.build(case_name)
    model, inputs = case.module, case.example_inp[1]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def loss_of(out: Any) -> Any:
        return (out ** 2).mean()

    with tempfile.TemporaryDirectory() as tmp:
        rec = None
        if config != "bare":
            level, ref = config.split("+")[0], "float64" if config.endswith("+ref") else None
            rec = padiff.Recorder(model, os.path.join(tmp, "run"), level=level, graph=False, reference=ref)

        def step(i: int) -> None:
            ctx = rec.step(i) if rec is not None else None
            if ctx is not None:
                ctx.__enter__()
            loss = loss_of(model(**inputs))
            if rec is not None:
                rec.loss(loss, fn=loss_of)
            loss.backward()
            opt.step()
            opt.zero_grad()
            if ctx is not None:
                ctx.__exit__(None, None, None)

        base, peak, done = _rss_mib(), [0.0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_mib())
                time.sleep(0.002)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        step(0)  # the first step makes the float64 copy
        wall, cpu = [], []
        for i in range(1, steps + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            step(i)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        done.set()
        th.join()
        grown = max(peak[0], _rss_mib()) - base
        size = 0
        if rec is not None:
            rec.close()
            size = _folder_bytes(os.path.join(tmp, "run")) // (steps + 1)
    params = sum(p.numel() for p in model.parameters())
    return {"case": case_name, "config": config, "params": params, "step_s": round(statistics.median(wall), 4),
            "step_cpu_s": round(statistics.median(cpu), 4), "grown_mib": round(grown, 1), "bytes_per_step": size}


def _spawn(case_name: str, config: str, steps: int) -> dict[str, Any]:
    """One :func:`worker` in a fresh process, importing this checkout's padiff."""
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", case_name, config,
                               "--steps", str(steps)], cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(HERE.parent)}, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if proc.returncode == 0 and lines else {"error": (proc.stderr or proc.stdout)[-600:]}


def measure(case_name: str, steps: int) -> dict[str, Any]:
    """Every configuration of one case, and the ratios to quote."""
    runs = {c: _spawn(case_name, c, steps) for c in CONFIGS}
    out: dict[str, Any] = {"case": case_name, "runs": runs}
    if all("error" not in r for r in runs.values()):
        bare, full, ref = runs["bare"], runs["full"], runs["full+ref"]
        out["full_over_bare"] = round(full["step_s"] / bare["step_s"], 2)
        out["full_ref_over_bare"] = round(ref["step_s"] / bare["step_s"], 2)
        out["ref_over_full_wall"] = round(ref["step_s"] / full["step_s"], 2)
        out["ref_over_full_cpu"] = round(ref["step_cpu_s"] / full["step_cpu_s"], 2)
        out["ref_extra_mib"] = round(ref["grown_mib"] - full["grown_mib"], 1)
        out["ref_extra_bytes_per_step"] = ref["bytes_per_step"] - full["bytes_per_step"]
        out["model_mib_float32"] = round(full["params"] * 4 / 2**20, 1)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["convnet", "transformer"])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / "results" / "recorder_reference.json"))
    ap.add_argument("--worker", nargs=2, metavar=("CASE", "CONFIG"))
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker[0], a.worker[1], a.steps)))
        return
    res = {"load_average": os.getloadavg(), "cases": [measure(c, a.steps) for c in a.cases]}
    print(json.dumps(res, indent=1))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
