"""Hints about a run that cannot agree for reasons outside the port: randomness, modes, precision.

These add warnings to the report; they never change a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from padiff.adapters import PADDLE, TORCH
from padiff.adapters.snapshot import SideSnapshot
from padiff.options import DiffOptions
from padiff.report.records import DiffReport, ReportWarning


def randomness_warnings(layer: Any, module: Any) -> list[ReportWarning]:
    """Before a run: Dropout layers in train mode, and the two models in different modes."""
    out = []
    for side, root in ((PADDLE, layer), (TORCH, module)):
        for path, m in side.named_layers(root):
            p = getattr(m, "p", None)
            if "dropout" in type(m).__name__.lower() and side.is_training(m) and isinstance(p, float) and p > 0:
                out.append(ReportWarning(
                    f"{side.name} {path} ({type(m).__name__}, p={p}) is in train mode: its random masks differ "
                    "between frameworks, so results cannot agree. Call .eval() on both models or set p=0.",
                    "dropout_train"))
    p_train, t_train = PADDLE.is_training(layer), TORCH.is_training(module)
    if p_train != t_train:
        out.append(ReportWarning(f"the paddle model is in {'train' if p_train else 'eval'} mode and the torch model in "
                                 f"{'train' if t_train else 'eval'} mode; BatchNorm and Dropout will behave "
                                 "differently.", "mode_mismatch"))
    return out


# float16/bfloat16 are compared in float32; below these tolerances (torch.testing's defaults
# for the two types) rounding alone makes the two sides differ
_HALF_RTOL = {"float16": 1e-3, "bfloat16": 1.6e-2}


def precision_warnings(rep: DiffReport, opts: DiffOptions) -> list[str]:
    """Half-precision tensors were compared in float32; suggest tolerances when they are too tight."""
    out = []
    dtypes = {r.dtype for r in rep.records}
    failing = {r.dtype for r in rep.records if not r.passed}
    for dtype, rtol in _HALF_RTOL.items():
        if dtype not in dtypes:
            continue
        text = f"{dtype} tensors were compared in float32 (both sides widened, means in float64)"
        if dtype in failing and opts.rtol < rtol and opts.atol < rtol:
            text += (f"; atol={opts.atol:g}, rtol={opts.rtol:g} are below {dtype} resolution, so rounding alone "
                     f"can fail: try options={{'atol': 1e-5, 'rtol': {rtol:g}}} or see "
                     "report.suggested_tolerances()")
        out.append(text + ".")
    return out


def randomness_probe(module: Any, t_inp: dict[str, Any]) -> list[str]:
    """After a failed run: does the torch forward draw random numbers (functional dropout, rand...)?"""
    snap = SideSnapshot.take(TORCH, module, t_inp, keep_values=False, grads=False)  # forwards only
    try:
        calls = TORCH.calls_matching(module, t_inp, draws_random)
    except Exception:  # noqa: BLE001 - only a hint; the run itself has been reported
        return []
    finally:
        snap.restore(values=True, grads=False)
    if not calls:
        return []
    return [f"the torch model calls {', '.join(calls)} in its forward: random numbers differ between frameworks, "
            "so results cannot agree. Call .eval() on both models, or set the dropout probability to 0."]


def paddle_randomness_probe(layer: Any, p_inp: dict[str, Any]) -> list[str]:
    """After a failed run with a deterministic torch side: do two paddle seeds give two outputs?"""
    import numpy as np

    snap = SideSnapshot.take(PADDLE, layer, p_inp, keep_values=False, grads=False)  # forwards only
    try:
        outs = []
        with PADDLE.no_grad():
            for seed in (1, 2):
                PADDLE.seed(seed)
                outs.append([PADDLE.to_numpy(t) for t in PADDLE.flatten(layer(**p_inp))])
    except Exception:  # noqa: BLE001 - only a hint; the run itself has been reported
        return []
    finally:
        snap.restore(values=True, grads=False)
    if all(a.shape == b.shape and np.array_equal(a, b, equal_nan=True) for a, b in zip(*outs)):
        return []
    return ["the paddle model gives different outputs for different random seeds: it draws random numbers "
            "(dropout in train mode, paddle.rand...) and the torch model does not, so results cannot agree. "
            "Call .eval() on both models, or set the dropout probability to 0."]


_RANDOM_FUNCS = frozenset({
    "rand", "randn", "randint", "rand_like", "randn_like", "randint_like", "randperm", "bernoulli", "bernoulli_",
    "multinomial", "normal", "normal_", "uniform_", "exponential_", "geometric_", "cauchy_", "log_normal_",
    "poisson", "random_",
})


def draws_random(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Whether a torch function call draws random numbers (dropout and rrelu only when training)."""
    if name in _RANDOM_FUNCS:
        return True
    if "dropout" in name or name.startswith("rrelu"):
        training = kwargs.get("training", kwargs.get("train", args[2] if len(args) > 2 else True))
        p = kwargs.get("p", args[1] if len(args) > 1 and isinstance(args[1], float | int) else 1.0)
        return bool(training) and (not isinstance(p, float | int) or p > 0)
    return False
