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

