"""The adapters are the bottom layer: the interface is complete on both sides, and nothing above is imported."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import padiff
from padiff.adapters import PADDLE, TORCH, FrameworkSide, PaddleSide, TorchSide
from padiff.adapters.protocol import FrameworkSide as Protocol


def _members(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}


def test_both_sides_implement_every_protocol_member_themselves_or_in_the_base():
    wanted = _members(Protocol)
    assert {"to_numpy", "is_leaf", "is_floating", "mean", "add_grad_hook", "flatten"} <= wanted
    for cls in (PaddleSide, TorchSide):
        for name in wanted:
            owner = next(k for k in cls.__mro__ if name in vars(k))
            # a member only the protocol defines would silently return None
            assert owner is not Protocol, f"{cls.__name__}.{name} is not implemented"


def test_the_singletons_are_the_two_sides_and_declare_the_interface():
    assert (PADDLE.name, TORCH.name) == ("paddle", "torch")
    assert FrameworkSide in type(PADDLE).__mro__ and FrameworkSide in type(TORCH).__mro__


def test_adapters_import_nothing_of_padiff_above_them():
    root = Path(inspect.getfile(padiff)).parent / "adapters"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("padiff"):
                assert node.module.startswith("padiff.adapters"), (path.name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("padiff") or alias.name.startswith("padiff.adapters"), path.name


def test_framework_imports_only_under_the_adapters_and_the_exporters():
    # module-level or inside functions: anywhere else padiff reaches a framework through an adapter
    root = Path(inspect.getfile(padiff)).parent
    allowed = ("adapters/", "graph/export_", "graph/_p2o_child.py", "runtime/ops/recorder_")
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            if any(n.split(".")[0] in ("paddle", "torch", "paddle2onnx") for n in names):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []
