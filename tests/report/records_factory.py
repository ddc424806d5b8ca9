"""Hand-built ``DiffReport``s for the renderer tests (no engine, no frameworks)."""

from __future__ import annotations

import math
import os

from padiff.compare.arrays import Stats
from padiff.report.records import Comparison, DiffReport, SkippedLayer

HERE_FILE = os.path.abspath(__file__)


def model_forward_line() -> int:
    """Line of the 'user code' frame below (so stacks point at real source)."""
    return _USER_LINE


def user_code(x):  # pragma: no cover - only its source line is shown
    return x * 2  # the user's offending call


_USER_LINE = user_code.__code__.co_firstlineno + 1


def stats(abs_diff: float, passed: bool, *, total: int = 20, mismatched: int | None = None, cosine: float = 0.99,
          note: str = "") -> Stats:
    return Stats(passed=passed, max_abs_diff=abs_diff, max_rel_diff=abs_diff * 10,
                 mismatched=(0 if passed else total) if mismatched is None else mismatched, total=total,
                 paddle_mean=0.5, torch_mean=0.5 + abs_diff / 2, cosine=cosine, min_atol=abs_diff,
                 min_rtol=abs_diff * 10 if abs_diff else 0.0, worst_index=(1, 2) if not passed else (), note=note)


def rec(stage: str, order: int, pp: str, tp: str, pc: str, tc: str, abs_diff: float, passed: bool = True,
        step: int = 0, item: str = "output", depth: int = 1, dtype: str = "float32", **kw) -> Comparison:
    stack = ((HERE_FILE, _USER_LINE, "user_code"),)
    return Comparison(stage, step, pp, tp, pc, tc, stats(abs_diff, passed, **kw), item=item, order=order,
                      depth=depth, dtype=dtype, paddle_stack=stack, torch_stack=stack)


TREE_P = [("", "PaddleNet", 0), ("encoder", "Encoder", 1), ("encoder.fc1", "Linear", 2),
          ("encoder.act", "ReLU", 2), ("encoder.fc2", "Linear", 2), ("head", "Linear", 1)]
TREE_T = [("", "TorchNet", 0), ("enc", "Encoder", 1), ("enc.first", "Linear", 2), ("enc.second", "Linear", 2),
          ("out", "Linear", 1)]
PAIRS = [("encoder.fc1", "enc.first"), ("encoder.fc2", "enc.second"), ("head", "out")]


def make_report(fail_at: str | None = "encoder.fc2", steps: int = 1) -> DiffReport:
    """Forward/backward/grad records for three pairs; ``fail_at`` fails from that pair on."""
    rep = DiffReport(options={"atol": 1e-6, "rtol": 0.0, "compare_mode": "strict"}, steps=steps,
                     stages=["forward", "loss", "backward", "grad"])
    rep.paddle_tree, rep.torch_tree = list(TREE_P), list(TREE_T)
    rep.paddle_root_class, rep.torch_root_class = "PaddleNet", "TorchNet"
    rep.mapping = [{"paddle_path": p, "torch_path": t, "paddle_class": "Linear", "torch_class": "Linear"}
                   for p, t in PAIRS]
    rep.mapping_route = "graph"
    rep.skipped = [SkippedLayer("paddle", "encoder.act", "ReLU", "functional relu on the torch side")]
    rep.warnings = ["the paddle model is in train mode"]
    failing = False
    for step in range(steps):
        for i, (p, t) in enumerate(PAIRS):
            failing = failing or p == fail_at
            d = 0.05 * (i + 1) if failing else 1e-8
            rep.records.append(rec("forward", i, p, t, "Linear", "Linear", d, not failing, step=step, depth=2))
        rep.records.append(rec("loss", 0, "", "", "loss", "loss", 0.1 if failing else 0.0, not failing,
                               step=step, item="loss", depth=0))
        for i, (p, t) in enumerate(reversed(PAIRS)):
            rep.records.append(rec("backward", i, p, t, "Linear", "Linear", 0.02 if failing else 0.0, not failing,
                                   step=step, item="grad of output[0]"))
            rep.records.append(rec("grad", i, p, t, "Linear", "Linear", 0.03 if failing else 1e-9, not failing,
                                   step=step, item="weight", dtype="float64" if i == 0 else "float32"))
    return rep


def nan_record(order: int = 0) -> Comparison:
    return rec("forward", order, "head", "out", "Linear", "Linear", math.nan, False, note="nan")
