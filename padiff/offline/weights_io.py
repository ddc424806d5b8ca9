"""``export_weights`` / ``import_weights``: ``assign_weight`` across processes, through a safetensors file.

The file holds every tensor a model owns under ``"<layer path>::<name>"`` and, in its
metadata, the model skeleton (the same JSON as a run folder's), so the importing side pairs
layers with the same routes as ``compare_runs`` (definition order, ``"auto"``, a map) and
converts them with the same plans (:mod:`padiff.offline.import_plan`). Each side imports only
its own framework.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from padiff.errors import RunFolderError, WeightAssignError
from padiff.names import show
from padiff.offline.import_plan import describe, plan_import
from padiff.offline.skeleton_fields import layout_field, special_field

META_KEY = "padiff-weights"


def _skeleton(side: Any, model: Any) -> dict[str, Any]:
    owned = side.owned_state(model)
    layers = []
    for path, lay in side.named_layers(model):
        layers.append({"path": path, "cls": type(lay).__name__, "leaf": not side.children(lay),
                       **special_field(side, lay),
                       "state": [{"name": e.name, "shape": list(side.shape(e.tensor)), "buffer": bool(e.is_buffer),
                                  "trainable": bool(e.trainable), **layout_field(side, lay, e.name)}
                                 for e in owned.get(path, [])]})
    return {"framework": side.name, "version": 1, "root_class": type(model).__name__, "layers": layers}


def export_weights(model: Any, path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
    """Write every parameter and buffer of ``model`` to a safetensors file; returns its path.

    An existing file is kept unless ``overwrite=True``. Missing parent folders are created (as
    ``Recorder`` creates its ``out_dir``); a path that cannot be written (under a file, onto a
    folder, no permission) raises :class:`~padiff.errors.OutputPathError` naming it.
    """
    from padiff.offline.recorder import side_of
    from padiff.offline.tensor_file import to_stored, write_tensors
    from padiff.report.files import unwritable

    side = side_of(model)
    path = os.fspath(path)
    if os.path.isdir(path):
        raise unwritable(path, IsADirectoryError(path), "the weights")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as exc:
        raise unwritable(path, exc, "the weights") from exc
    if os.path.exists(path) and not overwrite:
        raise RunFolderError(f"{path} exists; padiff does not overwrite it (pass overwrite=True or a new path).")
    tensors, dtypes = {}, {}
    for p, entries in side.owned_state(model).items():
        for e in entries:  # half types kept in their own dtype, as in a run folder
            dtypes[f"{p}::{e.name}"] = dt = side.dtype_name(e.tensor)
            tensors[f"{p}::{e.name}"] = to_stored(side.to_numpy(e.tensor), dt)
    tmp = path + ".partial"
    try:
        write_tensors(tmp, tensors, dtypes, {META_KEY: json.dumps(_skeleton(side, model))})
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise unwritable(path, exc, "the weights") from exc
    return path


def import_weights(model: Any, path: str | os.PathLike[str], layer_map: Any = None) -> list[str]:
    """Copy the weights of a file written by :func:`export_weights` (the other framework) into ``model``.

    Layers are paired by ``layer_map`` (``None``: definition order of parameter-holding layers,
    ``"auto"``: the module-tree matcher over the two skeletons, a map file / ``LayerMap`` / path
    dict with fused pairs and parameter pairs kept) and converted by the same weight plans as the
    live copy and ``compare_runs`` (:mod:`padiff.offline.run_plans`). Nothing is guessed: a pair
    ``"auto"`` is not sure of (confidence below 0.9) and a square weight whose orientation neither a
    known layer convention nor the map decides are refused with a ``WeightAssignError`` naming the
    layers and saying what to do, before any tensor is written. Returns one line per pair saying
    how its tensors were converted. The file's side must be the other framework.
    """
    from padiff.offline.reader import RankRun
    from padiff.offline.recorder import side_of
    from padiff.offline.tensor_file import load_tensors, read_metadata

    side = side_of(model)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RunFolderError(f"{path} is missing: write it with padiff.export_weights on the other side.")
    try:
        with open(path, "rb") as f:
            data = f.read()
        meta = json.loads(read_metadata(data)[META_KEY])
        arrays = load_tensors(data, path)
    except (KeyError, ValueError, OSError) as exc:
        raise RunFolderError(f"{path} is not a padiff weights file ({exc}).") from None
    src = RankRun(path, {"framework": meta["framework"], "rank": 0}, meta)
    dst = RankRun("", {"framework": side.name, "rank": 0}, _skeleton(side, model))
    if src.framework == side.name:
        raise WeightAssignError(f"{path} was exported from a {side.name} model; import_weights copies across "
                                "frameworks (export the other side's model).")
    pd, pt = (dst, src) if side.name == "paddle" else (src, dst)
    copies = plan_import(pd, pt, layer_map)
    owned = side.owned_state(model)
    values = []
    for c in copies:  # every value computed (and checked) before the model is touched
        mine = c.target(side.name)
        entry = next(e for e in owned[mine.path] if e.name == mine.name)
        arr = c.value(arrays, side.name)
        if tuple(arr.shape) != tuple(side.shape(entry.tensor)):
            raise WeightAssignError(f"{c.label}: the converted value has shape {list(arr.shape)} but "
                                    f"{side.name} {show(mine.path)}.{mine.name} has {list(side.shape(entry.tensor))}.")
        values.append((entry, arr))
    for entry, arr in values:
        side.set_value(entry.tensor, np.ascontiguousarray(arr))
    return describe(copies)


__all__ = ["META_KEY", "export_weights", "import_weights"]
