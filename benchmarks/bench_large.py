"""Real sizes: a Qwen2-0.5B-shaped decoder pair and ResNet-50 at batch 32, end to end.

    python benchmarks/bench_large.py [--case qwen2] [--layers 24] [--vocab 151936] [--seq 64]
                                     [--parts bare suggest compare fault recorder] [--threads 0] [--profile]
                                     [--keep-map FILE] [--merge]
    make bench-large        # the full 0.5B shape and ResNet-50 at batch 32 (needs ~16 GB free)

Opt-in and heavy: run with the real-pairs venv (paddleformers, transformers), nothing is
downloaded (random init from the published shapes). Every part runs in its own fresh
subprocess, so each peak RSS (``ru_maxrss``) is that part's alone:

- ``bare``: build both models, then rounds of one paddle forward+backward and one torch
  forward+backward (the denominator of every ratio), a training step (SGD) per side;
- ``suggest``: ``padiff.suggest_layer_map`` (its own phase timings: export, build, match,
  confirmation) and the map saved for the next part;
- ``compare``: ``padiff.compare(auto_weights=True, layer_map=<map>)``, under ``cProfile``
  with ``--profile`` (split into weight copy, hooks, host copies, comparisons, the passes);
- ``fault``: the same compare with a planted fault (the middle decoder layer's torch output scaled
  by 1.05 through a forward hook): is it named at that layer, and what does the failing run cost
  (op view and randomness probes included)?
- ``recorder``: one training step per side under ``Recorder(level=...)`` for stats and full,
  against the bare step of the same process, then ``compare_runs`` on the two full recordings
  (GB/s per core = recorded bytes / CPU seconds).

Wall and CPU seconds (``time.process_time``) are both given; the profiles (``--profile``) count
CPU seconds of this process (cProfile with ``time.process_time``), so they stay meaningful on a
loaded machine; ``--threads 0`` keeps the frameworks' defaults, ``--threads 1`` pins one each.
Memory: peak RSS per part, and the extra of a part over ``bare`` set against one model's weights
plus activations (paddle's weights bytes + the paddle forward+backward's own RSS growth).
Results go to ``benchmarks/results/large_<case>_<tag>.json`` and a markdown summary is printed.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import resource
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
RESULTS = HERE / "results"

#: the real-size bars (ratios over the bare forward+backward of both models, or a bare step)
TARGETS = {"suggest_over_bare": 2.0, "compare_wall": 1.3, "compare_cpu": 1.5, "extra_memory": 1.0,
           "recorder_stats": 1.1, "recorder_full": 2.0, "compare_runs_gb_s_core": 0.5}

#: Qwen2-0.5B as published (config.json): the decoder without its (tied) head
QWEN2_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, head_dim=64,
                 intermediate_size=4864, vocab_size=151936, rms_norm_eps=1e-6, rope_theta=1000000.0,
                 max_position_embeddings=4096)

#: (label, file suffix, function) whose cumulative time is shown in the compare profile
COMPARE_PARTS = [
    ("whole compare call", "padiff/api.py", "compare"),
    ("weight plan (AutoWeights)", "padiff/runtime/discovery.py", "__init__"),
    ("weight copy (_assign)", "padiff/api.py", "_assign"),
    ("  copy_weights", "padiff/weights/assign.py", "copy_weights"),
    ("  snapshot before copy", "padiff/weights/assign.py", "_snapshot"),
    ("model snapshots (SideSnapshot.take)", "padiff/adapters/snapshot.py", "take"),
    ("snapshot restore", "padiff/adapters/snapshot.py", "restore"),
    ("compared run (Engine.run)", "padiff/runtime/engine/run.py", "run"),
    ("  forward passes (hooked)", "padiff/runtime/engine/calls.py", "call_model"),
    ("  backward passes", "padiff/runtime/engine/calls.py", "run_backward"),
    ("  comparisons (compare_arrays)", "padiff/compare/arrays.py", "compare_arrays"),
    ("host copies: paddle to_numpy", "padiff/adapters/paddle_side.py", "to_numpy"),
    ("host copies: torch to_numpy", "padiff/adapters/torch_side.py", "to_numpy"),
    ("op view", "padiff/api.py", "_attach_op_view"),
    ("diagnostics (randomness probe)", "padiff/runtime/diagnostics.py", "randomness_probe"),
]
SUGGEST_PARTS = [
    ("whole suggest_layer_map", "padiff/graph/suggest.py", "suggest_layer_map"),
    ("graph route (export, build, match)", "padiff/graph/suggest.py", "_graph_route"),
    ("numeric confirmation", "padiff/graph/confirm.py", "confirm_ties"),
    ("  snapshot of every paddle tensor", "padiff/adapters/paddle_side.py", "to_numpy"),
    ("  Trial set-up (torch recorded, weights copied)", "padiff/graph/confirm_trial.py", "__init__"),
    ("  fused orders (settle_orders)", "padiff/graph/confirm_layouts.py", "settle_orders"),
    ("  fused orders (settle_orders, before)", "padiff/graph/confirm_trial.py", "settle_orders"),
    ("  block runs (Trial.block_error)", "padiff/graph/confirm_trial.py", "block_error"),
    ("  tie groups (_settle_groups)", "padiff/graph/confirm.py", "_settle_groups"),
    ("  paddle forwards (Trial.forward)", "padiff/graph/confirm_trial.py", "forward"),
    ("  weight copies (apply_plan)", "padiff/weights/pair_plan.py", "apply_plan"),
    ("export: paddle jit.save + child start", "padiff/graph/export_paddle.py", "start_export"),
    ("export: wait for paddle2onnx", "padiff/graph/export_paddle.py", "result"),
    ("export: torch", "padiff/graph/export_torch.py", "export_torch"),
    ("eager record (export failed)", "padiff/graph/suggest.py", "_eager_graphs"),
    ("  paddle set_value", "padiff/adapters/paddle_side.py", "set_value"),
]

#: the same for one step under ``Recorder`` (the bare step's own time is inside "user step")
RECORDER_PARTS = [
    ("whole recorded step", "padiff/offline/recorder.py", "step"),
    ("statistics (tensor_stats)", "padiff/offline/fmt.py", "tensor_stats"),
    ("host copies: paddle to_numpy", "padiff/adapters/paddle_side.py", "to_numpy"),
    ("host copies: torch to_numpy", "padiff/adapters/torch_side.py", "to_numpy"),
    ("host views: paddle host_view", "padiff/adapters/paddle_side.py", "host_view"),
    ("host views: torch host_view", "padiff/adapters/torch_side.py", "host_view"),
    ("stored form (to_stored)", "padiff/offline/tensor_file.py", "to_stored"),
    ("step end (_finish)", "padiff/offline/recorder.py", "_finish"),
    ("  parameter values (Capture.finish)", "padiff/offline/capture.py", "finish"),
    ("  tensor file (write_tensors)", "padiff/offline/tensor_file.py", "write_tensors"),
]
COMPARE_RUNS_PARTS = [
    ("whole compare_runs", "padiff/offline/compare_runs.py", "compare_runs"),
    ("read tensors (RankRun.tensors)", "padiff/offline/reader.py", "tensors"),
    ("  load_tensors", "padiff/offline/tensor_file.py", "load_tensors"),
    ("  map_tensors", "padiff/offline/tensor_file.py", "map_tensors"),
    ("steps (StepComparer.run)", "padiff/offline/step_compare.py", "run"),
    ("  comparisons (compare_arrays)", "padiff/compare/arrays.py", "compare_arrays"),
    ("  weight plans (plan_recorded)", "padiff/offline/run_plans.py", "plan_recorded"),
]

# ------------------------------------------------------------------------------------------ models
def build_qwen2(args: argparse.Namespace) -> tuple[Any, Any, Any, int]:
    """paddleformers Qwen2Model against transformers Qwen2Model, random init, the shape of Qwen2-0.5B."""
    sys.path.append(str(ROOT))  # for tests.real_pairs; last, so --padiff-root's padiff stays first
    from tests.real_pairs.pairs import _import_transformers_first
    from tests.real_pairs.pairs_fused import _stub_paddlefleet

    _import_transformers_first()
    import transformers.models.qwen2.modeling_qwen2 as hf
    from transformers import Qwen2Config

    _stub_paddlefleet()
    import numpy as np
    import paddle
    import torch
    from paddleformers.transformers.qwen2 import Qwen2Config as PdConfig
    from paddleformers.transformers.qwen2 import Qwen2Model as PdModel

    kw = dict(QWEN2_05B)
    kw["num_hidden_layers"], kw["vocab_size"] = args.layers, args.vocab
    paddle.seed(0)
    torch.manual_seed(0)

    class PdTop(paddle.nn.Layer):  # the hidden states, not the model-output record
        def __init__(self) -> None:
            super().__init__()
            self.m = PdModel(PdConfig(fuse_rms_norm=False, **kw))

        def forward(self, input_ids: Any) -> Any:
            return self.m(input_ids=input_ids, use_cache=False)[0]

    class PtTop(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = hf.Qwen2Model(Qwen2Config(**kw))

        def forward(self, input_ids: Any) -> Any:
            return self.m(input_ids=input_ids, use_cache=False)[0]

    layer, module = PdTop(), PtTop()
    ids = np.random.default_rng(0).integers(0, args.vocab, size=(1, args.seq)).astype("int64")
    inp = ({"input_ids": paddle.to_tensor(ids)}, {"input_ids": torch.from_numpy(ids.copy())})
    n = sum(int(np.prod(p.shape)) for p in layer.parameters())
    return layer, module, inp, n


def build_resnet50(args: argparse.Namespace) -> tuple[Any, Any, Any, int]:
    """paddle.vision resnet50 against the torch ResNet-50 of :mod:`models` (random init), batch ``--batch``."""
    sys.path.insert(0, str(HERE))
    import numpy as np
    import paddle
    import torch
    from models import TorchResNet50

    paddle.seed(0)
    torch.manual_seed(0)
    layer, module = paddle.vision.models.resnet50(), TorchResNet50()
    x = np.random.default_rng(0).standard_normal((args.batch, 3, 224, 224)).astype("float32")
    inp = ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x.copy())})
    n = sum(int(np.prod(p.shape)) for p in layer.parameters())
    return layer, module, inp, n


BUILDERS = {"qwen2": build_qwen2, "resnet50": build_resnet50}


# ------------------------------------------------------------------------------------------ helpers
def rss_gb() -> float:
    """Peak RSS of this process so far, GB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def current_rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


