"""Export a torch model to ONNX bytes in memory, leaving the model as it was.

Exporter choice (measured here, torch 2.13 CPU): the TorchScript exporter
(``dynamo=False``) takes ~0.3 s on a small net and ~0.6 s on resnet50, and keeps the
module scope of every op in its node name (``/layer1/layer1.0/conv1/Conv``, a second
call of ``relu`` becomes ``relu_1``); initializers are ``state_dict`` keys. The dynamo
exporter is 5-15x slower here, needs ``onnxscript`` and fails on data-dependent control
flow. ``export_params=False``: only structure and names are needed (shapes come from
the live model); resnet50's graph drops from ~100 MB to ~60 KB and exports in ~0.5 s
instead of ~0.8 s. ``do_constant_folding=False`` keeps BatchNorm unfused and parameter
names intact (folding in eval mode merges BN into Conv and renames weights to
``onnx::Conv_N``).
When the TorchScript exporter fails (``aten::diff``, ``aten::histc``, internal asserts), the
dynamo exporter is tried second if ``onnxscript`` is importable (``optimize=False`` keeps
BatchNorm unfused); its initializers are ``state_dict`` keys too and each node's
``pkg.torch.onnx.name_scopes`` metadata names its module (:func:`dynamo_scope_of`). Its
graph is attributed the same way, and the export's ``note`` says why it was used.
Export runs in eval mode (no BatchNorm statistics update, no dropout); every module's
``training`` flag and every parameter's ``requires_grad`` is restored afterwards.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from padiff.adapters import TORCH
from padiff.adapters.attrs import AttributeSnapshot
from padiff.errors import ExportError
from padiff.graph._quiet import quiet
from padiff.graph.export_message import cause_text

OPSET = 17


@dataclass
class TorchExport:
    """ONNX bytes plus what is needed to attribute its ops to module paths."""

    model: bytes
    owner: dict[str, tuple[str, str]]  # state_dict key -> (module path, attribute)
    module_paths: frozenset[str]
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # state_dict key -> shape
    seconds: dict[str, float] = field(default_factory=dict)
    exporter: str = "torchscript"  # or "dynamo" (second try)
    note: str = ""  # why the second exporter was used (the first one's whole cause)

    def scope(self) -> Any:
        """The scope function for :func:`padiff.graph.build.build_graph` that fits this export's node naming."""
        paths = self.module_paths
        if self.exporter == "dynamo":
            return lambda node: dynamo_scope_of(node, paths)
        return lambda node: scope_of(node.name, paths)


