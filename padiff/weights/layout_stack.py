"""Expert stacks: one 3-D tensor ``[E, ...]`` on one side against E numbered tensors on the other.

A paddle MoE may hold its experts as 3-D tensors against a torch ``ModuleList`` of expert MLPs
(:func:`stack_links`), and the other way round: transformers' MoE models keep
``gate_up_proj [E, 2 * I, H]`` and ``down_proj [E, H, I]`` on one experts module while
paddleformers keeps a ``LayerList`` of E MLPs (:func:`unstack_links`). Pieces are joined in the
order of the numbers in their paths (indices 0..E-1), never in definition order; several paddle
groups cut from one torch tensor (``gate_proj``/``up_proj`` per expert against ``gate_up_proj``) are
ordered by the fused tensor's name (:func:`split_unstack_links`). Used by
:func:`padiff.weights.layout_infer.infer_links`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from padiff.weights.layout_types import Fn, Inferred, Tensor, is_linear


def _numbered(name: str) -> tuple[str, int] | None:
    """``experts.3.fc1.weight`` -> (``experts.*.fc1.weight``, 3): the last numeric path component."""
    parts = name.split(".")
    for k in range(len(parts) - 2, -1, -1):
        if parts[k].isdigit():
            return ".".join([*parts[:k], "*", *parts[k + 1:]]), int(parts[k])
    return None


def _stack_fit(p: Tensor, t: Tensor) -> bool | None:
    """How one torch piece becomes one slice ``p[e]`` of a stacked paddle tensor: transposed, copied, or None."""
    piece = p.shape[1:]
    if len(piece) == 2 and is_linear(t.owner) and not p.name.endswith("bias") and piece == t.shape[::-1]:
        return True  # paddle keeps expert weights [in, out] (matmul layout), torch Linear [out, in]
    if piece == t.shape:
        return False
    return None


def stack_links(ps: Sequence[Tensor], ts: Sequence[Tensor]) -> tuple[list[Inferred], list[Tensor], list[Tensor]]:
    """Paddle tensors ``[E, ...]`` stacked from the E torch tensors of one numbered path pattern.

    A 3-D expert weight ``[E, in, out]`` against a list of E expert MLPs: the torch tensors
    ``experts.0.fc1.weight`` ... ``experts.{E-1}.fc1.weight`` are stacked in the order of
    their numbers (indices 0..E-1, never definition order), each transposed when it is a
    torch ``Linear`` weight. Returns the links found and the tensors left on each side.
    """
    groups: dict[str, list[tuple[int, Tensor]]] = {}
    for t in ts:
        hit = _numbered(t.name)
        if hit is not None:
            groups.setdefault(hit[0], []).append((hit[1], t))
    usable = {key: [t for _, t in sorted(members, key=lambda m: m[0])] for key, members in groups.items()
              if sorted(i for i, _ in members) == list(range(len(members))) and len(members) >= 2}
    links: list[Inferred] = []
    used: set[str] = set()
    p_rest: list[Tensor] = []
    for p in ps:
        chosen = None
        if len(p.shape) >= 2:
            for key, members in usable.items():
                if key in used or len(members) != p.shape[0]:
                    continue
                fits = {_stack_fit(p, t) for t in members}
                if len(fits) == 1 and None not in fits:
                    chosen = (key, members, fits.pop())
                    break
        if chosen is None:
            p_rest.append(p)
            continue
        key, members, tr = chosen
        used.add(key)
        how = f"inferred stack of {len(members)} {key} (ordered by index) along axis 0" + (", each transposed"
                                                                                           if tr else "")
        links.append(Inferred(p.name, tuple(t.name for t in members), how, _stacker(bool(tr))))
    taken = {n for lk in links for n in lk.torch_names}
    return links, p_rest, [t for t in ts if t.name not in taken]


def _stacker(transpose: bool) -> Fn:
    def fn(arrs: list[np.ndarray]) -> np.ndarray:
        return np.ascontiguousarray(np.stack([a.T if transpose else a for a in arrs], axis=0))

    return fn


def _numbered_groups(tensors: Sequence[Tensor]) -> dict[str, list[Tensor]]:
    """Tensors of one numbered path pattern with indices exactly 0..E-1 (E >= 2), in index order."""
    groups: dict[str, list[tuple[int, Tensor]]] = {}
    for t in tensors:
        hit = _numbered(t.name)
        if hit is not None:
            groups.setdefault(hit[0], []).append((hit[1], t))
    return {key: [t for _, t in sorted(members, key=lambda m: m[0])] for key, members in groups.items()
            if sorted(i for i, _ in members) == list(range(len(members))) and len(members) >= 2}


def _unstack_fit(p: Tensor, t: Tensor) -> bool | None:
    """How slice ``t[e]`` of a stacked torch tensor becomes paddle piece ``p``: transposed, copied, or None.

    A paddle ``Linear`` weight is ``[in, out]``; a torch expert tensor used by ``F.linear`` holds
    ``[out, in]`` per expert. The shapes decide; a square piece is left to :func:`unstack_links`.
    """
    piece = t.shape[1:]
    if len(piece) == 2 and piece == p.shape[::-1] and piece != p.shape:
        return True
    if piece == p.shape and (len(piece) != 2 or piece[0] != piece[1]):
        return False
    return None


def unstack_links(ps: Sequence[Tensor], ts: Sequence[Tensor]) -> tuple[list[Inferred], list[Tensor], list[Tensor]]:
    """E numbered paddle tensors (``0.up_gate_proj.weight`` ...) each cut from one stacked torch tensor ``[E, ...]``.

    A torch tensor is taken for a numbered paddle group when its first dim is E and exactly
    one torch tensor fits the group's pieces (transposed or as they are). A square piece has
    no layout of its own: it follows the other stacked tensors of the same torch layer (one
    convention per layer), and is left alone when there is none. Returns the links found and
    the tensors left on each side.
    """
    links: list[Inferred] = []
    taken: set[str] = set()
    square: list[tuple[list[Tensor], Tensor]] = []
    decided: dict[str, bool] = {}  # torch owner prefix -> transposed
    for members in _numbered_groups(ps).values():
        fits = [(t, {_unstack_fit(p, t) for p in members}) for t in ts
                if t.name not in taken and len(t.shape) >= 2 and t.shape[0] == len(members)]
        exact = [(t, f.pop()) for t, f in fits if len(f) == 1 and None not in f]
        if len(exact) == 1:
            t, tr = exact[0]
            taken.add(t.name)
            decided[t.name.rpartition(".")[0]] = tr
            links += _unstacked(members, t, tr)
            continue
        shaped = [t for t, _ in fits if all(len(p.shape) == 2 and tuple(t.shape[1:]) == p.shape for p in members)]
        if len(shaped) == 1 and not exact:
            square.append((members, shaped[0]))
    for members, t in square:
        owner = t.name.rpartition(".")[0]
        if owner in decided and t.name not in taken:
            taken.add(t.name)
            links += _unstacked(members, t, decided[owner])
    done = {lk.paddle_name for lk in links}
    return links, [p for p in ps if p.name not in done], [t for t in ts if t.name not in taken]


def _unstacked(members: list[Tensor], t: Tensor, transpose: bool) -> list[Inferred]:
    how = f"inferred slice [e] of {t.name} {list(t.shape)} (expert e by index)" + (", transposed" if transpose else "")
    return [Inferred(p.name, (t.name,), how.replace("[e]", f"[{e}]", 1), _picker(e, transpose))
            for e, p in enumerate(members)]


def _picker(e: int, transpose: bool) -> Fn:
    def fn(arrs: list[np.ndarray]) -> np.ndarray:
        piece = arrs[0][e]
        return np.ascontiguousarray(piece.T if transpose else piece)

    return fn


def _token_order(keys: Sequence[str], fused_name: str) -> list[int] | None:
    """The order the numbered groups ``keys`` take inside ``fused_name``, read from its name, or None.

    ``*.gate_proj.weight`` and ``*.up_proj.weight`` against ``gate_up_proj``: the tokens only one
    group's name has (``gate``, ``up``) are looked up in the fused tensor's name, and the groups
    are ordered by where they appear. None when any group's own tokens are not there, or two
    groups land on the same position: the names do not say, and nothing is guessed.
    """
    tokens = [set(_name_of(k).split("_")) for k in keys]
    shared = set.intersection(*tokens)
    last = fused_name.rsplit(".", 1)[-1]
    where = []
    for own in tokens:
        found = [last.find(tok) for tok in own - shared if tok and last.find(tok) >= 0]
        if not found:
            return None
        where.append(min(found))
    if len(set(where)) != len(where):
        return None
    return sorted(range(len(keys)), key=lambda i: where[i])


def _split_fit(pieces: Sequence[tuple[int, ...]], whole: tuple[int, ...],
               transpose: bool) -> int | None:
    """The axis of one torch expert slice ``whole`` that the paddle ``pieces`` (in order) split, or None."""
    shapes = [s[::-1] if transpose else s for s in pieces]
    if any(len(s) != 2 for s in shapes) or len(whole) != 2:
        return None
    for axis in (0, 1):
        other = 1 - axis
        if all(s[other] == whole[other] for s in shapes) and sum(s[axis] for s in shapes) == whole[axis]:
            return axis
    return None


def split_unstack_links(ps: Sequence[Tensor],
                        ts: Sequence[Tensor]) -> tuple[list[Inferred], list[Tensor], list[Tensor]]:
    """Several numbered paddle groups cut from one stacked torch tensor, expert by expert.

    paddleformers' DeepSeek experts hold ``gate_proj`` and ``up_proj`` per expert (``[H, I]``
    each), transformers one ``gate_up_proj [E, 2I, H]`` with ``[gate | up]`` per expert: each
    paddle piece is slice ``[e]`` of the torch tensor, cut along one axis and transposed. The
    whole assignment must be unique: every numbered paddle group of one expert list and every
    torch tensor with ``E`` leading entries covered once, one layout (transposed or not) for all,
    at least one torch tensor split. The order of the pieces within a split comes from the
    names (``gate_up_proj``: gate first), never from definition order; when the names do not
    tell, nothing is linked. Returns the links found and the tensors left on each side.
    """
    groups = _numbered_groups(ps)
    sizes = {len(m) for m in groups.values()}
    if len(sizes) != 1:
        return [], list(ps), list(ts)
    n_exp = sizes.pop()
    stacked = [t for t in ts if len(t.shape) == 3 and t.shape[0] == n_exp]
    if len(groups) <= len(stacked):  # no torch tensor can hold two groups
        return [], list(ps), list(ts)
    keys = sorted(groups)
    shape = {k: groups[k][0].shape for k in keys}
    if any(m.shape != shape[k] for k in keys for m in groups[k]):
        return [], list(ps), list(ts)
    solutions: list[tuple[bool, list[tuple[Tensor, tuple[str, ...], int]]]] = []
    for transpose in (True, False):
        for cover in _covers(stacked, keys, shape, transpose):
            solutions.append((transpose, cover))
    if len(solutions) != 1 or all(len(ks) < 2 for _, ks, _ in solutions[0][1]):
        return [], list(ps), list(ts)
    transpose, cover = solutions[0]
    links: list[Inferred] = []
    for t, ks, axis in cover:
        order = [0] if len(ks) == 1 else _token_order(ks, t.name)
        if order is None:
            return [], list(ps), list(ts)
        ordered = [ks[i] for i in order]
        start = 0
        for k in ordered:
            piece = shape[k][::-1] if transpose else shape[k]
            stop = start + piece[axis]
            links += _cut(groups[k], t, axis, start, stop, transpose, [_name_of(x) for x in ordered])
            start = stop
    done = {lk.paddle_name for lk in links}
    taken = {t.name for t, _, _ in cover}
    return links, [p for p in ps if p.name not in done], [t for t in ts if t.name not in taken]


def _name_of(key: str) -> str:
    """The piece's layer name in a numbered group key (``experts.*.gate_proj.weight`` -> ``gate_proj``)."""
    return key.rpartition("*.")[2].rsplit(".", 1)[0]