#: (label, module, attribute) wrapped in the compare part to attribute memory: the highest RSS seen while inside
MEMORY_PHASES = [
    ("weight copy", "padiff.weights.assign", "copy_weights"),
    ("  snapshot before copy", "padiff.weights.assign", "_snapshot"),
    ("model snapshots", "padiff.adapters.snapshot.SideSnapshot", "take"),
    ("compared run", "padiff.runtime.engine.run.Engine", "run"),
    ("  backward passes", "padiff.runtime.engine.calls", "run_backward"),
    ("op view", "padiff.api", "_attach_op_view"),
    ("randomness probe", "padiff.runtime.diagnostics", "randomness_probe"),
]


class PhaseMemory:
    """The highest current RSS seen in each phase (sampled every 20 ms by a thread), GB."""

    def __init__(self) -> None:
        import threading

        self.stack: list[str] = ["outside"]
        self.peak: dict[str, float] = {}
        self.undo: list[Any] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            now, label = current_rss_gb(), self.stack[-1]
            if now > self.peak.get(label, 0.0):
                self.peak[label] = round(now, 3)

    def wrap(self, label: str, owner_path: str, attr: str) -> None:
        import functools
        import importlib

        try:
            owner: Any = importlib.import_module(owner_path)
        except ImportError:
            mod_path, _, cls = owner_path.rpartition(".")
            owner = getattr(importlib.import_module(mod_path), cls)
        raw = owner.__dict__[attr]
        fn = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw

        @functools.wraps(fn)
        def inner(*a: Any, **k: Any) -> Any:
            self.stack.append(label)
            try:
                return fn(*a, **k)
            finally:
                self.stack.pop()

        setattr(owner, attr, classmethod(inner) if isinstance(raw, classmethod) else inner)
        self.undo.append((owner, attr, raw))
        # callers that imported the function by name hold the original: patch the known ones
        for mod in list(sys.modules.values()):
            if getattr(mod, "__name__", "").startswith("padiff") and getattr(mod, attr, None) is raw:
                setattr(mod, attr, inner)

    def __enter__(self) -> PhaseMemory:
        for label, owner, attr in MEMORY_PHASES:
            self.wrap(label, owner, attr)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        for owner, attr, raw in reversed(self.undo):
            setattr(owner, attr, raw)


