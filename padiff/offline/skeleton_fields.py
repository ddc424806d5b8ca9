"""What a recorded skeleton keeps of a layer beyond its tensors' names and shapes (``Recorder`` and
``export_weights`` both write it): the facts only the framework side knows, which the plans and the
``"auto"`` map made from skeletons need to do what the live path does."""

from __future__ import annotations

from typing import Any


def special_field(side: Any, layer: Any) -> dict[str, list[list[str]]]:
    """``{"special": [[paddle_name, torch_name], ...]}`` when a registered special init pairs ``layer`` as a whole
    (``LayerMap.auto``'s kinds: MultiHeadAttention, LSTM ...), else ``{}``: an ``"auto"`` map of recorded runs adds
    the same special-init pairs the live ``"auto"`` adds, which the class name alone cannot tell."""
    from padiff.weights.special_init import special_kinds

    kinds = special_kinds(layer, 0 if side.name == "paddle" else 1)
    return {"special": kinds} if kinds else {}


def layout_field(side: Any, layer: Any, name: str) -> dict[str, str]:
    """``{"layout": ...}`` when the framework's own layer fixes how its weight ``name`` is used
    (:mod:`padiff.weights.layouts`: ``nn.Linear``'s ``[in, out]`` / ``[out, in]``, torch ``MultiheadAttention``'s
    packed ``in_proj_weight``), else ``{}``. Recorded where the model is, so the plans made from a skeleton
    orient a square weight as the live plans do, instead of not knowing."""
    from padiff.weights.layouts import layout_of

    layout = layout_of(side, layer, name)
    return {"layout": layout} if layout else {}
