"""Count the parameter-free pairs ``suggest_layer_map`` proposes, and how many are wrong.

    python benchmarks/bench_paramfree.py [--out benchmarks/results/paramfree.json]

For every pair in ``tests/models/aligner_pairs.py`` (and the ViT-/inception-like pairs of
``tests/models/paramfree_pairs.py``) the graph-route proposal is made; each proposed pair
whose paddle layer holds no parameters is judged. Where the case lists the truth for
parameter-free layers it is used; otherwise a pair is wrong when, with the torch weights
copied into paddle (following the proposal), the first call's outputs of the two layers
differ in shape or value (``allclose`` atol 1e-4, rtol 1e-3) in eval mode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import torch  # noqa: E402
from models import aligner_pairs as ap  # noqa: E402
from models import paramfree_pairs as fp  # noqa: E402

import padiff  # noqa: E402
from padiff.adapters import PADDLE, TORCH  # noqa: E402

CASES = [ap.renamed, ap.reversed_order, ap.nested, ap.branches, ap.raw_param, ap.extra_layers, ap.reused,
         ap.attention, ap.resnet18, ap.resnet50, ap.attention_einsum, ap.transformer, ap.sequence,
         ap.mobilenet_v2, lambda: ap.mlp(8), fp.vit_like, lambda: fp.vit_like(True), fp.inception_like,
         lambda: fp.inception_like(True)]


def _first_outputs(side: Any, root: Any, paths: set[str], inputs: dict) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    handles = []
    for path, obj in side.named_layers(root):
        if path in paths:
            def hook(_m: Any, _a: Any, o: Any, path: str = path) -> None:
                out.setdefault(path, [side.to_numpy(t).astype(np.float64) for t in side.flatten(o)])
            handles.append(side.add_post_hook(obj, hook))
    try:
        with side.no_grad():
            root(**inputs)
    finally:
        for h in handles:
            h.remove()
    return out


def judge(case: Any) -> dict[str, Any]:
    """Propose, then count and judge the parameter-free pairs of one case."""
    case.paddle.eval()
    case.torch.eval()
    lm = padiff.suggest_layer_map(case.paddle, case.torch, case.inputs)
    free = [p for p in lm.pairs if not p.paddle_shapes and not p.torch_shapes]
    truth = getattr(case, "free_truth", None)
    wrong: list[str] = []
    if truth is not None:
        wrong = [f"{p.paddle_path} <-> {p.torch_path}" for p in free if truth.get(p.torch_path) != p.paddle_path]
    elif free:
        padiff.assign_weight(case.paddle, case.torch, layer_map=lm)
        po = _first_outputs(PADDLE, case.paddle, {p.paddle_path for p in free}, case.inputs[0])
        to = _first_outputs(TORCH, case.torch, {p.torch_path for p in free}, case.inputs[1])
        for p in free:
            a, b = po.get(p.paddle_path, []), to.get(p.torch_path, [])
            same = len(a) == len(b) and bool(a) and all(
                x.shape == y.shape and np.allclose(x, y, atol=1e-4, rtol=1e-3) for x, y in zip(a, b))
            if not same:
                wrong.append(f"{p.paddle_path} <-> {p.torch_path}")
    return {"case": case.name, "route": lm.route, "free_pairs": len(free), "wrong": len(wrong),
            "wrong_pairs": wrong, "unpaired": len(lm.unpaired)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    paddle.seed(0)
    torch.manual_seed(0)
    rows = []
    for build in CASES:
        row = judge(build())
        rows.append(row)
        print(f"{row['case']:22s} {row['route']:9s} free pairs {row['free_pairs']:3d}  wrong {row['wrong']:3d}  "
              f"unpaired {row['unpaired']:3d}  {row['wrong_pairs'][:3]}", flush=True)
    total = sum(r["free_pairs"] for r in rows)
    bad = sum(r["wrong"] for r in rows)
    print(f"TOTAL parameter-free pairs {total}, wrong {bad}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rows": rows, "total": total, "wrong": bad}, f, indent=1)


if __name__ == "__main__":
    main()