def timed(fn: Any) -> tuple[float, float, Any]:
    import gc

    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def bare_fwd_bwd(layer: Any, module: Any, inp: Any) -> None:
    out = layer(**inp[0])
    out.mean().backward()
    layer.clear_gradients()
    del out
    o = module(**inp[1])
    o.mean().backward()
    module.zero_grad(set_to_none=True)


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    """Cumulative seconds of ``name`` defined in a file ending with ``suffix`` (outermost calls only)."""
    total = 0.0
    for (path, _line, fn), row in stats.stats.items():  # type: ignore[attr-defined]
        if fn == name and path.endswith(suffix):
            total += row[3]
    return total


def profile_table(prof: cProfile.Profile, parts: list[tuple[str, str, str]]) -> dict[str, float]:
    stats = pstats.Stats(prof)
    return {label: round(cumulative(stats, suffix, name), 3) for label, suffix, name in parts}


def top_functions(prof: cProfile.Profile, n: int = 25) -> list[str]:
    import io

    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(n)
    return [ln for ln in buf.getvalue().splitlines() if ln.strip()][-n - 1:]


# ------------------------------------------------------------------------------------------ parts
def part_bare(args: argparse.Namespace, layer: Any, module: Any, inp: Any) -> dict[str, Any]:
    import numpy as np

    after_build = current_rss_gb()
    out: dict[str, Any] = {"rss_after_build_gb": round(after_build, 3)}
    # paddle alone first: its activation memory is the growth of the peak over the built models
    w, c, _ = timed(lambda: bare_fwd_bwd_one(layer, inp[0], "paddle"))
    out["paddle_fwd_bwd_first"] = [round(w, 3), round(c, 3)]
    out["peak_after_paddle_gb"] = round(rss_gb(), 3)
    walls, cpus = [], []
    for _ in range(args.repeats):
        w, c, _ = timed(lambda: bare_fwd_bwd(layer, module, inp))
        walls.append(w)
        cpus.append(c)
    out["fwd_bwd_wall"] = [round(x, 3) for x in walls]
    out["fwd_bwd_cpu"] = [round(x, 3) for x in cpus]
    out["fwd_bwd_wall_median"] = round(statistics.median(walls), 3)
    out["fwd_bwd_cpu_median"] = round(statistics.median(cpus), 3)
    out["paddle_weights_gb"] = round(sum(int(np.prod(p.shape)) * 4 for p in layer.parameters()) / 2**30, 3)
    return out


