"""The run-folder format (version 1): what :class:`~padiff.offline.recorder.Recorder` writes.

A run folder holds one ``rank-<r>/`` folder per process; a process writes only its own::

    RUN/rank-0/run.json        {"format": "padiff-run", "version": 1, "framework", "rank",
                                "world_size", "level", "created", "mesh" (tensor-parallel only:
                                {"ranks", "shape"})}  (written once, at start)
    RUN/rank-0/skeleton.json   {"root_class", "layers": [{"path", "cls", "leaf", "depth",
                                "state": [{"name", "shape", "dtype", "trainable", "buffer",
                                "layout" (when a framework layer fixes it)}]}]}
    RUN/rank-0/graph.json      the exported, attributed op graph (written after the first recorded step;
                                {"version", "nodes", "edges", "control_layers", "owner"} or {"version",
                                "error"} when the export failed; see :mod:`padiff.offline.graph_io`)
    RUN/rank-0/index.jsonl     one JSON line per *complete* step, appended after its tensors
    RUN/rank-0/steps/step-000003.safetensors   the step's tensors (level "full" only)
    RUN/rank-0/steps/step-000003.float64.safetensors   the float64 reference's tensors, by the same keys
                                (a torch run recorded with ``reference="float64"``, level "full" only)
    RUN/rank-0/recording.lock  {"pid", "host", "started", "proc_start", "step"} while a Recorder writes the
                                folder (not part of the recording; see :mod:`padiff.offline.run_lock`)

An index line is ``{"step", "micro_steps", "tensors" (relative path or null), "sha256",
"digests": [input digest per micro-step], "call_order": [paths], "calls": [[path, call]], "entries": [...],
"check"}`` (``check``: :func:`line_check`, the SHA-256 of the line's other fields; ``call_order``: each layer's
first call, in the order they returned; ``calls``: every call of the first micro-step in the order they began,
as the live engine pairs them; older runs have no ``calls``); each
entry is ``{"key", "stage", "path", "cls", "call", "item", "micro", "shape", "dtype",
"stats"}`` where ``stage`` is ``forward`` (layer output), ``backward`` (gradient flowing out
of a layer output), ``grad`` (parameter gradient, summed over the step's micro-steps as the
framework accumulates it), ``weight`` (parameter value after the step) or ``loss``, and
``stats`` is :data:`STAT_NAMES`; a tensor-parallel shard adds ``placement`` (see
:mod:`padiff.offline.shards`; ``shape`` is then the local shard's). Tensors are stored under
``key`` in the safetensors file, each in the dtype the model computed in (``BF16``, ``F16``,
``F32`` ...; see :mod:`padiff.offline.tensor_file`). The BatchNorm running variance of a paddle
run also carries ``torch_convention`` (``{"key", "stats"}``: the value as torch's unbiased update
gives it, see :mod:`padiff.compare.conventions`). A torch run recorded with ``reference="float64"``
has ``"reference": "float64"`` in ``run.json``; its index lines add ``reference_tensors`` and
``reference_sha256`` (the file above) and each entry either ``reference`` (``{"stats"`` of the float64
copy's tensor, and ``"allowance"`` where the optimizers' weight-decay conventions explain an error``}``)
or ``reference_why`` (why the copy has none: :mod:`padiff.offline.reference`).

Why this shape: the step's tensors are complete (written to a temporary name, then renamed)
before its index line is appended with one write, so a run killed at any moment leaves every
earlier step readable and at most one partial last line, which the reader drops. Paths are
relative; nothing is pickled; the SHA-256 of each tensor file is in its index line, so a
changed file is detected. A folder that already holds a recording is never written into.
"""

from __future__ import annotations

import math

import numpy as np

from padiff.offline import moments

FORMAT = "padiff-run"
VERSION = 1
RUN_FILE = "run.json"
SKELETON_FILE = "skeleton.json"
INDEX_FILE = "index.jsonl"
GRAPH_FILE = "graph.json"
STEPS_DIR = "steps"
LEVELS = ("full", "stats")
STAGES = ("forward", "loss", "backward", "grad", "weight")
#: the statistics kept per tensor (both levels); level "stats" keeps only these
STAT_NAMES = ("mean", "std", "min", "max", "abs_mean", "rms", "nan", "inf")


def entry_key(stage: str, path: str, call: int, item: str, micro: int) -> str:
    """The key of one recorded entry (and of its tensor in the step file): writer and reader both use this.

    ``stage|path|call|item|micro``; the comparison looks the other run's entry up by the same key,
    so a change of format here is one change for both sides.
    """
    return f"{stage}|{path}|{int(call)}|{item}|{int(micro)}"


def rank_dir(rank: int) -> str:
    """The folder name of one rank's recording."""
    return f"rank-{rank}"


def step_file(step: int) -> str:
    """The tensor file of one step, relative to the rank folder."""
    return f"{STEPS_DIR}/step-{step:06d}.safetensors"


def reference_file(step: int) -> str:
    """The float64 reference tensors of one step of a torch run recorded with ``reference="float64"``."""
    return f"{STEPS_DIR}/step-{step:06d}.float64.safetensors"


def line_check(line: dict) -> str:
    """The SHA-256 an index line carries of its own content (every field but ``check``), so an edit is seen."""
    import hashlib
    import json

    body = {k: v for k, v in line.items() if k != "check"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=True).encode()).hexdigest()


def combined_stats(parts: list[tuple[list[float], int]]) -> list[float]:
    """:data:`STAT_NAMES` of the tensors ``(stats, element count)`` put together, from their statistics alone.

    Every statistic kept is blind to the order of the elements, so the result is that of any
    concatenation or interleaving of the tensors: what a fused layer's output is made of.
    """
    nan = sum(float(s[6]) for s, _ in parts)
    inf = sum(float(s[7]) for s, _ in parts)
    counted = [(s, n - int(s[6]) - int(s[7])) for s, n in parts]
    counted = [(s, n) for s, n in counted if n > 0]
    total = sum(n for _, n in counted)
    if not total:
        return [math.nan] * 6 + [nan, inf]
    mean = sum(s[0] * n for s, n in counted) / total
    square = sum(s[5] * s[5] * n for s, n in counted) / total
    return [mean, math.sqrt(max(square - mean * mean, 0.0)), min(s[2] for s, _ in counted),
            max(s[3] for s, _ in counted), sum(s[4] * n for s, n in counted) / total, math.sqrt(square), nan, inf]


def tensor_stats(a: np.ndarray) -> list[float]:
    """:data:`STAT_NAMES` of ``a`` in float64, over its finite elements (NaN/Inf counted apart).

    Computed block by block without a float64 copy of the tensor (:mod:`padiff.offline.moments`).
    """
    return moments.tensor_stats(a)
