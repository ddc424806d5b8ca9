"""Benchmark numeric confirmation: its cost against the size of a tie group, and inception_v3 end to end.

    python benchmarks/bench_confirm.py [--sizes 2 4 8 16 32] [--out benchmarks/results/confirm.json]

1. Tie groups of growing size: a chain of ``n`` same-shaped Linear+tanh layers on each
   side, all proposed uncertain and every neighbouring pair swapped (the worst a
   structural guess does here). ``confirm_ties`` must put every layer back and its time
   should grow about linearly with ``n`` (the ratio seconds/n is printed); trying
   assignments one after another would need ``n!`` paddle forwards (48 was the budget).
2. ``suggest_layer_map`` on paddle.vision ``inception_v3`` against torchvision's (random
   init, 1x3x299x299), end to end, with the timings it reports (target <= 15 s on a
   2-core machine). Skipped with a message when torchvision cannot be imported (it is in
   the real-pairs venv, ``/work/rp-venv``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import numpy as np  # noqa: E402
import paddle  # noqa: E402 - frameworks are imported before any timing on purpose
import torch  # noqa: E402

from padiff.adapters import PADDLE, TORCH  # noqa: E402
from padiff.graph.confirm import confirm_ties  # noqa: E402
from padiff.graph.match import MatchResult, ProposedPair  # noqa: E402
from padiff.graph.suggest import layer_infos  # noqa: E402

D = 64


class PChain(paddle.nn.Layer):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.layers = paddle.nn.LayerList([paddle.nn.Linear(D, D) for _ in range(n)])

    def forward(self, x):
        for lay in self.layers:
            x = paddle.tanh(lay(x))
        return x


class TChain(torch.nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(D, D) for _ in range(n)])

    def forward(self, x):
        for lay in self.layers:
            x = torch.tanh(lay(x))
        return x


def chain_point(n: int) -> dict[str, Any]:
    torch.manual_seed(n)
    p, t = PChain(n), TChain(n)
    x = np.random.RandomState(n).randn(8, D).astype("float32")
    inputs = ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)})
    wrong = [i ^ 1 if (i ^ 1) < n else i for i in range(n)]  # neighbours swapped
    pairs = [ProposedPair(f"layers.{i}", f"layers.{wrong[i]}", 0.4, ("tie: equal candidates",), True, True)
             for i in range(n)]
    p_layers, t_layers = layer_infos(PADDLE, p), layer_infos(TORCH, t)
    t0 = time.perf_counter()
    result, notes = confirm_ties(p, t, inputs, MatchResult(pairs, []), p_layers, t_layers)
    seconds = time.perf_counter() - t0
    right = sum(1 for pr in result.pairs if pr.paddle_path == pr.torch_path)
    return {"n": n, "seconds": seconds, "seconds_per_candidate": seconds / n, "correct": right,
            "skipped": sum(1 for s in notes if "skipped" in s or "budget" in s)}


def inception() -> dict[str, Any]:
    try:
        import torchvision
    except ImportError as exc:
        return {"skipped": f"torchvision cannot be imported here ({exc}); run this in the real-pairs venv"}
    import padiff

    paddle.seed(0)
    torch.manual_seed(0)
    layer = paddle.vision.models.inception_v3()
    module = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    layer.eval()
    module.eval()
    x = np.random.RandomState(0).rand(1, 3, 299, 299).astype("float32")
    inp = ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)})
    t0 = time.perf_counter()
    lm = padiff.suggest_layer_map(layer, module, inp)
    seconds = time.perf_counter() - t0
    timings = next((n for n in lm.notes if n.startswith("timings:")), "")

    def branch(path: str) -> str:  # inception_block_list.3.branch1x1.0 <-> Mixed_6a.branch1x1.conv
        parts = path.split(".")
        return parts[-2].replace("_conv", "") if len(parts) >= 3 else ""

    blocks = [pr for pr in lm.pairs if pr.paddle_path.startswith("inception_block_list.")]
    same_branch = sum(1 for pr in blocks if branch(pr.paddle_path) == branch(pr.torch_path))
    return {"seconds": seconds, "timings": timings, "pairs": len(lm.pairs), "block_pairs": len(blocks),
            "block_pairs_same_branch": same_branch,
            "skipped_groups": sum(1 for n in lm.notes if "skipped" in n),
            "torch": torch.__version__, "torchvision": torchvision.__version__}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    ap.add_argument("--skip-inception", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "confirm.json"))
    args = ap.parse_args()
    paddle.set_device("cpu")
    torch.set_num_threads(1)
    chain_point(2)  # warm-up
    points = [chain_point(n) for n in args.sizes]
    print("| tie group size | seconds | seconds / candidate | put back | skipped |")
    print("|---|---|---|---|---|")
    for pt in points:
        print(f"| {pt['n']} | {pt['seconds']:.3f} | {pt['seconds_per_candidate']:.4f} | "
              f"{pt['correct']}/{pt['n']} | {pt['skipped']} |")
    out: dict[str, Any] = {"machine": platform.platform(), "cpus": os.cpu_count(), "chain": points}
    if not args.skip_inception:
        out["inception_v3"] = inc = inception()
        if "skipped" in inc:
            print(f"inception_v3: skipped: {inc['skipped']}")
        else:
            print(f"inception_v3 suggest_layer_map: {inc['seconds']:.1f} s end to end; {inc['timings']}; "
                  f"{inc['block_pairs_same_branch']}/{inc['block_pairs']} block pairs in the same branch; "
                  f"{inc['skipped_groups']} groups skipped")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