def bare_fwd_bwd_one(model: Any, inp: dict[str, Any], side: str) -> None:
    out = model(**inp)
    out.mean().backward()
    if side == "paddle":
        model.clear_gradients()
    else:
        model.zero_grad(set_to_none=True)


def part_suggest(args: argparse.Namespace, layer: Any, module: Any, inp: Any) -> dict[str, Any]:
    import padiff

    prof = cProfile.Profile(time.process_time) if args.profile else None
    if prof:
        prof.enable()
    w, c, lm = timed(lambda: padiff.suggest_layer_map(layer, module, inp, timeout=3600))
    if prof:
        prof.disable()
    lm.save(args.map_path)
    timings = next((n for n in lm.notes if str(n).startswith("timings:")), "")
    out: dict[str, Any] = {"wall": round(w, 3), "cpu": round(c, 3), "route": lm.route, "timings": str(timings),
                           "pairs": len(lm.pairs), "uncertain": sum(1 for p in lm.pairs if p.confidence < 0.5),
                           "notes": [str(n)[:300] for n in lm.notes]}
    if prof:
        out["profile"] = profile_table(prof, SUGGEST_PARTS)
        out["top"] = top_functions(prof)
    return out


def part_compare(args: argparse.Namespace, layer: Any, module: Any, inp: Any) -> dict[str, Any]:
    import padiff

    lm = padiff.LayerMap.load(args.map_path)
    bare_fwd_bwd(layer, module, inp)  # warm both frameworks' kernels, as the bare part does
    before = rss_gb()
    prof = cProfile.Profile(time.process_time) if args.profile else None
    if prof:
        prof.enable()
    with PhaseMemory() as mem:
        w, c, rep = timed(lambda: padiff.compare(layer, module, inp, auto_weights=True, layer_map=lm,
                                                 atol=1e-4, rtol=1e-3))
    if prof:
        prof.disable()
    out: dict[str, Any] = {"wall": round(w, 3), "cpu": round(c, 3), "agree": bool(rep),
                           "peak_before_call_gb": round(before, 3),
                           "first_diff": str(getattr(rep, "first_diff", ""))[:300],
                           "rss_by_phase_gb": mem.peak}
    if prof:
        out["profile"] = profile_table(prof, COMPARE_PARTS)
        out["top"] = top_functions(prof)
    return out


