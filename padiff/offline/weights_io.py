"""``export_weights`` / ``import_weights``: ``assign_weight`` across processes, through a safetensors file.

The file holds every tensor a model owns under ``"<layer path>::<name>"`` and, in its
metadata, the model skeleton (the same JSON as a run folder's), so the importing side pairs
layers with the same routes as ``compare_runs`` (definition order, ``"auto"``, a map) and
converts layouts with :mod:`padiff.weights.layout_infer`. Each side imports only its own
framework.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from padiff.errors import RunFolderError, WeightAssignError
from padiff.layer_map import LayerPair

META_KEY = "padiff-weights"


def _skeleton(side: Any, model: Any) -> dict[str, Any]:
    owned = side.owned_state(model)
    layers = []
    for path, lay in side.named_layers(model):
        layers.append({"path": path, "cls": type(lay).__name__, "leaf": not side.children(lay),
                       "state": [{"name": e.name, "shape": list(side.shape(e.tensor)), "buffer": bool(e.is_buffer),
                                  "trainable": bool(e.trainable)} for e in owned.get(path, [])]})
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
    ``"auto"``: the module-tree matcher, a map file / ``LayerMap`` / path dict). Returns one line per
    pair saying how its tensors were converted; raises ``WeightAssignError`` naming the pair when
    the shapes do not correspond. The file's side must be the other framework.
    """
    from padiff.offline.compare_runs import resolve_pairs
    from padiff.offline.reader import RankRun
    from padiff.offline.recorder import side_of
    from padiff.offline.tensor_file import load_tensors, read_metadata
    from padiff.weights.layout_infer import Tensor, one_to_one

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
    if layer_map is None:
        from padiff.graph.suggest import baseline_pairs
        from padiff.offline.compare_runs import skeleton_infos

        pairs = baseline_pairs(skeleton_infos(pd), skeleton_infos(pt))
    else:
        pairs, _route, _notes = resolve_pairs(pd, pt, layer_map)
    owned = side.owned_state(model)
    layers = dict(side.named_layers(model))
    done: list[str] = []
    for pair in pairs:
        mine, theirs = pair.paddle_path, pair.torch_path
        if side.name != "paddle":
            mine, theirs = theirs, mine
        entries = owned.get(mine, [])
        if not entries:
            continue
        src_state = next((lay["state"] for lay in meta["layers"] if lay["path"] == theirs), [])
        src_cls = next((lay["cls"] for lay in meta["layers"] if lay["path"] == theirs), "")
        my_cls = type(layers[mine]).__name__
        if side.name == "paddle":
            links = one_to_one([Tensor(e.name, side.shape(e.tensor), my_cls) for e in entries],
                               [Tensor(s["name"], tuple(s["shape"]), src_cls) for s in src_state])
        else:
            links = _reverse_links(entries, side, my_cls, src_state, src_cls)
        if links is None:
            raise WeightAssignError(_mismatch(pair, entries, side, src_state))
        by_name = {e.name: e for e in entries}
        for link in links:
            arr = link.fn([arrays[f"{theirs}::{n}"] for n in link.torch_names])
            side.set_value(by_name[link.paddle_name].tensor, np.ascontiguousarray(arr))
        how = ", ".join(f"{k.paddle_name} ({k.conversion})" for k in links)
        done.append(f"{_show(mine)} <- {_show(theirs)}: {how}")
    return done


def _reverse_links(entries: list[Any], side: Any, my_cls: str, src_state: list[dict[str, Any]], src_cls: str) -> Any:
    """torch side importing paddle weights: link in the paddle direction, then apply the inverse."""
    from padiff.weights.layout_infer import Inferred, Tensor, one_to_one

    fwd = one_to_one([Tensor(s["name"], tuple(s["shape"]), src_cls) for s in src_state],
                     [Tensor(e.name, side.shape(e.tensor), my_cls) for e in entries])
    if fwd is None:
        return None
    out = []
    for link in fwd:
        if "transpose" not in link.conversion and "reshape" not in link.conversion and link.conversion != "copy":
            return None
        shape = next(side.shape(e.tensor) for e in entries if e.name == link.torch_names[0])

        def inv(arrs: list[np.ndarray], shape: tuple[int, ...] = shape,
                tr: bool = "transpose" in link.conversion) -> np.ndarray:
            a = arrs[0]
            return a.T.reshape(shape) if tr else a.reshape(shape)
        out.append(Inferred(link.torch_names[0], (link.paddle_name,), link.conversion, inv))
    return out


def _mismatch(pair: LayerPair, entries: list[Any], side: Any, src_state: list[dict[str, Any]]) -> str:
    mine = [f"{e.name}{list(side.shape(e.tensor))}" for e in entries]
    theirs = [f"{s['name']}{s['shape']}" for s in src_state]
    return (f"cannot copy weights for paddle {_show(pair.paddle_path)} <-> torch {_show(pair.torch_path)}: "
            f"this model holds {mine}, the file {theirs}. Pass a layer_map (or 'auto') that pairs these layers "
            "correctly, or register a special init.")


def _show(path: str) -> str:
    return path or "<root>"
