"""What ``import_weights`` copies: the live copy's plans from two skeletons, and what it refuses.

The pairs come from the one map resolution of :mod:`padiff.offline.run_map` (fused pairs with
their parts and groups, parameter pairs), the conversions from the plans of
:mod:`padiff.offline.run_plans` (the inference the live ``assign_weight`` uses). Only one
framework is installed where the import runs, so nothing can be confirmed by running both
models; a copy is therefore refused, with the layers named, when

- ``layer_map="auto"`` proposed the pair with a confidence below :data:`SURE` (the module trees
  alone pair same-shaped layers, ``down_proj`` with ``up_proj``, by guesswork), or
- a weight is square and its orientation follows from no known layer convention (both layers
  Linear: transpose; the same kind of layer on both sides: copy) and the map does not say it
  (a parameter pair's ``conversion``).

Everything is decided before a tensor is written, so a refused import leaves the model as it was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from padiff.errors import WeightAssignError
from padiff.layer_map import LayerPair, ParamPair
from padiff.names import show
from padiff.offline.reader import RankRun
from padiff.offline.run_map import resolve_map, skeleton_infos
from padiff.offline.run_plans import Skeleton, plan_param_recorded, plan_recorded, source
from padiff.weights.layout_infer import is_linear
from padiff.weights.layouts import orientation
from padiff.weights.plan import Link

SURE = 0.9  # below this an "auto" pair is not copied without a person's review

WHAT_TO_DO = ("Run padiff.suggest_layer_map(layer, module, example_inp) where both frameworks are installed (it "
              "confirms pairs and orientations by running the models), review it (padiff review map.yaml), save it "
              "and pass the file as layer_map=...; or pair these layers in a map yourself (a parameter pair's "
              "conversion: copy or transpose says the orientation).")


@dataclass(frozen=True)
class Ref:
    """One tensor of one layer: its layer path, name and shape."""

    path: str
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Copy:
    """One paddle tensor computed from torch tensors by one link of a plan."""

    label: str  # "paddle <- torch" layers, for messages
    paddle: Ref
    torch: tuple[Ref, ...]
    link: Link

    def target(self, side: str) -> Ref:
        """The tensor written on ``side`` (a torch import writes the one torch tensor of the link)."""
        return self.paddle if side == "paddle" else self.torch[0]

    def value(self, arrays: Mapping[str, np.ndarray], into: str) -> np.ndarray:
        """The value to write on side ``into`` from the file's arrays (``"<path>::<name>"``)."""
        if into == "paddle":
            return self.link.fn([arrays[f"{t.path}::{t.name}"] for t in self.torch])
        conv = self.link.conversion
        if len(self.torch) != 1 or not (conv == "copy" or "transpose" in conv or "reshape" in conv) \
                or "concat" in conv or "split" in conv or "stack" in conv:
            raise WeightAssignError(f"{self.label}: importing paddle weights into torch supports one tensor to one "
                                    f"(copy, transpose, reshape), not {conv!r}. Export the torch model and import it "
                                    "into paddle instead, or copy this layer by hand.")
        a = arrays[f"{self.paddle.path}::{self.paddle.name}"]
        shape = self.torch[0].shape
        return a.T.reshape(shape) if "transpose" in conv and a.ndim == 2 else a.reshape(shape)


