"""Weight plans from recorded skeletons: the live engine's conversions, with no model at hand.

A run folder (and a weights file) records every layer's class and its own tensors' names and
shapes. That is what :mod:`padiff.weights.layout_infer` works on, so the plan of a pair is
made here by the same inference the live weight copy and the live grad/weight comparison use
(:func:`padiff.weights.pair_plan.plan_pair` / ``plan_fused`` / ``plan_param``): one tensor to
one (copy, Linear transpose, transpose, reshape), splits and concatenations of fused pairs in
the pair's part order and groups, expert stacks, and parameter pairs by the map's conversion.
Tensors of a split side are named by their layer path (``attn.k_proj.weight``) as in the live
plans. What needs the layer objects (a registered special init) cannot be planned here and is
refused with the pair named.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from padiff.errors import WeightAssignError
from padiff.layer_map import LayerPair, ParamPair
from padiff.names import show
from padiff.weights.layout_infer import Tensor, infer_links, raw_conversion
from padiff.weights.opaque_plan import inner_pairs
from padiff.weights.plan import Link, PairPlan


@dataclass(frozen=True)
class Skeleton:
    """One side's recorded layers: ``{path: (class, [state dicts])}`` (see :mod:`padiff.offline.fmt`)."""

    layers: Mapping[str, tuple[str, list[dict[str, Any]]]]

    @classmethod
    def of(cls, skeleton: Mapping[str, Any]) -> Skeleton:
        """From a skeleton's JSON data."""
        return cls({lay["path"]: (str(lay.get("cls", "")), list(lay.get("state", [])))
                    for lay in skeleton.get("layers", [])})

    def cls(self, path: str) -> str:
        """The class name of the layer at ``path`` ("" when there is none)."""
        return self.layers.get(path, ("", []))[0]

    def state(self, path: str) -> list[dict[str, Any]]:
        """The tensors the layer at ``path`` owns itself."""
        return self.layers.get(path, ("", []))[1]

    def tensors(self, paths: tuple[str, ...], named_by_path: bool) -> list[Tensor]:
        """``Tensor`` views of the layers' own tensors, in the order of ``paths`` (a split side's part order)."""
        out = []
        for path in paths:
            cls = self.cls(path)
            for s in self.state(path):
                name = f"{path}.{s['name']}" if named_by_path and path else str(s["name"])
                out.append(Tensor(name, tuple(int(x) for x in s["shape"]), cls, str(s.get("layout", ""))))
        return out

    def subtree(self, top: str) -> list[Tensor]:
        """Every tensor owned inside the layer at ``top``, named relative to it (as the live opaque plans name them),
        each with its owner's class."""
        out = []
        prefix = top + "." if top else ""
        for path, (cls, state) in self.layers.items():
            if path == top or top == "" or path.startswith(prefix):
                rel = path[len(prefix):] if prefix else path
                out += [Tensor(f"{rel}.{s['name']}" if rel else str(s["name"]), tuple(int(x) for x in s["shape"]), cls,
                               str(s.get("layout", ""))) for s in state]
        return out

    def owner(self, top: str, name: str) -> tuple[str, str]:
        """The layer path and own name of tensor ``name`` given relative to ``top`` (the deepest layer holding it)."""
        full = f"{top}.{name}" if top else name
        best = max((p for p in self.layers if p and full.startswith(p + ".")
                    and any(s["name"] == full[len(p) + 1:] for s in self.state(p))), key=len, default=None)
        if best is None:
            return top, name
        return best, full[len(best) + 1:]

    def item(self, path: str, name: str) -> str:
        """The item a run recorded tensor ``name`` of layer ``path`` under (``buffer:`` for buffers)."""
        for s in self.state(path):
            if s["name"] == name:
                return ("buffer:" if s.get("buffer") and not s.get("trainable") else "") + name
        return name


@dataclass(frozen=True)
class Source:
    """Where one side's tensor of a plan was recorded: its layer path and item."""

    path: str
    item: str


