"""padiff: check that a PaddlePaddle model and its PyTorch port compute the same thing.

Public API (paddle first, torch second everywhere):

- :func:`auto_diff` / :func:`compare`: run both models side by side and find the first
  layer where forward outputs, gradients or trained weights stop agreeing.
- :func:`assign_weight`: copy the torch weights into the paddle model.
- :class:`LayerMap`, :func:`suggest_layer_map`: declare or propose which layers correspond.
- :func:`add_special_init`: teach padiff how to copy weights of a layer pair.
"""

from __future__ import annotations

from typing import Any

from padiff.api import auto_diff, compare
from padiff.errors import (
    ExportError,
    InputError,
    MapFileError,
    MappingError,
    ModelRunError,
    OptionsError,
    OutputPathError,
    PadiffError,
    PadiffInternalError,
    WeightAssignError,
)
from padiff.layer_map import LayerMap, LayerPair
from padiff.options import DiffOptions
from padiff.report.records import Comparison, DiffReport
from padiff.runtime.special_init import add_special_init

__version__ = "1.0.0.dev0"


def assign_weight(layer: Any, module: Any, layer_map: Any = None) -> bool:
    """Copy the torch model's weights into the paddle model (SPEC §2); False with reasons on failure."""
    from padiff.runtime.assign import assign_weight as _assign_weight

    return _assign_weight(layer, module, layer_map)


def suggest_layer_map(layer: Any, module: Any, example_inp: Any = None, **kwargs: Any) -> LayerMap:
    """Propose a LayerMap from the two models' structure (ONNX graphs with an input, module trees without)."""
    from padiff.graph.suggest import suggest_layer_map as _suggest
    from padiff.report.progress import status

    route = "module trees" if example_inp is None else "exporting both models to ONNX"
    with status(f"padiff: proposing a layer map ({route})..."):
        return _suggest(layer, module, example_inp, **kwargs)


__all__ = [
    "Comparison",
    "DiffOptions",
    "DiffReport",
    "ExportError",
    "InputError",
    "LayerMap",
    "LayerPair",
    "MapFileError",
    "MappingError",
    "ModelRunError",
    "OptionsError",
    "OutputPathError",
    "PadiffError",
    "PadiffInternalError",
    "WeightAssignError",
    "add_special_init",
    "assign_weight",
    "auto_diff",
    "compare",
    "suggest_layer_map",
]
