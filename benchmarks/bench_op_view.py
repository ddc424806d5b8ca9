"""Cost of the op view on a failing compare: the re-run's seconds against the whole compare.

The transformer case (see :mod:`models`) with a tanh-approximated GELU in one paddle
block; ``diff_phase="forward"``. Reports the compare's wall time, the op view's share of
it (timed around ``padiff.api._attach_op_view``), the ops recorded per side and what was
named.

    python benchmarks/bench_op_view.py [--block 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(block: int = 3) -> dict[str, Any]:
    """One failing compare of the transformer case, with the op view timed."""
    import models
    from paddle import nn as pnn

    import padiff
    import padiff.api as api

    case = models.transformer()
    case.layer.blocks[block].act = pnn.GELU(approximate=True)
    spent: list[float] = []
    inner = api._attach_op_view

    def timed(*args: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        try:
            inner(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t0)

    api._attach_op_view = timed
    try:
        t0 = time.perf_counter()
        rep = padiff.compare(case.layer, case.module, case.example_inp,
                             options={"atol": 1e-6, "rtol": 1e-5, "diff_phase": "forward"})
        total = time.perf_counter() - t0
    finally:
        api._attach_op_view = inner
    first = rep.first_diff
    op = first.op if first is not None else None
    return {"case": "transformer", "first_pair": first.paddle_path if first else None,
            "compare_s": round(total, 3), "op_view_s": round(spent[0], 3) if spent else None,
            "op": op.summary() if op else None, "scope": op.scope if op else None}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    out = measure(args.block)
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
