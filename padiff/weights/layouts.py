"""Weight layouts the frameworks' own layers fix: one table, read by class identity.

A 2-D weight's orientation cannot be read from its shape when it is square. For the
frameworks' own layers it is a convention: ``paddle.nn.Linear`` computes ``x @ W`` with
``W`` ``[in, out]``; torch's ``nn.Linear`` and the torch-compatible
``paddle.compat.nn.Linear`` (what PaConvert writes for every ``torch.nn.Linear``) compute
``x @ W.T`` with ``W`` ``[out, in]``. Each entry names the class under the framework's root
module and the layout of each 2-D weight it holds; the adapters decide by identity (and the
class's own ``forward``) whether a layer is one (:meth:`padiff.adapters.base.Side.is_framework_layer`).
Entries without weights record that the class holds none (PaConvert's pooling and softmax
layers), so a port using them needs no conversion. Each entry has a test in
``tests/weights/test_layouts.py`` showing the layout on the framework itself.

A weight whose layout no entry gives (a raw ``create_parameter`` used with ``matmul``, a
user layer's own ``forward``) and whose shape is square is settled numerically
(:mod:`padiff.weights.orient`), never by its shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from padiff.adapters import Side

IN_OUT = "in_out"  # used as x @ W
OUT_IN = "out_in"  # used as x @ W.T
TABLE = "table"  # rows looked up by index (an embedding)


@dataclass(frozen=True)
class LayoutEntry:
    """One framework class and the layout of each 2-D weight it holds (none: it holds no weight)."""

    framework: str  # "paddle" or "torch"
    dotted: str  # the class under the framework's root module, "compat.nn.Linear"
    weights: dict[str, str] = field(default_factory=dict)


# recurrent cells: both frameworks compute x @ W_ih.T and h @ W_hh.T (gates stacked along the rows)
_CELL = {"weight_ih": OUT_IN, "weight_hh": OUT_IN}

LAYOUTS: tuple[LayoutEntry, ...] = (
    LayoutEntry("paddle", "nn.Linear", {"weight": IN_OUT}),
    LayoutEntry("paddle", "nn.Embedding", {"weight": TABLE}),
    LayoutEntry("paddle", "compat.nn.Linear", {"weight": OUT_IN}),
    LayoutEntry("paddle", "compat.nn.MultiheadAttention", {"in_proj_weight": OUT_IN}),  # packed [3E, E] as torch's
    LayoutEntry("paddle", "compat.nn.AvgPool1D"),
    LayoutEntry("paddle", "compat.nn.AvgPool2D"),
    LayoutEntry("paddle", "compat.nn.AvgPool3D"),
    LayoutEntry("paddle", "compat.nn.Softmax"),
    LayoutEntry("paddle", "compat.nn.Unfold"),
    LayoutEntry("paddle", "nn.SimpleRNNCell", _CELL),
    LayoutEntry("paddle", "nn.LSTMCell", _CELL),
    LayoutEntry("paddle", "nn.GRUCell", _CELL),
    LayoutEntry("torch", "nn.Linear", {"weight": OUT_IN}),
    LayoutEntry("torch", "nn.RNNCell", _CELL),
    LayoutEntry("torch", "nn.LSTMCell", _CELL),
    LayoutEntry("torch", "nn.GRUCell", _CELL),
    LayoutEntry("torch", "nn.Embedding", {"weight": TABLE}),
    LayoutEntry("torch", "nn.MultiheadAttention", {"in_proj_weight": OUT_IN}),
)


def entry_of(side: Side, layer: Any) -> LayoutEntry | None:
    """The table's entry for ``layer`` (a framework class with its own forward), or None."""
    for entry in LAYOUTS:
        if entry.framework == side.name and side.is_framework_layer(layer, entry.dotted):
            return entry
    return None


def layout_of(side: Side, layer: Any, name: str) -> str:
    """The layout of ``layer``'s own 2-D weight ``name`` by convention, or ``""`` when no entry gives it."""
    entry = entry_of(side, layer)
    return entry.weights.get(name, "") if entry is not None else ""


def orientation(p_layout: str, t_layout: str) -> str | None:
    """``"copy"`` or ``"transpose"`` from two known layouts; None when either is unknown or they do not relate."""
    if not p_layout or not t_layout:
        return None
    if p_layout == t_layout:
        return "copy"
    if {p_layout, t_layout} == {IN_OUT, OUT_IN}:
        return "transpose"
    return None


def owner_layouts(side: Side, top: Any, names: list[str]) -> dict[str, str]:
    """Layout by convention of each tensor name (relative to ``top``: ``q_proj.weight``); ``""`` when unknown."""
    layers = dict(side.named_layers(top))
    out = {}
    for name in names:
        owner, _, leaf = name.rpartition(".")
        layer = layers.get(owner, top)
        out[name] = layout_of(side, layer, leaf if owner in layers else name)
    return out
