"""Tensors one side holds and the other leaves out, at their identity value: a convention, not a mismatch.

``torch.nn.LayerNorm(elementwise_affine=False)`` holds no scale and no bias; the paddle
port's ``LayerNorm`` with its defaults holds a scale of ones and a bias of zeros, which
compute the same. A pair of layers whose tensors differ only by such tensors is planned
without them: the copy leaves them alone and the plan carries a note saying so (their
gradients have no counterpart and are not compared). A left-out tensor that is *not* at
its identity value makes the layers compute differently: that is refused, naming it.

The identity of a tensor follows the frameworks' naming of a layer's own tensors: a
``bias`` adds (identity zero), every other tensor scales (identity one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from padiff.adapters import PADDLE, TORCH, Side, StateEntry
from padiff.errors import WeightAssignError
from padiff.names import show
from padiff.weights.layout_infer import NAME_ALIASES
from padiff.weights.plan import set_error_fields


@dataclass
class Extras:
    """Tensors of one side with no counterpart, all at their identity value, and the notes saying so."""

    paddle_names: set[str] = field(default_factory=set)
    torch_names: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def identity_value(name: str) -> float:
    """0 for a bias (it adds), 1 for any other tensor (it scales)."""
    return 0.0 if "bias" in name.rpartition(".")[2] else 1.0


def _is_identity(side: Side, e: StateEntry) -> bool:
    arr = side.to_numpy(e.tensor)
    return bool(arr.size) and bool(np.all(arr == identity_value(e.name)))


def identity_extras(p_path: str, p_layer: Any, p_state: list[StateEntry], t_path: str, t_layer: Any,
                    t_state: list[StateEntry]) -> Extras | None:
    """The tensors only one side holds, by name, when all sit at their identity value; None if there are none.

    Only one side may hold extra tensors (the other's all have a same-named counterpart);
    otherwise the names say nothing and None is returned. Raises :class:`WeightAssignError`
    naming the tensor when an extra one is not at its identity value.
    """
    p_names = {NAME_ALIASES.get(e.name, e.name) for e in p_state}
    t_names = {e.name for e in t_state}
    p_extra = [e for e in p_state if NAME_ALIASES.get(e.name, e.name) not in t_names]
    t_extra = [e for e in t_state if e.name not in p_names]
    if bool(p_extra) == bool(t_extra):  # none, or both sides hold tensors the other lacks: names say nothing
        return None
    side, extra, other, other_path, path = ((PADDLE, p_extra, "torch", t_path, p_path) if p_extra
                                            else (TORCH, t_extra, "paddle", p_path, t_path))
    layer, other_layer = (p_layer, t_layer) if p_extra else (t_layer, p_layer)
    out = Extras()
    for e in extra:
        full = f"{side.name} {show(path)}.{e.name}"
        ident = identity_value(e.name)
        if not _is_identity(side, e):
            reason = (f"{full} ({type(layer).__name__}) has no counterpart in {other} {show(other_path)} "
                      f"({type(other_layer).__name__}), and it is not at its identity value "
                      f"({ident:g} everywhere), so the two layers compute differently")
            err = WeightAssignError(f"cannot pair the weights: {reason}. Set it to {ident:g} (or create the layer "
                                    f"without it), or give the {other} layer that parameter.")
            set_error_fields(err, p_path, type(p_layer).__name__, p_state, t_path, type(t_layer).__name__,
                             t_state, reason)
            raise err
        (out.paddle_names if p_extra else out.torch_names).add(e.name)
        out.notes.append(f"{full} has no {other} counterpart and is {ident:g} everywhere (its identity): "
                         "a convention, not a difference; it is not copied, and its gradient and value are not "
                         "compared")
    return out


def tensor_free_twins(side: Side, root: Any, other: Side, other_root: Any) -> list[str]:
    """Paths of ``side``'s layers owning tensors whose twin on the other side holds none.

    The twin is the other model's layer at the same path, of the same kind (class names
    equal but for case: ``BatchNorm2D``/``BatchNorm2d``), with no tensor in its subtree: an
    affine-free norm against one with a scale and a bias. Their tensors must sit at their
    identity value for the two to compute alike (:func:`identity_extras` checks it).
    """
    owned = side.owned_state(root)
    other_layers = dict(other.named_layers(other_root))
    out = []
    for path, layer in side.named_layers(root):
        twin = other_layers.get(path)
        if (path and path in owned and twin is not None and not _holds_any(other, twin)
                and type(twin).__name__.lower() == type(layer).__name__.lower()):
            out.append(path)
    return out


def _holds_any(side: Side, layer: Any) -> bool:
    """True when ``layer`` or a layer under it holds a tensor, its own or shared (a tied weight counts)."""
    return any(side.raw_state(sub) for _, sub in side.named_layers(layer))


def identity_twins(side: Side, root: Any, other: Side, other_root: Any) -> set[str]:
    """:func:`tensor_free_twins` whose tensors all sit at their identity value: layers to pair as parameter-free.

    The live engine pairs such a layer like any layer without parameters (with its twin), and
    its weight plan notes that its tensors are not compared.
    """
    owned = side.owned_state(root)
    return {path for path in tensor_free_twins(side, root, other, other_root)
            if all(_is_identity(side, e) for e in owned[path])}
