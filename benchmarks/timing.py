"""Shared measurement helpers: the bare runs, the compared modes, medians of repeats.

Imports no padiff at load time: :func:`compared_run` calls whichever padiff the running
interpreter has, so the same harness times padiff 0.2.0 when run from its venv. The bare
baseline is what a user pays without any tool: paddle forward(+backward) then torch
forward(+backward) on the same inputs, with the mean of the output as the loss (padiff's
built-in projection costs the same: one multiply and one sum), gradients cleared afterwards.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

#: tolerances loose enough that the agreeing pairs pass in both tools (a failing run stops
#: early in padiff 0.2.0 and would be timed short)
TOLERANCES = {"atol": 1e-4, "rtol": 1e-3}

#: compared modes: the options passed to ``auto_diff`` and the bare run each is divided by
MODES: dict[str, dict[str, Any]] = {
    "forward": {"options": {"diff_phase": "forward"}, "bare": "fwd"},
    "both": {"options": {"diff_phase": "both"}, "bare": "fwd_bwd"},
    "single_step": {"options": {"diff_phase": "both", "single_step": True}, "bare": "fwd_bwd"},
    # compare_mode="calibrated": a float64 copy of the torch model runs too (benchmarks/bench_calibrated.py)
    "calibrated": {"options": {"diff_phase": "both", "compare_mode": "calibrated"}, "bare": "fwd_bwd"},
    # what a user types: the torch weights copied first (opt-in: --modes both_auto_weights)
    "both_auto_weights": {"options": {"diff_phase": "both"}, "bare": "fwd_bwd", "auto_weights": True},
}
DEFAULT_MODES = ("forward", "both", "single_step")


def mode_options(mode: str, case: Any = None) -> dict[str, Any]:
    """A fresh options dict for ``mode`` (padiff 0.2.0 mutates the dict it is given), with the case's tolerances."""
    return {**(getattr(case, "tolerances", None) or TOLERANCES), **MODES[mode]["options"]}


def compared_run(case: Any, mode: str) -> bool:
    """One ``auto_diff`` of whichever padiff this interpreter imports, printout swallowed.

    The call is written so that padiff 0.2.0 takes it too (its ``auto_weights`` defaults
    to True, so it is passed explicitly); True iff the tool reported agreement.
    """
    import padiff

    # a case may carry its layer map (a real pair's proposal, bench_calibrated.py's real: cases)
    extra = {"layer_map": case.layer_map} if getattr(case, "layer_map", None) is not None else {}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return bool(padiff.auto_diff(case.layer, case.module, case.example_inp,
                                     auto_weights=bool(MODES[mode].get("auto_weights", False)),
                                     options=mode_options(mode, case), **extra))


def bare_paddle(layer: Any, inp: dict[str, Any], backward: bool) -> None:
    """One paddle forward (and backward of the output mean), gradients cleared."""
    out = layer(**inp)
    if backward:
        out.mean().backward()
        layer.clear_gradients()


def bare_torch(module: Any, inp: dict[str, Any], backward: bool) -> None:
    """One torch forward (and backward of the output mean), gradients cleared."""
    out = module(**inp)
    if backward:
        out.mean().backward()
        module.zero_grad(set_to_none=True)


def bare_run(case: Any, kind: str) -> None:
    """Both models bare: ``kind`` is ``"fwd"`` (plain forward calls, autograd on as in a
    compared run) or ``"fwd_bwd"``."""
    backward = kind == "fwd_bwd"
    bare_paddle(case.layer, case.example_inp[0], backward)
    bare_torch(case.module, case.example_inp[1], backward)


def pin_threads(n: int | None) -> None:
    """Give each framework ``n`` threads (``None``: leave their defaults).

    Call before paddle or torch is imported. Two OpenMP runtimes (paddle's Intel one and
    torch's GNU one) each spinning after their kernels fight over a 2-core machine, and the
    timings of the bare run alone then swing 2-3x from one repeat to the next; one thread
    each makes the ratios reproducible. Recorded in the results.
    """
    if n is None:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    import paddle
    import torch

    torch.set_num_threads(n)
    paddle.base.core.set_num_threads(n)


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and process-CPU seconds of one call, after a garbage collection so earlier garbage is not billed."""
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, dict[str, Any]]:
    """Run every function ``warmup`` times, then ``repeats`` rounds, each round calling each once.

    Interleaving puts the bare and the compared runs in the same machine conditions;
    returns per name the median, the min and all samples of wall seconds, and the median
    of process-CPU seconds (steadier when other processes load the machine).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            w, c = timed(fn)
            wall[k].append(w)
            cpu[k].append(c)
    return {k: {"median": statistics.median(v), "min": min(v), "cpu_median": statistics.median(cpu[k]),
                "samples": [round(x, 4) for x in v]} for k, v in wall.items()}


def ratios(times: dict[str, dict[str, Any]], stat: str = "median") -> dict[str, float]:
    """``mode → stat(compared) / stat(bare)`` for each mode present in ``times``."""
    out = {}
    for mode, spec in MODES.items():
        if mode in times:
            out[mode] = round(times[mode][stat] / times["bare_" + spec["bare"]][stat], 3)
    return out
