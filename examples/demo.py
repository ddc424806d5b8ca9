"""The main job, end to end: propose a layer map, review it, compare, and find a planted bug.

Run with `make demo`. Writes `padiff_demo/map.yaml` and `padiff_demo/report.html`.
"""

from __future__ import annotations

import os
import sys
import warnings

warnings.filterwarnings("ignore", message="No ccache found")  # paddle's import-time notice

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

from demo_models import build  # noqa: E402

import padiff  # noqa: E402

OUT = "padiff_demo"


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    layer, module, example_inp = build()

    print("== 1. padiff proposes the layer map from the two exported graphs ==")
    proposal = padiff.suggest_layer_map(layer, module, example_inp)
    print(proposal.review())
    map_path = os.path.join(OUT, "map.yaml")
    proposal.save(map_path, layer, module)
    print(f"saved for review and editing: {map_path}\n")

    print("== 2. compare the models on the reviewed map (torch weights copied into paddle) ==")
    reviewed = padiff.LayerMap.load(map_path, layer, module)
    ok = padiff.auto_diff(layer, module, example_inp, auto_weights=True, layer_map=reviewed,
                          options={"atol": 1e-5, "rtol": 1e-4})
    print(f"-> auto_diff returned {ok}\n")

    print("== 3. plant a bug in the port (a wrong BatchNorm epsilon in the second block) ==")
    module.res[1].norm_a.eps = 1e-1
    report_path = os.path.join(OUT, "report.html")
    rep = padiff.compare(layer, module, example_inp, layer_map=reviewed, options={"atol": 1e-5, "rtol": 1e-4},
                         report=report_path)
    print(rep)  # str(report) is the text report
    first = rep.first_diff
    print(f"-> first difference: paddle {first.paddle_path} <-> torch {first.torch_path} ({first.stage})")
    print(f"-> HTML report: {report_path}")
    return 0 if ok and first is not None and first.torch_path == "res.1.norm_a" else 1


if __name__ == "__main__":
    torch.set_num_threads(2)
    raise SystemExit(main())
