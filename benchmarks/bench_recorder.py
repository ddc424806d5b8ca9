"""Benchmark the offline Recorder: step overhead over a bare step, and run-folder size per million parameters.

    python benchmarks/bench_recorder.py [--width 512] [--depth 4] [--steps 5] [--out benchmarks/results/recorder.json]

For each framework, an MLP of ``depth`` Linear+ReLU blocks (``width`` wide, batch 32) trains
with SGD in the user's own loop; measured per level (``full``, ``stats``): the median step
time with ``Recorder`` over the median bare step (ratio), and the bytes written per step per
million parameters (the run's one-time files apart: ``graph.json``, header, skeleton), and the
one-time cost of exporting the model's graph after the first recorded step (``graph_export_s``,
also as a number of bare steps). Frameworks are imported before any timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import numpy as np  # noqa: E402

import padiff  # noqa: E402


def _folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _make(fw: str, width: int, depth: int) -> tuple[Any, Callable[[], None], int]:
    x = np.random.default_rng(0).standard_normal((32, width)).astype("float32")
    if fw == "paddle":
        import paddle

        layers = []
        for _ in range(depth):
            layers += [paddle.nn.Linear(width, width), paddle.nn.ReLU()]
        model = paddle.nn.Sequential(*layers)
        opt = paddle.optimizer.SGD(learning_rate=1e-3, parameters=model.parameters())
        xt = paddle.to_tensor(x)

        def step() -> None:
            model(xt).mean().backward()
            opt.step()
            opt.clear_grad()
        n = sum(int(np.prod(p.shape)) for p in model.parameters())
    else:
        import torch

        mods: list[Any] = []
        for _ in range(depth):
            mods += [torch.nn.Linear(width, width), torch.nn.ReLU()]
        model = torch.nn.Sequential(*mods)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        xt = torch.from_numpy(x)

        def step() -> None:
            model(xt).mean().backward()
            opt.step()
            opt.zero_grad()
        n = sum(p.numel() for p in model.parameters())
    return model, step, n


def _median_time(fn: Callable[[], None], steps: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``fn`` (CPU time moves less on a shared machine)."""
    wall, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def bench(fw: str, width: int, depth: int, steps: int) -> dict[str, Any]:
    """Overhead ratios and bytes per step per million parameters for one framework."""
    model, step, n = _make(fw, width, depth)
    step()  # warm-up
    bare, bare_cpu = _median_time(step, steps)
    out: dict[str, Any] = {"params": n, "bare_step_s": bare, "bare_step_cpu_s": bare_cpu}
    for level in ("full", "stats"):
        with tempfile.TemporaryDirectory() as tmp:
            rec = padiff.Recorder(model, os.path.join(tmp, "run"), level=level)
            counter = iter(range(10**6))

            def recorded(rec: Any = rec, counter: Any = counter) -> None:
                with rec.step(next(counter)):
                    step()
            t0 = time.perf_counter()
            recorded()  # the first recorded step also exports the graph (once per run)
            first = time.perf_counter() - t0
            t, t_cpu = _median_time(recorded, steps)
            rec.close()
            rank = os.path.join(tmp, "run", "rank-0")
            once = sum(os.path.getsize(os.path.join(rank, f)) for f in ("graph.json", "run.json", "skeleton.json")
                       if os.path.exists(os.path.join(rank, f)))
            size = (_folder_bytes(os.path.join(tmp, "run")) - once) / (steps + 1)
            with open(os.path.join(rank, "graph.json")) as f:
                graph = json.load(f)
        out[level] = {"step_s": t, "overhead_ratio": round(t / bare, 2),
                      "cpu_overhead_ratio": round(t_cpu / bare_cpu, 2),
                      "bytes_per_step_per_mparam": round(size / (n / 1e6)), "first_step_s": round(first, 3),
                      "graph_export_s": graph.get("seconds"), "graph_error": graph.get("error", ""),
                      "graph_export_in_bare_steps": round(float(graph.get("seconds") or 0) / bare, 1),
                      "one_time_bytes": once}
    return out


def main() -> None:
    """Run both frameworks and print/save the figures."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "recorder.json"))
    a = ap.parse_args()
    import paddle  # noqa: F401 - imported before timing
    import torch  # noqa: F401

    res = {fw: bench(fw, a.width, a.depth, a.steps) for fw in ("paddle", "torch")}
    print(json.dumps(res, indent=1))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
