"""Structure-only matcher on plain data, and the matcher's import purity."""

from __future__ import annotations

import subprocess
import sys

from padiff.graph.match import LayerInfo
from padiff.graph.tree import match_trees
from padiff.names import class_key as norm_class


def test_class_names_are_normalised() -> None:
    assert norm_class("Conv2D") == norm_class("Conv2d") == "conv"
    assert norm_class("BatchNorm2D") == norm_class("BatchNorm2d")
    assert norm_class("Linear") == norm_class("linear")


def test_tree_pairs_by_class_and_layout_free_shapes() -> None:
    p = {
        "": LayerInfo("", "Net", False),
        "conv": LayerInfo("conv", "Conv2D", True, ((8, 3, 3, 3), (8,))),
        "norm": LayerInfo("norm", "BatchNorm2D", True, ((8,), (8,), (8,), (8,))),
        "act": LayerInfo("act", "ReLU", True),
        "head": LayerInfo("head", "Linear", True, ((8, 4), (4,))),
    }
    t = {
        "": LayerInfo("", "Net", False),
        "features": LayerInfo("features", "Sequential", False),
        "features.0": LayerInfo("features.0", "Conv2d", True, ((8, 3, 3, 3), (8,))),
        "features.1": LayerInfo("features.1", "BatchNorm2d", True, ((8,), (8,), (8,), (8,))),
        "features.2": LayerInfo("features.2", "ReLU", True),
        "fc": LayerInfo("fc", "Linear", True, ((4, 8), (4,))),
    }
    res = match_trees(p, t)
    assert {pr.paddle_path: pr.torch_path for pr in res.pairs} == {
        "conv": "features.0", "norm": "features.1", "act": "features.2", "head": "fc"}
    assert res.unpaired == []


def test_tree_pairs_unique_shapes_out_of_order_and_explains_leftovers() -> None:
    p = {"a": LayerInfo("a", "Linear", True, ((4, 8), (8,))), "b": LayerInfo("b", "Linear", True, ((8, 2), (2,))),
         "drop": LayerInfo("drop", "Dropout", True)}
    t = {"y": LayerInfo("y", "Linear", True, ((2, 8), (2,))), "x": LayerInfo("x", "Linear", True, ((8, 4), (8,))),
         "z": LayerInfo("z", "Linear", True, ((5, 5), (5,)))}
    res = match_trees(p, t)
    assert {pr.paddle_path: pr.torch_path for pr in res.pairs} == {"a": "x", "b": "y"}
    reasons = {u.path: u.reason for u in res.unpaired}
    assert "extra Dropout" in reasons["drop"]
    assert reasons["z"].startswith("no counterpart")


def test_importing_the_matcher_imports_neither_paddle_nor_torch() -> None:
    code = ("import sys, padiff.graph.match, padiff.graph.units, padiff.graph.align, padiff.graph.canonical, "
            "padiff.graph.tree; "
            "bad = [m for m in ('paddle', 'torch', 'paddle2onnx') if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"padiff.graph.match imported {proc.stdout.strip()} {proc.stderr[-500:]}"
