"""padiff: check that a PaddlePaddle model and its PyTorch port compute the same thing.

Public API (paddle first, torch second everywhere):

- :func:`auto_diff` / :func:`compare`: run both models side by side and find the first
  layer where forward outputs, gradients or trained weights stop agreeing.
- :func:`assign_weight`: copy the torch weights into the paddle model.
- :class:`LayerMap`, :func:`suggest_layer_map`: declare or propose which layers correspond.
- :class:`Recorder`, :func:`compare_runs`, :func:`export_weights`, :func:`import_weights`:
  record in your own training loop (one framework per process) and compare offline.
- :func:`add_special_init`: teach padiff how to copy weights of a layer pair.
"""

from __future__ import annotations

from typing import Any

from padiff.api import auto_diff, compare
from padiff.errors import (
    DiskFullError,
    ExportError,
    InputError,
    MapFileError,
    MappingError,
    ModelRunError,
    OptionsError,
    OutputPathError,
    PadiffError,
    PadiffInternalError,
    RunFolderError,
    WeightAssignError,
)
from padiff.layer_map import LayerMap, LayerPair
from padiff.offline.recorder import Recorder
from padiff.options import DiffOptions
from padiff.report.records import Comparison, DiffReport
from padiff.weights.special_init import add_special_init

__version__ = "1.0.0.dev0"


def assign_weight(layer: Any, module: Any, layer_map: Any = None) -> bool:
    """Copy the torch model's weights into the paddle model; False with reasons on failure."""
    from padiff.assign import assign_weight as _assign_weight

    return _assign_weight(layer, module, layer_map)


def suggest_layer_map(layer: Any, module: Any, example_inp: Any = None, **kwargs: Any) -> LayerMap:
    """Propose a LayerMap from the two models' structure (ONNX graphs with an input, module trees without)."""
    from padiff.graph.suggest import suggest_layer_map as _suggest
    from padiff.report.progress import status

    route = "module trees" if example_inp is None else "exporting both models to ONNX"
    with status(f"padiff: proposing a layer map ({route})..."):
        return _suggest(layer, module, example_inp, **kwargs)


def compare_runs(paddle_run: Any, torch_run: Any, layer_map: Any = None, options: Any = None, *,
                 conventions: bool = True) -> DiffReport:
    """Compare a recorded paddle run with a recorded torch run; neither framework is imported.

    ``conventions=False`` turns off reconciling framework conventions (BatchNorm running variance).
    """
    from padiff.offline.compare_runs import compare_runs as _compare_runs

    return _compare_runs(paddle_run, torch_run, layer_map=layer_map, options=options, conventions=conventions)


def export_weights(model: Any, path: Any, *, overwrite: bool = False) -> str:
    """Write a model's parameters and buffers (and its skeleton) to a safetensors file, for another process."""
    from padiff.offline.weights_io import export_weights as _export

    return _export(model, path, overwrite=overwrite)


def import_weights(model: Any, path: Any, layer_map: Any = None) -> list[str]:
    """Copy weights exported from the other framework into ``model``, pairing layers by ``layer_map``."""
    from padiff.offline.weights_io import import_weights as _import

    return _import(model, path, layer_map=layer_map)


def rnn_train_mode(*models: Any) -> Any:
    """A context in which every LSTM/GRU/simple RNN of ``models`` is in train mode with dropout 0
    (paddle's CPU backward of these fails in eval mode); modes and dropout are put back after it."""
    from padiff.runtime.rnn_mode import rnn_train_mode as _rnn_train_mode

    return _rnn_train_mode(*models)


__all__ = [
    "Comparison",
    "DiffOptions",
    "DiffReport",
    "DiskFullError",
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
    "Recorder",
    "RunFolderError",
    "WeightAssignError",
    "add_special_init",
    "assign_weight",
    "auto_diff",
    "compare",
    "compare_runs",
    "export_weights",
    "import_weights",
    "rnn_train_mode",
    "suggest_layer_map",
]
