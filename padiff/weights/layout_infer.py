"""Infer how torch tensors become paddle tensors from their shapes alone.

Used when a pair of layers has no special init: the tensors are linked one by one
(copy, Linear transpose, inferred transpose, inferred reshape) or, when the counts
differ, by splitting one packed torch tensor into several paddle tensors or
concatenating several torch tensors into one packed paddle tensor (e.g. a torch
``qkv`` Linear ``[3E, E]`` against paddle ``q``/``k``/``v`` Linears ``[E, E]`` each).

Every link says in its ``conversion`` text what was inferred, so reports can show it.
A conversion is only inferred when exactly one reading of the shapes fits; otherwise
the functions return ``None`` and the caller asks for a special init.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from padiff.compare.fused import assemble, describe, part_indices
from padiff.weights.layout_stack import split_unstack_links, stack_links, unstack_links
from padiff.weights.layout_types import Fn, Inferred, Tensor, is_linear
from padiff.weights.layouts import orientation

__all__ = ["NAME_ALIASES", "Fn", "Inferred", "Tensor", "infer_links", "is_linear", "link_one", "one_to_one",
           "raw_conversion", "shapes_of"]

# paddle name -> torch name for tensors whose names differ between the frameworks
NAME_ALIASES = {"_mean": "running_mean", "_variance": "running_var"}

def linear_layout(p: Tensor, t_owner: str, t_layout: str = "") -> bool:
    """True when 2-D ``p`` is transposed against its torch counterpart by layout (not by shape).

    Known layouts on both sides (:mod:`padiff.weights.layouts`) decide; a side of unknown
    layout falls back to the class names (a paddle Linear ``[in, out]`` against a torch
    Linear ``[out, in]``), which a square weight then confirms numerically.
    """
    if len(p.shape) != 2 or p.name.endswith("bias"):
        return False
    if p.layout or t_layout:
        return orientation(p.layout, t_layout) == "transpose"
    return is_linear(p.owner) and is_linear(t_owner)


def _unsure(p: Tensor, t: Tensor) -> bool:
    """A square 2-D weight whose orientation against ``t`` no convention gives (shape alone cannot tell)."""
    return (len(p.shape) == 2 and p.shape[0] == p.shape[1] and tuple(t.shape) == p.shape
            and orientation(p.layout, t.layout) is None)


def numel(shape: Sequence[int]) -> int:
    return int(np.prod(shape)) if shape else 1


def _prefix_products(shape: Sequence[int]) -> set[int]:
    out, acc = set(), 1
    for s in shape[:-1]:
        acc *= s
        out.add(acc)
    return out


def is_refinement(a: Sequence[int], b: Sequence[int]) -> bool:
    """True when ``a`` and ``b`` differ only by merging/splitting neighbouring axes (a C-order reshape)."""
    if numel(a) != numel(b):
        return False
    pa, pb = _prefix_products(a), _prefix_products(b)
    return pa <= pb or pb <= pa


def link_one(p: Tensor, t: Tensor) -> Inferred | None:
    """Link one paddle tensor to one torch tensor, or None when their shapes do not correspond."""
    ps, ts = p.shape, t.shape
    unsure = _unsure(p, t)
    if linear_layout(p, t.owner, t.layout) and ps == ts[::-1]:
        return Inferred(p.name, (t.name,), "transpose (Linear layout)", _transpose, unsure)
    if ps == ts:
        return Inferred(p.name, (t.name,), "copy", _copy, unsure)
    if (len(ps) == 2 and is_linear(p.owner) and not p.name.endswith("bias") and len(ts) > 2
            and all(s == 1 for s in ts[2:]) and tuple(ts[:2]) == ps[::-1]):
        # a paddle Linear against a torch 1x1 convolution [out, in, 1, ...]: squeeze, then Linear layout
        return Inferred(p.name, (t.name,), f"inferred squeeze {list(ts)} -> {list(ts[:2])} and transpose "
                        "(Linear layout)", _squeeze_transpose)
    if len(ps) == 2 and ps == ts[::-1]:
        return Inferred(p.name, (t.name,), f"inferred transpose {list(ts)} -> {list(ps)}", _transpose)
    if is_refinement(ps, ts):
        return Inferred(p.name, (t.name,), f"inferred reshape {list(ts)} -> {list(ps)}", _reshaper(ps))
    return None


def raw_conversion(p_shape: tuple[int, ...], t_shape: tuple[int, ...], t_owner: str) -> str | None:
    """How a raw paddle parameter takes a torch parameter's value: ``"copy"``, ``"transpose"`` or None.

    A raw paddle weight used by ``paddle.matmul(x, w)`` is ``[in, out]``; against a torch
    ``Linear`` weight ``[out, in]`` it is transposed, also when square (the layouts, not the
    shapes, decide). Otherwise equal shapes copy and reversed 2-D shapes transpose.
    """
    if len(p_shape) == 2 and p_shape == t_shape[::-1] and (p_shape != t_shape or is_linear(t_owner)):
        return "transpose"
    if p_shape == t_shape:
        return "copy"
    return None


def one_to_one(ps: Sequence[Tensor], ts: Sequence[Tensor]) -> list[Inferred] | None:
    """Pair equally many tensors one by one: by name (with aliases) when all names match, else by order."""
    if len(ps) != len(ts):
        return None
    t_by_name = {t.name: t for t in ts}
    if all(NAME_ALIASES.get(p.name, p.name) in t_by_name for p in ps):
        pairs = [(p, t_by_name[NAME_ALIASES.get(p.name, p.name)]) for p in ps]
    else:
        pairs = list(zip(ps, ts))
    out = []
    for p, t in pairs:
        link = link_one(p, t)
        if link is None:
            return None
        out.append(link)
    return out


def infer_links(ps: Sequence[Tensor], ts: Sequence[Tensor], groups: int = 1) -> list[Inferred] | None:
    """Links for all of ``ps`` from ``ts``: one to one first, then split/concat per rank group.

    Tensors are grouped by rank (weights with weights, biases with biases) and aligned in
    order within each group; a paddle tensor smaller than its torch counterpart starts a
    split, a larger one a concatenation. The result must be consistent: every paddle
    layer draws all its tensors from the same torch layers. ``groups > 1``: the pieces of a
    split or concatenation are interleaved in that many runs along the axis (a fused pair's
    ``groups``; :func:`padiff.compare.fused.part_indices`).
    """
    direct = one_to_one(ps, ts)
    if direct is not None or not ps or not ts:
        return direct
    stacked, p_rest, t_rest = stack_links(ps, ts)
    split, p_rest, t_rest = split_unstack_links(p_rest, t_rest)
    unstacked, p_rest, t_rest = unstack_links(p_rest, t_rest)
    stacked += split + unstacked
    if stacked:
        rest = infer_links(p_rest, t_rest, groups) if (p_rest or t_rest) else []
        if rest is None:
            return None
        order = {p.name: i for i, p in enumerate(ps)}
        return sorted(stacked + rest, key=lambda lk: order[lk.paddle_name])
    p_groups: dict[int, list[Tensor]] = {}
    t_groups: dict[int, list[Tensor]] = {}
    for p in ps:
        p_groups.setdefault(len(p.shape), []).append(p)
    for t in ts:
        t_groups.setdefault(len(t.shape), []).append(t)
    if set(p_groups) != set(t_groups):
        return None
    links: list[Inferred] = []
    for rank in sorted(p_groups):
        group = _align(p_groups[rank], t_groups[rank], groups)
        if group is None:
            return None
        links.extend(group)
    if not _consistent(links):
        return None
    order = {p.name: i for i, p in enumerate(ps)}
    return sorted(links, key=lambda lk: order[lk.paddle_name])


def _align(ps: list[Tensor], ts: list[Tensor], groups: int = 1) -> list[Inferred] | None:
    i = j = 0
    out: list[Inferred] = []
    while i < len(ps) and j < len(ts):
        p, t = ps[i], ts[j]
        if numel(p.shape) == numel(t.shape):
            link = link_one(p, t)
            if link is None:
                return None
            out.append(link)
            i, j = i + 1, j + 1
        elif numel(p.shape) < numel(t.shape):
            got = _split(ps, i, t, groups)
            if got is None:
                return None
            out.extend(got)
            i += len(got)
            j += 1
        else:
            got_one, k = _concat(p, ts, j, groups)
            if got_one is None:
                return None
            out.append(got_one)
            i, j = i + 1, j + k
    if i != len(ps) or j != len(ts):
        return None
    return out


def _torch_layout(p: Tensor, t_owner: str, t_layout: str = "") -> tuple[tuple[int, ...], bool]:
    """Shape of paddle tensor ``p`` as torch would hold it, and whether that needs a transpose."""
    if linear_layout(p, t_owner, t_layout):
        return p.shape[::-1], True
    return p.shape, False


def _fit_axis(pieces: list[tuple[int, ...]], whole: tuple[int, ...]) -> int | None:
    """The single axis along which ``pieces`` concatenate to ``whole``; None if none or several."""
    fits = []
    for ax in range(len(whole)):
        if all(len(s) == len(whole) and all(s[d] == whole[d] for d in range(len(whole)) if d != ax) for s in pieces) \
                and sum(s[ax] for s in pieces) == whole[ax]:
            fits.append(ax)
    return fits[0] if len(fits) == 1 else None


def _split(ps: list[Tensor], i: int, t: Tensor, groups: int = 1) -> list[Inferred] | None:
    """Paddle tensors ``ps[i:i+k]`` (k >= 2) cut from the one packed torch tensor ``t`` (interleaved in ``groups``)."""
    total = numel(t.shape)
    acc, k = 0, 0
    while i + k < len(ps) and acc < total:
        acc += numel(ps[i + k].shape)
        k += 1
    if acc != total or k < 2:
        return None
    pieces = ps[i:i + k]
    layouts = [_torch_layout(p, t.owner, t.layout) for p in pieces]
    if len({tr for _, tr in layouts}) != 1:
        return None
    ax = _fit_axis([s for s, _ in layouts], t.shape)
    if ax is None:
        return None
    index = part_indices([shape[ax] for shape, _ in layouts], groups)
    if index is None:
        return None
    out = []
    for p, (_, tr), idx in zip(pieces, layouts, index):
        how = f"inferred split: {describe(idx, groups)} of {t.name} {list(t.shape)} along axis {ax}"
        out.append(Inferred(p.name, (t.name,), how + (", transposed" if tr else ""), _slicer(ax, idx, tr)))
    return out


def _concat(p: Tensor, ts: list[Tensor], j: int, groups: int = 1) -> tuple[Inferred | None, int]:
    """One packed paddle tensor ``p`` made by concatenating torch tensors ``ts[j:j+k]`` (k >= 2, in ``groups``)."""
    total = numel(p.shape)
    acc, k = 0, 0
    while j + k < len(ts) and acc < total:
        acc += numel(ts[j + k].shape)
        k += 1
    if acc != total or k < 2:
        return None, 0
    parts = ts[j:j + k]
    owners = {(t.owner, t.layout) for t in parts}
    if len(owners) != 1:
        return None, 0
    shape, tr = _torch_layout(p, *next(iter(owners)))
    ax = _fit_axis([t.shape for t in parts], shape)
    if ax is None or part_indices([t.shape[ax] for t in parts], groups) is None:
        return None, 0
    names = tuple(t.name for t in parts)
    how = (f"inferred concat of {' + '.join(names)} along axis {ax}"
           + (f", interleaved in {groups} groups" if groups > 1 else "") + (", transposed" if tr else ""))
    return Inferred(p.name, names, how, _concatenator(ax, tr, groups)), k


def _consistent(links: list[Inferred]) -> bool:
    """Every paddle layer draws its tensors from one set of torch layers (weights and biases agree)."""
    sources: dict[str, set[str]] = {}
    for lk in links:
        owner = lk.paddle_name.rpartition(".")[0]
        src = {n.rpartition(".")[0] for n in lk.torch_names}
        sources.setdefault(owner, set())
        if sources[owner] and not (sources[owner] & src):
            return False
        sources[owner] |= src
    return True


def shapes_of(entries: Sequence[object], owners: Mapping[str, str],
              layouts: Mapping[str, str] | None = None) -> list[Tensor]:
    """``Tensor`` views of ``StateEntry``-like objects (``.name``, ``.tensor.shape``), with known layouts."""
    out = []
    for e in entries:
        name = e.name  # type: ignore[attr-defined]
        shape = tuple(int(s) for s in e.tensor.shape)  # type: ignore[attr-defined]
        out.append(Tensor(name, shape, owners.get(name, ""), (layouts or {}).get(name, "")))
    return out


# --- array functions (closures keep the plan picklable-free but cheap) ---------------------------------
def _copy(arrs: list[np.ndarray]) -> np.ndarray:
    return arrs[0]


#: rows of the source copied per step by :func:`transposed` (64 rows of a weight stay in cache and TLB)
TRANSPOSE_ROWS = 64


def transposed(a: np.ndarray) -> np.ndarray:
    """``a.T`` of a 2-D array as a new C-contiguous array, copied 64 source rows at a time.

    ``np.ascontiguousarray(a.T)`` walks the source down its columns, one element per cache line
    and, for rows of 4 KB or more, per memory page: 0.5–1 GB/s on a large weight. Copying a
    band of rows at a time keeps the lines and pages of the band in use until they are done
    (1.2–3.5x faster on the benchmark VM); every Linear weight and its gradient go through
    this when a torch run is compared with a paddle one.
    """
    if a.ndim != 2 or a.size < (1 << 16):
        return np.ascontiguousarray(a.T)
    rows, cols = a.shape
    out = np.empty((cols, rows), a.dtype)
    for i in range(0, rows, TRANSPOSE_ROWS):
        out[:, i:i + TRANSPOSE_ROWS] = a[i:i + TRANSPOSE_ROWS].T
    return out


def _transpose(arrs: list[np.ndarray]) -> np.ndarray:
    return transposed(arrs[0])


def _squeeze_transpose(arrs: list[np.ndarray]) -> np.ndarray:
    a = arrs[0]
    return transposed(a.reshape(a.shape[:2]))


def _reshaper(shape: tuple[int, ...]) -> Fn:
    def fn(arrs: list[np.ndarray]) -> np.ndarray:
        return arrs[0].reshape(shape)

    return fn


def _slicer(axis: int, index: np.ndarray, transpose: bool) -> Fn:
    def fn(arrs: list[np.ndarray]) -> np.ndarray:
        piece = np.take(arrs[0], index, axis=axis)
        return transposed(piece) if transpose else np.ascontiguousarray(piece)

    return fn


def _concatenator(axis: int, transpose: bool, groups: int = 1) -> Fn:
    def fn(arrs: list[np.ndarray]) -> np.ndarray:
        whole = assemble(arrs, axis, groups)
        return transposed(whole) if transpose else np.ascontiguousarray(whole)

    return fn