def _covers(stacked: Sequence[Tensor], keys: Sequence[str], shape: dict[str, tuple[int, ...]],
            transpose: bool) -> list[list[tuple[Tensor, tuple[str, ...], int]]]:
    """Every way to give each key to exactly one torch tensor so that each tensor is exactly covered."""
    out: list[list[tuple[Tensor, tuple[str, ...], int]]] = []

    def walk(i: int, left: frozenset[str], acc: list[tuple[Tensor, tuple[str, ...], int]]) -> None:
        if len(out) > 1:
            return  # more than one already: ambiguous, the caller gives up
        if i == len(stacked):
            if not left:
                out.append(list(acc))
            return
        t = stacked[i]
        for r in range(1, len(left) + 1):
            for subset in itertools.combinations(sorted(left), r):
                axis = _split_fit([shape[k] for k in subset], t.shape[1:], transpose)
                if axis is not None:
                    walk(i + 1, left - set(subset), [*acc, (t, subset, axis)])

    walk(0, frozenset(keys), [])
    return out


def _cut(members: list[Tensor], t: Tensor, axis: int, start: int, stop: int, transpose: bool,
         order: list[str]) -> list[Inferred]:
    span = f"{start}:{stop}" if axis == 0 else f":, {start}:{stop}"
    how = (f"inferred slice [e][{span}] of {t.name} {list(t.shape)} (expert e by index; pieces in the order "
           f"the name gives: {', '.join(order)})" + (", transposed" if transpose else ""))
    return [Inferred(p.name, (t.name,), how.replace("[e]", f"[{e}]", 1), _slicer(e, axis, start, stop, transpose))
            for e, p in enumerate(members)]


def _slicer(e: int, axis: int, start: int, stop: int, transpose: bool) -> Fn:
    def fn(arrs: list[np.ndarray]) -> np.ndarray:
        piece = arrs[0][e][start:stop] if axis == 0 else arrs[0][e][:, start:stop]
        return np.ascontiguousarray(piece.T if transpose else piece)

    return fn