def plan_recorded(pair: LayerPair, pd: Skeleton, pt: Skeleton, pairs: Sequence[LayerPair] = ()) -> PairPlan:
    """The plan of one layer pair from the two skeletons (paddle names, torch names as the live plans give them).

    An opaque pair is planned over its whole subtrees as live (:func:`plan_recorded_opaque`; ``pairs``: the
    map's pairs, those inside it place their tensors). Raises :class:`WeightAssignError` naming the pair and
    the shapes when no conversion fits.
    """
    if pair.opaque and not (pair.paddle_parts or pair.torch_parts):
        return plan_recorded_opaque(pair, pd, pt, pairs)
    p_paths, t_paths = pair.paddle_paths, pair.torch_paths
    p_t, t_t = pd.tensors(p_paths, len(p_paths) > 1), pt.tensors(t_paths, len(t_paths) > 1)
    inferred = infer_links(p_t, t_t, pair.groups) if (p_t or t_t) else []
    p_cls, t_cls = pd.cls(pair.paddle_path), pt.cls(pair.torch_path)
    if inferred is None:
        raise WeightAssignError(
            f"cannot pair the weights of paddle {pair.label('paddle')} ({p_cls}) and torch {pair.label('torch')} "
            f"({t_cls}): paddle has {_fmt(p_t)}; torch has {_fmt(t_t)}: no one-to-one pairing, transpose, reshape, "
            "split or concatenation gives the paddle shapes unambiguously. Check the pair in the layer map.")
    return PairPlan(pair.paddle_path, pair.torch_path, p_cls, t_cls,
                    [Link(x.paddle_name, x.torch_names, x.conversion, x.fn) for x in inferred],
                    paddle_parts=tuple(pair.paddle_parts), torch_parts=tuple(pair.torch_parts))


def plan_recorded_opaque(pair: LayerPair, pd: Skeleton, pt: Skeleton, pairs: Sequence[LayerPair]) -> PairPlan:
    """An opaque pair's plan as :func:`padiff.weights.opaque_plan.plan_opaque` makes it live: each pair of the map
    inside both tops planned alone (its names made relative to the tops), the subtrees' other tensors from their
    shapes. Tensor names are relative to the tops (``0.up_gate_proj.weight``); :func:`source` finds their layers."""
    p_top, t_top = pair.paddle_path, pair.torch_path
    links: list[Link] = []
    held_p: set[str] = set()
    held_t: set[str] = set()
    for pr in inner_pairs(p_top, t_top, pairs):
        p_paths, t_paths = pr.paddle_paths, pr.torch_paths
        if not pd.tensors(p_paths, False) and not pt.tensors(t_paths, False):
            continue
        plan = plan_recorded(pr, pd, pt)
        p_name, t_name = _relative_names(p_paths, p_top), _relative_names(t_paths, t_top)
        links += [Link(p_name(lk.paddle_name), tuple(t_name(n) for n in lk.torch_names), lk.conversion, lk.fn)
                  for lk in plan.links]
        held_p |= {p_name(t.name) for t in pd.tensors(p_paths, len(p_paths) > 1)}
        held_t |= {t_name(t.name) for t in pt.tensors(t_paths, len(t_paths) > 1)}
    p_rest = [t for t in pd.subtree(p_top) if t.name not in held_p]
    t_rest = [t for t in pt.subtree(t_top) if t.name not in held_t]
    if p_rest or t_rest:
        inferred = infer_links(p_rest, t_rest)
        if inferred is None:
            raise WeightAssignError(
                f"cannot pair the weights of paddle {show(p_top)} ({pd.cls(p_top)}) and torch {show(t_top)} "
                f"({pt.cls(t_top)}), compared as a whole: paddle has {_fmt(p_rest)}; torch has {_fmt(t_rest)} (the "
                "tensors no pair inside holds): no one-to-one pairing, transpose, reshape, split, concatenation or "
                "stack gives the paddle shapes unambiguously. Pair the layers inside in the layer map.")
        links += [Link(x.paddle_name, x.torch_names, x.conversion, x.fn) for x in inferred]
    return PairPlan(p_top, t_top, pd.cls(p_top), pt.cls(t_top), links)


