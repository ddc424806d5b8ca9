"""How k of compare_mode="calibrated" was chosen: noise ratios of correct real ports and of planted faults.

For each real pair (tests/real_pairs, the second env with torchvision / transformers / paddleformers):
the largest noise ratio over the records of the correct port (auto weights, the aligner's map), and the
ratio at the planted fault (the torch leaf's output scaled by 1.001, a fault the README's rtol 1e-4
misses in mean mode). Prints one line per pair and the margin; run from the repository root:

    PYTHONPATH=. .venv-real/bin/python benchmarks/calibrated_margin.py [pair names...]
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import time
from typing import Any

CAL = {"compare_mode": "calibrated"}
SCALE = 1.001
DEFAULT = ("nn.MultiHeadAttention", "nn.TransformerEncoder", "resnet18", "mobilenet_v2", "llama", "qwen2", "vit")


def _ratios(rep: Any) -> list[tuple[float, str]]:
    return [(r.stats.noise_ratio, f"{r.stage} {r.torch_path} [{r.item}]") for r in rep.records
            if not math.isnan(r.stats.noise_ratio)]


def measure(name: str) -> str:
    """One line: the pair, its correct port's largest ratio and where, the planted fault's verdict and ratio."""
    import padiff
    from padiff.assign import with_special_pairs
    from tests.real_pairs.pairs import by_name
    from tests.real_pairs.score import build

    pair = by_name(name)
    layer, module, p_inp, t_inp = build(pair)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        lm = with_special_pairs(padiff.suggest_layer_map(layer, module, ({**p_inp}, {**t_inp})), layer, module)
        start = time.time()
        rep = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True, layer_map=lm, options=CAL)
        seconds = time.time() - start
    ratios = _ratios(rep)
    top = max(ratios, default=(math.nan, ""))
    fell = sum(r.stats.note_kind == "fallback" for r in rep.records)
    layer, module, p_inp, t_inp = build(pair)
    leaf = dict(module.named_modules())[pair.fault_leaf]

    def scaled(mod: Any, args: Any, out: Any) -> Any:
        return (out[0] * SCALE, *out[1:]) if isinstance(out, tuple) else out * SCALE

    handle = leaf.register_forward_hook(scaled)
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            lm = with_special_pairs(padiff.suggest_layer_map(layer, module, ({**p_inp}, {**t_inp})), layer, module)
            bad = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True, layer_map=lm, options=CAL)
    finally:
        handle.remove()
    first = bad.first_diff
    at = f"{first.stage} {first.torch_path} {first.stats.noise_ratio:.3g}x" if first is not None else "(passed)"
    return (f"{name:<24} correct: {'ok  ' if rep else 'FAIL'} max {top[0]:.3g}x at {top[1]} "
            f"({len(ratios)} judged, {fell} fell back, {seconds:.1f}s) | fault x{SCALE} at {pair.fault_leaf}: {at}")


if __name__ == "__main__":
    for n in sys.argv[1:] or DEFAULT:
        try:
            print(measure(n), flush=True)
        except Exception as e:  # noqa: BLE001 - one pair failing is a line saying so
            print(f"{n:<24} ERROR {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}", flush=True)
