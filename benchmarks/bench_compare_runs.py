"""``compare_runs`` throughput: GB of recorded tensors compared per CPU second, this checkout against another.

    python benchmarks/bench_compare_runs.py [--width 2048] [--depth 8] [--steps 2] [--padiff-root OLD]
                                           [--rounds 2] [--out benchmarks/results/compare_runs.json]

Records once (this checkout's Recorder, level ``full``): a paddle and a torch MLP of ``depth``
Linear layers ``width`` wide, the torch weights copied into paddle's layout, ``steps`` SGD steps
each, so the two runs agree as a correct port does. Then ``compare_runs`` of the two folders
runs in fresh processes, alternating this checkout and ``--padiff-root`` (the code before a
change; read compatibility of the run folder is the old reader's), ``rounds`` times each, with
the default options (everything fails at atol 0, so the failure figures are computed too) and
with ``atol=1e-4, rtol=1e-3`` (everything agrees). Figures: CPU and wall seconds, GB/s per core
= bytes of the two run folders / CPU seconds; 1 thread each (``OMP_NUM_THREADS=1``), so a
loaded machine moves the CPU seconds less than the wall.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_RECORD = """
import sys, numpy as np, padiff, torch, paddle
out, w, depth, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
tm = torch.nn.Sequential(*[torch.nn.Linear(w, w) for _ in range(depth)])
pm = paddle.nn.Sequential(*[paddle.nn.Linear(w, w) for _ in range(depth)])
for tl, pl in zip(tm, pm):
    pl.weight.set_value(tl.weight.detach().numpy().T.copy())
    pl.bias.set_value(tl.bias.detach().numpy())
x = np.random.default_rng(0).standard_normal((64, w)).astype("float32")
topt = torch.optim.SGD(tm.parameters(), lr=1e-3)
popt = paddle.optimizer.SGD(learning_rate=1e-3, parameters=pm.parameters())
with padiff.Recorder(tm, out + "/torch", graph=False) as rec:
    for i in range(steps):
        with rec.step(i):
            tm(torch.from_numpy(x)).mean().backward(); topt.step(); topt.zero_grad()
with padiff.Recorder(pm, out + "/paddle", graph=False) as rec:
    for i in range(steps):
        with rec.step(i):
            pm(paddle.to_tensor(x)).mean().backward(); popt.step(); popt.clear_grad()
"""

_COMPARE = """
import json, sys, time, padiff
d, tol = sys.argv[1], sys.argv[2] == "1"
opts = {"atol": 1e-4, "rtol": 1e-3} if tol else None
w, c = time.perf_counter(), time.process_time()
rep = padiff.compare_runs(d + "/paddle", d + "/torch", options=opts)
print("RESULT " + json.dumps({"cpu": time.process_time() - c, "wall": time.perf_counter() - w, "agree": bool(rep)}))
"""


def _run(code: str, root: str, *args: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    # cwd: a folder without a padiff package, or ``-c`` would import the one in the current folder
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False,
                          cwd=tempfile.gettempdir())
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or (line is None and "RESULT" in code):
        raise SystemExit(f"failed ({root}):\n{proc.stderr[-3000:]}")
    return json.loads(line[7:]) if line else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--padiff-root", default="", help="another checkout to compare against (the code before)")
    ap.add_argument("--out", default=str(HERE / "results" / "compare_runs.json"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="padiff-bench-compare-runs-")
    try:
        _run(_RECORD, str(ROOT), tmp, str(a.width), str(a.depth), str(a.steps))
        n = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
        roots = {"this": str(ROOT)} | ({"other": a.padiff_root} if a.padiff_root else {})
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {k: {"default": [], "tolerant": []} for k in roots}
        for _ in range(a.rounds):
            for name, root in roots.items():
                for case, tol in (("default", "0"), ("tolerant", "1")):
                    runs[name][case].append(_run(_COMPARE, root, tmp, tol))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "bytes": n,
                           "width": a.width, "depth": a.depth, "steps": a.steps, "load_average": os.getloadavg(),
                           "roots": roots}
    for name, cases in runs.items():
        for case, rs in cases.items():
            cpu, wall = statistics.median(r["cpu"] for r in rs), statistics.median(r["wall"] for r in rs)
            res[f"{name}_{case}"] = {"cpu": round(cpu, 3), "wall": round(wall, 3), "agree": rs[0]["agree"],
                                     "gb_per_s_per_core": round(n / 1e9 / cpu, 3),
                                     "gb_per_s_wall": round(n / 1e9 / wall, 3)}
    print(json.dumps(res, indent=1))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