def export_torch(module: Any, kwargs: Mapping[str, Any]) -> TorchExport:
    """Export ``module`` called as ``module(**kwargs)``; raise :class:`ExportError` on failure."""
    import torch

    t0 = time.perf_counter()
    mods = list(module.named_modules(remove_duplicate=False))
    owner: dict[str, tuple[str, str]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for path, sub in mods:
        for attr, t in list(sub.named_parameters(recurse=False)) + list(sub.named_buffers(recurse=False)):
            key = f"{path}.{attr}" if path else attr
            if t is not None and key not in owner:
                owner[key] = (path, attr)
                shapes[key] = tuple(int(d) for d in t.shape)
    modes = [(sub, sub.training) for _, sub in mods]
    flags = [(p, p.requires_grad) for p in module.parameters()]
    buf = io.BytesIO()
    exporter, note = "torchscript", ""
    attrs = AttributeSnapshot.take(TORCH, module)  # a traced forward may cache tensors in attributes
    try:
        module.eval()
        try:
            with quiet():
                torch.onnx.export(module, (), buf, kwargs=dict(kwargs), dynamo=False, do_constant_folding=False,
                                  opset_version=OPSET, training=torch.onnx.TrainingMode.EVAL, export_params=False)
        except Exception as exc:  # the exporter raises many types; all mean "cannot export"
            first = f"torch.onnx.export failed (TorchScript exporter): {cause_text(exc)}"
            if not _has_onnxscript():
                raise ExportError(f"{first}\n(the dynamo exporter, tried second, needs `pip install onnxscript`)") \
                    from exc
            t1 = time.perf_counter()
            try:
                data = _export_dynamo(module, kwargs)
            except Exception as again:
                raise ExportError(f"{first}\nand the dynamo exporter failed too: {cause_text(again)}") from again
            buf = io.BytesIO(data)
            exporter = "dynamo"
            note = (f"{first}\nso torch was exported with the dynamo exporter instead "
                    f"({time.perf_counter() - t1:.1f}s)")
    finally:
        attrs.restore()
        for sub, mode in modes:
            sub.training = mode
        for p, flag in flags:
            if p.requires_grad != flag:
                p.requires_grad_(flag)
    return TorchExport(buf.getvalue(), owner, frozenset(p for p, _ in mods), shapes,
                       {"torch_export": time.perf_counter() - t0}, exporter, note)


def _has_onnxscript() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxscript") is not None


def _export_dynamo(module: Any, kwargs: Mapping[str, Any]) -> bytes:
    """ONNX bytes from ``torch.onnx.export(..., dynamo=True)``, unoptimised (BatchNorm stays unfused)."""
    import logging

    import torch

    log = logging.getLogger("torch.onnx")  # its registry warns about every optional package it misses
    level = log.level
    log.setLevel(logging.ERROR)
    made = _new_temp_entries()
    try:
        with quiet():
            program = torch.onnx.export(module, (), kwargs=dict(kwargs), dynamo=True, optimize=False,
                                        external_data=False, verbose=False, report=False)
    finally:
        log.setLevel(level)
        made()
    if program is None:  # pragma: no cover - the dynamo exporter always returns its program
        raise ExportError("the dynamo exporter returned no program")
    return program.model_proto.SerializeToString()


def _new_temp_entries() -> Any:
    """A function removing the ``torchinductor_*`` cache folders the dynamo exporter creates in the temp dir.

    Only folders that did not exist before are removed: padiff leaves no temp files behind,
    and a cache someone else made stays.
    """
    import shutil
    import tempfile

    root = tempfile.gettempdir()

    def caches() -> set[str]:
        try:
            return {e for e in os.listdir(root) if e.startswith("torchinductor_")}
        except OSError:
            return set()

    before = caches()

    def clean() -> None:
        for entry in caches() - before:
            shutil.rmtree(os.path.join(root, entry), ignore_errors=True)

    return clean


SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def dynamo_scope_of(node: Any, module_paths: frozenset[str]) -> tuple[str, int] | None:
    """``(module path, call index)`` of a dynamo-exported node, from its ``name_scopes`` metadata.

    The metadata lists the enclosing module paths from the root down, then the op's own
    name (``['', 'blocks.0', 'blocks.0.fc', 'linear']``); a scope that is no module path but
    one with a ``_N`` suffix is read as that module's call ``N``. None when the node carries
    no scope.
    """
    import ast

    raw = next((p.value for p in node.metadata_props if p.key == SCOPES_KEY), None)
    if raw is None:
        return None
    try:
        scopes = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(scopes, (list, tuple)) or len(scopes) < 2:
        return None
    inner = str(scopes[-2])
    if inner in module_paths or inner == "":
        return inner, 0
    m = _CALL.match(inner)
    if m and m.group(1) in module_paths:
        return m.group(1), int(m.group(2))
    return None


_CALL = re.compile(r"^(.*)_(\d+)$")


def scope_of(node_name: str, module_paths: frozenset[str]) -> tuple[str, int] | None:
    """``(module path, call index)`` from a TorchScript-exporter node name, or None at root.

    Scope components are either full paths (``layer1.0``) or names relative to the
    enclosing scope (``conv1``), with ``_N`` appended for the N-th further call under
    the same parent: ``/layer1/layer1.0/conv1/Gemm`` → ``("layer1.0.conv1", 0)``,
    ``/b/relu_1/Relu`` → ``("b.relu", 1)``.
    """
    if not node_name.startswith("/"):
        return None
    parts = node_name.split("/")[1:-1]
    if not parts:
        return "", 0  # an op of the root module's own forward
    path, call = "", 0
    for comp in parts:
        found = _resolve(comp, path, module_paths)
        if found is None:
            m = _CALL.match(comp)
            found = _resolve(m.group(1), path, module_paths) if m else None
            if found is None:
                return None
            call = int(m.group(2)) if m else 0
        else:
            call = 0
        path = found
    return path, call


def _resolve(comp: str, parent: str, module_paths: frozenset[str]) -> str | None:
    """Full path of scope component ``comp`` under ``parent``.

    Components are relative to the parent (``conv1``) or, for children of containers,
    to an ancestor further up (``layer1.0`` under ``layer1``; ``expand.2`` under
    ``blocks.1.expand`` means ``blocks.1.expand.2``), so every ancestor is tried,
    nearest first.
    """
    prefix = parent
    while True:
        cand = f"{prefix}.{comp}" if prefix else comp
        if cand in module_paths and (not parent or cand.startswith(parent + ".")):
            return cand
        if not prefix:
            return None
        prefix = prefix.rpartition(".")[0]