def _relative_names(paths: Sequence[str], top: str) -> Callable[[str], str]:
    """A pair's tensor names (own names, or ``layer.path.name`` for several parts) made relative to ``top``."""
    def rename(name: str) -> str:
        full = name if len(paths) > 1 else (f"{paths[0]}.{name}" if paths[0] else name)
        return full[len(top) + 1:] if top else full
    return rename


def source(pair: LayerPair | PairPlan, side: str, name: str, sk: Skeleton) -> Source:
    """The recorded layer and item of a plan's tensor ``name`` on ``side`` (``"paddle"`` / ``"torch"``)."""
    parts = pair.paddle_parts if side == "paddle" else pair.torch_parts
    path = pair.paddle_path if side == "paddle" else pair.torch_path
    if parts:
        owner = max((p for p in parts if name.startswith(p + ".")), key=len, default=path)
        if name.startswith(owner + "."):
            name = name[len(owner) + 1:]
        path = owner
    elif "." in name:  # an opaque pair's tensor, named relative to its top
        path, name = sk.owner(path, name)
    return Source(path, sk.item(path, name))


def plan_param_recorded(pp: ParamPair, pd: Skeleton, pt: Skeleton) -> tuple[Source, Source, Link]:
    """A parameter pair's paddle and torch sources and its one link (copy or transpose), as ``plan_param`` makes it."""
    (pl, pn), (tl, tn) = pp.owner("paddle"), pp.owner("torch")
    p_s = next((s for s in pd.state(pl) if s["name"] == pn), None)
    t_s = next((s for s in pt.state(tl) if s["name"] == tn), None)
    if p_s is None or t_s is None:
        raise WeightAssignError(f"parameter pair {pp.paddle_param!r} <-> {pp.torch_param!r}: the "
                                f"{'paddle' if p_s is None else 'torch'} run has no such parameter; fix the map.")
    p_shape, t_shape = tuple(p_s["shape"]), tuple(t_s["shape"])
    conv = pp.conversion if pp.conversion != "auto" else raw_conversion(p_shape, t_shape, pt.cls(tl))
    fits = {"copy": p_shape == t_shape, "transpose": len(p_shape) == 2 and p_shape == t_shape[::-1]}
    if conv is None or not fits.get(conv, False):
        raise WeightAssignError(f"cannot pair parameters: paddle {pp.paddle_param} {list(p_shape)} cannot take torch "
                                f"{pp.torch_param} {list(t_shape)} by {conv or 'a copy or a transpose'}. Fix the "
                                "parameter pair in the map (or its conversion: copy or transpose).")
    fn = _transpose if conv == "transpose" else _copy
    link = Link(pn, (tn,), "transpose (parameter pair)" if conv == "transpose" else "copy", fn)
    return Source(pl, pd.item(pl, pn)), Source(tl, pt.item(tl, tn)), link


def _copy(arrs: list[np.ndarray]) -> np.ndarray:
    return arrs[0]


def _transpose(arrs: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(arrs[0].T)


def _fmt(ts: list[Tensor]) -> str:
    return ", ".join(f"{t.name}{list(t.shape)}" for t in ts) or "(no tensors)"


def pair_label(pair: LayerPair, side: str) -> str:
    """How a record names one side of a pair's parameters: the path, or ``q+k+v`` for a split side (as live)."""
    if pair.paddle_parts or pair.torch_parts:
        return pair.label("paddle" if side == "paddle" else "torch")
    return pair.paddle_path if side == "paddle" else pair.torch_path


__all__ = ["Skeleton", "Source", "pair_label", "plan_param_recorded", "plan_recorded", "source"]
