"""The layer pairs a run saw, and what becomes of the calls that found no partner.

:class:`PairsSeen` keeps each pair once, in the order first seen: parameter gradients
and values are compared per pair, and :class:`~padiff.runtime.engine.run.RunResult`
hands them to the caller (the report's ``mapping``). :func:`check_pairing` reports the
unpaired calls after the first pass, and refuses a default (call-order) pairing that
left a layer holding parameters without partner.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from padiff.errors import MappingError
from padiff.report.records import SkippedLayer
from padiff.runtime.engine.sink import RecordSink
from padiff.runtime.pairing import Event, OnlinePairer, Role


@dataclass(frozen=True)
class SeenPair:
    """A pair of layers (or of a fused layer and its parts) whose calls were paired in the run."""

    paddle: Role
    torch: Role
    index: int  # 0 for the first pair seen, 1 for the next...


class PairsSeen:
    """Every pair seen, keyed by its paths; a fused pair counts once, under its map entry's paths."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], SeenPair] = {}

    def note(self, pev: Event, tev: Event) -> None:
        """The torch call ``tev`` was paired with the paddle call ``pev``."""
        pair = tev.role.pair
        key = (pair.paddle_path, pair.torch_path) if pair is not None and pair.split_side \
            else (pev.role.path, tev.role.path)
        if key not in self._pairs:
            self._pairs[key] = SeenPair(pev.role, tev.role, len(self._pairs))

    def items(self) -> Iterator[tuple[tuple[str, str], SeenPair]]:
        """``((paddle_path, torch_path), pair)`` in the order first seen."""
        return iter(list(self._pairs.items()))

    def pairs(self) -> tuple[SeenPair, ...]:
        """The pairs in the order first seen."""
        return tuple(self._pairs.values())


def check_pairing(pairer: OnlinePairer, p_events: list[Event], t_events: list[Event], sink: RecordSink,
                  strict: bool) -> None:
    """Report the calls without partner as skipped layers, and the stateful ones as a warning.

    ``strict`` (default call-order pairing): a layer holding parameters without partner means
    the models could not be paired, which raises :class:`MappingError` naming them.
    """
    for side, events in (("paddle", pairer.unmatched_paddle), ("torch", pairer.unmatched_torch)):
        seen = set()
        for ev in events:
            if ev.role.path in seen:
                continue
            seen.add(ev.role.path)
            sink.report.skipped.append(SkippedLayer(side, ev.role.path, ev.role.cls, unpaired_reason(ev)))
    # a parameter-free layer without a partner is not a pairing failure (one module called
    # twice against two modules, a functional call on the other side): no warning for it
    hard = [ev for ev in pairer.unmatched_paddle + pairer.unmatched_torch if ev.role.stateful]
    if hard and strict:
        p_n = sum(1 for e in p_events if e.role.kind == "hard")
        t_n = sum(1 for e in t_events if e.role.kind == "hard")
        lines = [f"  {('paddle' if ev in pairer.unmatched_paddle else 'torch')}: {ev.role.path or '<root>'} "
                 f"({ev.role.cls}), call {ev.call}" for ev in hard[:10]]
        raise MappingError(
            f"cannot pair the models in call order: the paddle model called {p_n} layers that hold "
            f"parameters, the torch model {t_n}. Unpaired:\n" + "\n".join(lines) +
            "\nPass layer_map='auto' to let padiff propose a map from the model structure, or a LayerMap "
            "/ dict {paddle_layer: torch_module} for the layers that differ (ignore extra ones with "
            "LayerMap.ignore)."
        )
    for ev in hard:
        sink.warn(f"{ev.role.path or '<root>'} ({ev.role.cls}) holds parameters but was not paired; "
                  "it is not compared.")


def unpaired_reason(ev: Event) -> str:
    """Why one layer call found no partner, in the words of its role."""
    if ev.role.kind == "soft":
        return ("no counterpart of the same kind between the same paired neighbours on the other side "
                "(functional call there, or an extra layer)")
    if ev.role.kind == "explicit" and not ev.role.stateful:
        return (f"call {ev.call} has no partner call: the layer is called more often than its mapped partner "
                "(holds no parameters; its other calls are compared)")
    if ev.role.kind == "explicit":
        return f"call {ev.call} has no partner call in the mapped layer"
    return "no counterpart found in call order"