def part_fault(args: argparse.Namespace, layer: Any, module: Any, inp: Any) -> dict[str, Any]:
    """The planted fault: one torch decoder layer's output scaled by 1.05 (a forward hook); is it named?

    The layer is the middle one of the model's repeated blocks (the longest list of same-class
    children), so the report must name that block's pair, not an earlier or a later one;
    ``--fault-at leaf``: the last-defined layer with a weight matrix that the map pairs inside that block
    (a decoder's MLP down projection).
    """
    import padiff

    lm = padiff.LayerMap.load(args.map_path)
    blocks = _repeated_blocks(module)
    path, target = blocks[len(blocks) // 2]
    if args.fault_at == "leaf":
        order = [n for n, _ in module.named_modules()]
        inside = [pr.torch_path for pr in lm.pairs if pr.compare_output and not (pr.paddle_parts or pr.torch_parts)
                  and pr.torch_path.startswith(path + ".") and any(len(s) >= 2 for s in pr.torch_shapes)]
        path = max(inside, key=order.index)
        target = dict(module.named_modules())[path]

    def scale(_mod: Any, _inp: Any, out: Any) -> Any:
        return (out[0] * 1.05, *out[1:]) if isinstance(out, tuple) else out * 1.05

    handle = target.register_forward_hook(scale)
    try:
        bare_fwd_bwd(layer, module, inp)
        prof = cProfile.Profile(time.process_time) if args.profile else None
        if prof:
            prof.enable()
        before = rss_gb()
        with PhaseMemory() as mem:
            w, c, rep = timed(lambda: padiff.compare(layer, module, inp, auto_weights=True, layer_map=lm,
                                                     atol=1e-4, rtol=1e-3))
        if prof:
            prof.disable()
    finally:
        handle.remove()
    first = rep.first_diff
    named = first.torch_path if first is not None else ""
    out: dict[str, Any] = {"wall": round(w, 3), "cpu": round(c, 3), "agree": bool(rep), "planted_at": path,
                           "first_diff_torch": named, "first_diff_paddle": first.paddle_path if first else "",
                           "first_diff_stage": first.stage if first else "",
                           "named_at_its_layer": bool(first is not None and named == path),
                           "peak_before_call_gb": round(before, 3), "rss_by_phase_gb": mem.peak,
                           "op": str(getattr(first, "op", ""))[:300] if first else ""}
    if prof:
        out["profile"] = profile_table(prof, COMPARE_PARTS)
        out["top"] = top_functions(prof)
    return out


def _repeated_blocks(module: Any) -> list[tuple[str, Any]]:
    """The children of the module's longest list of same-class layers (a decoder's blocks), with their paths."""
    best: list[tuple[str, Any]] = []
    for name, sub in module.named_modules():
        kids = list(sub.named_children())
        if len(kids) > len(best) and len({type(k) for _, k in kids}) == 1:
            best = [(f"{name}.{k}" if name else k, m) for k, m in kids]
    return best


def part_recorder(args: argparse.Namespace, layer: Any, module: Any, inp: Any) -> dict[str, Any]:
    import paddle
    import torch

    import padiff

    p_opt = paddle.optimizer.SGD(learning_rate=1e-6, parameters=layer.parameters())
    t_opt = torch.optim.SGD(module.parameters(), lr=1e-6)

    def p_step() -> None:
        layer(**inp[0]).mean().backward()
        p_opt.step()
        p_opt.clear_grad()

    def t_step() -> None:
        module(**inp[1]).mean().backward()
        t_opt.step()
        t_opt.zero_grad(set_to_none=True)

    tmp = Path(tempfile.mkdtemp(prefix="padiff-bench-large-"))
    out: dict[str, Any] = {}
    try:
        p_step()
        t_step()
        for side, step in (("paddle", p_step), ("torch", t_step)):
            model = layer if side == "paddle" else module
            bare_w, bare_c = [], []
            for _ in range(args.repeats):
                w, c, _ = timed(step)
                bare_w.append(w)
                bare_c.append(c)
            out[f"{side}_bare_step"] = [round(statistics.median(bare_w), 3), round(statistics.median(bare_c), 3)]
            for level in ("stats", "full"):
                rec = padiff.Recorder(model, tmp / f"{side}_{level}", level=level, graph=False)
                ws, cs = [], []
                prof = cProfile.Profile(time.process_time) if args.profile else None
                for i in range(args.repeats):
                    def rec_step(i: int = i, rec: Any = rec, step: Any = step) -> None:
                        with rec.step(i):
                            step()
                    if prof:
                        prof.enable()
                    w, c, _ = timed(rec_step)
                    if prof:
                        prof.disable()
                    ws.append(w)
                    cs.append(c)
                rec.close()
                if prof:
                    out[f"{side}_{level}_profile"] = profile_table(prof, RECORDER_PARTS)
                    out[f"{side}_{level}_top"] = top_functions(prof)
                size = sum(f.stat().st_size for f in (tmp / f"{side}_{level}").rglob("*") if f.is_file())
                out[f"{side}_{level}"] = {
                    "wall": round(statistics.median(ws), 3), "cpu": round(statistics.median(cs), 3),
                    "wall_ratio": round(statistics.median(ws) / statistics.median(bare_w), 3),
                    "cpu_ratio": round(statistics.median(cs) / statistics.median(bare_c), 3),
                    "bytes_per_step": size // args.repeats}
        n_bytes = sum(f.stat().st_size for side in ("paddle", "torch") for f in (tmp / f"{side}_full").rglob("*")
                      if f.is_file())
        prof = cProfile.Profile(time.process_time) if args.profile else None
        if prof:
            prof.enable()
        w, c, _ = timed(lambda: padiff.compare_runs(tmp / "paddle_full", tmp / "torch_full"))
        if prof:
            prof.disable()
            out["compare_runs_profile"] = profile_table(prof, COMPARE_RUNS_PARTS)
            out["compare_runs_top"] = top_functions(prof)
        out["compare_runs"] = {"wall": round(w, 3), "cpu": round(c, 3), "bytes": n_bytes,
                               "gb_per_s_per_core": round(n_bytes / 1e9 / max(c, 1e-9), 3),
                               "gb_per_s_wall": round(n_bytes / 1e9 / max(w, 1e-9), 3)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


PARTS = {"bare": part_bare, "suggest": part_suggest, "compare": part_compare, "fault": part_fault,
         "recorder": part_recorder}


def worker(args: argparse.Namespace) -> None:
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    w, _, (layer, module, inp, n) = timed(lambda: BUILDERS[args.case](args))
    if args.threads:
        import paddle
        import torch

        torch.set_num_threads(args.threads)
        paddle.base.core.set_num_threads(args.threads)
    built = {"build_wall": round(w, 3), "params": n, "rss_built_gb": round(current_rss_gb(), 3)}
    res = PARTS[args.worker](args, layer, module, inp)
    res.update(built)
    res["peak_rss_gb"] = round(rss_gb(), 3)
    print("RESULT " + json.dumps(res), flush=True)


PADIFF_ROOT = ""  # --padiff-root: a checkout whose padiff the parts import (a before/after comparison)


def run_part(part: str, argv: list[str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    print(f"== {part}", flush=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([PADIFF_ROOT or str(ROOT), str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, __file__, "--worker", part, *argv], cwd=ROOT, text=True,
                          capture_output=True, check=False, env=env)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout)[-3000:]
        print(f"   failed (exit {proc.returncode}):\n{tail}", flush=True)
        return {"error": tail, "exit": proc.returncode}
    out: dict[str, Any] = json.loads(line[len("RESULT "):])
    out["process_wall"] = round(time.perf_counter() - t0, 1)
    print("   " + json.dumps({k: v for k, v in out.items() if k not in ("top", "notes")})[:1500], flush=True)
    return out


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    """The issue's ratios from the parts' figures."""
    bare = res.get("bare", {})
    s: dict[str, Any] = {}
    if "fwd_bwd_wall_median" not in bare:
        return s
    bw, bc = bare["fwd_bwd_wall_median"], bare["fwd_bwd_cpu_median"]
    weights_plus_act = bare["paddle_weights_gb"] + max(bare["peak_after_paddle_gb"] - bare["rss_after_build_gb"], 0)
    s["bare_fwd_bwd_wall_s"], s["bare_fwd_bwd_cpu_s"], s["bare_peak_gb"] = bw, bc, bare["peak_rss_gb"]
    s["one_model_weights_plus_activations_gb"] = round(weights_plus_act, 3)
    sug = res.get("suggest", {})
    if "wall" in sug:
        s["suggest_over_bare_wall"] = round(sug["wall"] / bw, 2)
        s["suggest_over_bare_cpu"] = round(sug["cpu"] / bc, 2)
        s["suggest_extra_peak_gb"] = round(sug["peak_rss_gb"] - bare["peak_rss_gb"], 3)
    cmp_ = res.get("compare", {})
    if "wall" in cmp_:
        s["compare_over_bare_wall"] = round(cmp_["wall"] / bw, 2)
        s["compare_over_bare_cpu"] = round(cmp_["cpu"] / bc, 2)
        extra = cmp_["peak_rss_gb"] - bare["peak_rss_gb"]
        s["compare_extra_peak_gb"] = round(extra, 3)
        s["compare_extra_over_weights_plus_act"] = round(extra / weights_plus_act, 2) if weights_plus_act else None
        s["compare_agree"] = cmp_["agree"]
    fault = res.get("fault", {})
    if "wall" in fault:
        s["fault_named_at_its_layer"] = fault["named_at_its_layer"]
        s["fault_over_bare_wall"] = round(fault["wall"] / bw, 2)
        s["fault_over_bare_cpu"] = round(fault["cpu"] / bc, 2)
        s["fault_extra_peak_gb"] = round(fault["peak_rss_gb"] - bare["peak_rss_gb"], 3)
    rec = res.get("recorder", {})
    for side in ("paddle", "torch"):
        for level in ("stats", "full"):
            if f"{side}_{level}" in rec:
                s[f"recorder_{side}_{level}_wall_cpu"] = (rec[f"{side}_{level}"]["wall_ratio"],
                                                          rec[f"{side}_{level}"]["cpu_ratio"])
    if "compare_runs" in rec:
        s["compare_runs_gb_s_core"] = rec["compare_runs"]["gb_per_s_per_core"]
    return s


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(BUILDERS), default="qwen2")
    ap.add_argument("--layers", type=int, default=QWEN2_05B["num_hidden_layers"])
    ap.add_argument("--vocab", type=int, default=QWEN2_05B["vocab_size"])
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32, help="resnet50's batch")
    ap.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="threads per framework (0: their defaults)")
    ap.add_argument("--profile", action="store_true", help="cProfile the suggest, compare and recorder parts")
    ap.add_argument("--tag", default="", help="results file suffix (default: the shape)")
    ap.add_argument("--padiff-root", default="", help="import padiff from this checkout (the code before a change)")
    ap.add_argument("--keep-map", default="", help="save suggest's map to this file, or reuse it there when "
                    "suggest is not among --parts (run the parts one at a time when memory is short)")
    ap.add_argument("--fault-at", choices=["block", "leaf"], default="block",
                    help="fault part: scale the middle decoder block's output, or its last layer the map pairs")
    ap.add_argument("--merge", action="store_true", help="add these parts to the results file of the same tag")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--map-path", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return
    global PADIFF_ROOT
    PADIFF_ROOT = args.padiff_root
    shape = (f"{args.layers}l_v{args.vocab}_s{args.seq}" if args.case == "qwen2" else f"b{args.batch}")
    tag = args.tag or f"{shape}_t{args.threads}"
    tmp = tempfile.mkdtemp(prefix="padiff-bench-large-map-")
    map_path = args.keep_map or os.path.join(tmp, "map.json")
    base = ["--case", args.case, "--layers", str(args.layers), "--vocab", str(args.vocab), "--seq", str(args.seq),
            "--batch", str(args.batch), "--repeats", str(args.repeats), "--threads", str(args.threads),
            "--fault-at", args.fault_at,
            "--map-path", map_path] + (["--profile"] if args.profile else [])
    t0 = time.perf_counter()
    path = RESULTS / f"large_{args.case}_{tag}.json"
    old: dict[str, Any] = json.loads(path.read_text()) if args.merge and path.exists() else {}
    res: dict[str, Any] = {"case": args.case, "shape": shape, "threads": args.threads,
                           "padiff_root": args.padiff_root or str(ROOT),
                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                       "load_average": os.getloadavg()}}
    try:
        for part in args.parts:
            reuse = bool(args.keep_map) and os.path.exists(args.keep_map)
            if part in ("compare", "fault") and "suggest" not in args.parts and "suggest" not in res and not reuse:
                res["suggest"] = run_part("suggest", base)
            res[part] = run_part(part, base)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    if old:  # parts run one at a time: each keeps its own date and load average
        runs = old.get("runs", [{k: old.get(k) for k in ("date", "machine", "seconds")}])
        this = {"parts": args.parts, **{k: res[k] for k in ("date", "machine", "seconds")}}
        res = {**old, **{k: v for k, v in res.items() if k in args.parts}, "runs": [*runs, this]}
    res["summary"] = summarise(res)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=1))
    print(f"\nwritten {path.relative_to(ROOT)}")
    print("| figure | value | target |\n|---|---|---|")
    want = {"suggest_over_bare_wall": TARGETS["suggest_over_bare"], "compare_over_bare_wall": TARGETS["compare_wall"],
            "compare_over_bare_cpu": TARGETS["compare_cpu"],
            "compare_extra_over_weights_plus_act": TARGETS["extra_memory"],
            "compare_runs_gb_s_core": TARGETS["compare_runs_gb_s_core"]}
    for k, v in res["summary"].items():
        print(f"| {k} | {v} | {want.get(k, '')} |")


if __name__ == "__main__":
    main()
