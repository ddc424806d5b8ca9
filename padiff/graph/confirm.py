"""Numeric confirmation of ties the structure could not settle (placeholder, see report)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from padiff.graph.match import LayerInfo, MatchResult


def confirm_ties(layer: Any, module: Any, example_inp: Any, result: MatchResult,
                 p_layers: Mapping[str, LayerInfo], t_layers: Mapping[str, LayerInfo]) -> tuple[MatchResult, list[str]]:
    """Return ``result`` unchanged with a note naming the pairs left as ties."""
    tied = [f"{p.paddle_path} <-> {p.torch_path}" for p in result.pairs if p.uncertain]
    return result, [f"ties not settled numerically: {', '.join(tied)}"]
