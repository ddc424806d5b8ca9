"""What the graph matcher proposes: layer pairs, layers left unpaired, parameter pairs.

Plain records shared by the matcher (:mod:`padiff.graph.match`) and the passes that extend
its result (:mod:`padiff.graph.raw_params`, :mod:`padiff.graph.fused`), so each of those
imports the data, not the matcher. Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from padiff.graph.units import Unit


@dataclass(frozen=True)
class ProposedPair:
    """A proposed layer correspondence with its confidence and evidence."""

    paddle_path: str
    torch_path: str
    confidence: float
    evidence: tuple[str, ...]
    compare_output: bool = True
    uncertain: bool = False
    opaque: bool = False  # an enclosing block pair: compared at its top, weights converted as a whole
    paddle_parts: tuple[str, ...] = ()  # one layer against several (see padiff.graph.fused)
    torch_parts: tuple[str, ...] = ()
    groups: int = 1  # the parts interleave in this many runs (padiff.compare.fused.part_indices)


#: why a layer is left, as code reads it (the ``reason`` is for a person):
#: ``unmatched``: the graphs hold its dataflow and nothing on the other side matched it;
#: ``unseen``: the graphs hold no dataflow for it (inside control flow, not executed for this input);
#: ``loose``: taken out of a layer pair to be matched parameter by parameter, no verdict yet
LeftKind = Literal["unmatched", "unseen", "loose"]


@dataclass(frozen=True)
class Left:
    """A layer left unpaired, with the reason (for a person) and its kind (for code)."""

    side: str
    path: str
    reason: str
    kind: LeftKind = "unmatched"


@dataclass
class MatchResult:
    """Output of :func:`match_graphs`."""

    pairs: list[ProposedPair]
    unpaired: list[Left]
    unit_pairs: list[tuple[Unit, Unit]] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)  # raw_params.ParamProposal: parameter-level pairs