def plan_import(pd: RankRun, pt: RankRun, layer_map: Any) -> list[Copy]:
    """Every tensor copy of an import, or a ``WeightAssignError`` listing all that cannot be made surely."""
    if layer_map is None:
        from padiff.graph.from_graphs import baseline_pairs

        pairs: list[LayerPair] = baseline_pairs(skeleton_infos(pd), skeleton_infos(pt))
        params: list[ParamPair] = []
    else:
        rm = resolve_map(pd, pt, layer_map)
        pairs, params = (rm.pairs[1:] if rm.root_added else rm.pairs), rm.params
    auto = isinstance(layer_map, str) and layer_map == "auto"
    psk, tsk = Skeleton.of(pd.skeleton), Skeleton.of(pt.skeleton)
    copies: list[Copy] = []
    unsure: list[str] = []
    for pair in pairs:
        if pair.opaque and not (psk.subtree(pair.paddle_path) or tsk.subtree(pair.torch_path)):
            continue
        if not pair.opaque and not psk.tensors(pair.paddle_paths, False) and not tsk.tensors(pair.torch_paths, False):
            continue
        label = f"paddle {pair.label('paddle')} ({psk.cls(pair.paddle_path)}) <- torch {pair.label('torch')} " \
                f"({tsk.cls(pair.torch_path)})"
        if auto and pair.confidence < SURE:
            unsure.append(f"{label}: paired by 'auto' with confidence {pair.confidence:.2f} "
                          f"({'; '.join(pair.evidence[:2]) or 'no evidence'})")
            continue
        try:
            plan = plan_recorded(pair, psk, tsk, pairs)
        except WeightAssignError as e:
            raise WeightAssignError(f"cannot copy weights: {e}") from None
        for link in plan.links:
            ps = source(plan, "paddle", link.paddle_name, psk)
            tss = [source(plan, "torch", n, tsk) for n in link.torch_names]
            c = Copy(label, _ref(psk, ps.path, ps.item), tuple(_ref(tsk, t.path, t.item) for t in tss), link)
            why = _orientation_unsure(c, psk, tsk)
            if why:
                unsure.append(f"{label}: {why}")
            copies.append(c)
    for pp in params:
        label = f"paddle {pp.paddle_param} <- torch {pp.torch_param}"
        if auto and pp.confidence < SURE:
            unsure.append(f"{label}: paired by 'auto' with confidence {pp.confidence:.2f}")
            continue
        ps, ts, link = plan_param_recorded(pp, psk, tsk)
        c = Copy(label, _ref(psk, ps.path, ps.item), (_ref(tsk, ts.path, ts.item),), link)
        if pp.conversion == "auto":
            why = _orientation_unsure(c, psk, tsk)
            if why:
                unsure.append(f"{label}: {why}")
        copies.append(c)
    if unsure:
        raise WeightAssignError(f"import_weights copied nothing: {len(unsure)} copy(ies) cannot be made surely with "
                                "only one framework installed:\n  - " + "\n  - ".join(unsure) + f"\n{WHAT_TO_DO}")
    return copies


def describe(copies: list[Copy]) -> list[str]:
    """One line per pair: ``paddle <- torch: weight (transpose ...), bias (copy)``."""
    lines: dict[str, list[str]] = {}
    for c in copies:
        lines.setdefault(c.label, []).append(f"{c.paddle.name} ({c.link.conversion})")
    return [f"{label}: {', '.join(items)}" for label, items in lines.items()]


def _ref(sk: Skeleton, path: str, item: str) -> Ref:
    name = item.removeprefix("buffer:")
    shape = next((tuple(int(x) for x in s["shape"]) for s in sk.state(path) if s["name"] == name), ())
    return Ref(path, name, shape)


def _layout(sk: Skeleton, ref: Ref) -> str:
    """The layout the skeleton recorded for one tensor ("" when none is known)."""
    return next((str(s.get("layout", "")) for s in sk.state(ref.path) if s["name"] == ref.name), "")


def _kind(cls: str) -> str:
    """A layer class name without framework spelling (``Conv2D`` / ``Conv2d``, ``BatchNorm1D`` / ``BatchNorm1d``)."""
    return re.sub(r"[^a-z0-9]", "", cls.lower())


def _orientation_unsure(c: Copy, psk: Skeleton, tsk: Skeleton) -> str:
    """Why a square weight's orientation is not known ("" when it is, or nothing is square)."""
    shapes = [c.paddle.shape, *(t.shape for t in c.torch)]
    if not any(len(s) == 2 and s[0] == s[1] for s in shapes):
        return ""
    p_cls, t_cls = psk.cls(c.paddle.path), tsk.cls(c.torch[0].path)
    p_layout = _layout(psk, c.paddle)
    if p_layout and all(orientation(p_layout, _layout(tsk, t)) for t in c.torch):
        return ""  # the framework layers fix both layouts (recorded in the skeletons)
    if is_linear(p_cls) and is_linear(t_cls):
        return ""  # both Linear: paddle [in, out], torch [out, in]
    if all(_kind(tsk.cls(t.path)) == _kind(p_cls) for t in c.torch):
        return ""  # the same kind of layer keeps the same layout in both frameworks
    return (f"{show(c.paddle.path)}.{c.paddle.name} {list(c.paddle.shape)} is square: whether it is "
            f"{'+'.join(show(t.path) + '.' + t.name for t in c.torch)} copied or transposed depends on how "
            f"{p_cls} and {t_cls} use it, which neither a known layer convention nor the map says "
            f"(the shapes would take a {c.link.conversion})")
