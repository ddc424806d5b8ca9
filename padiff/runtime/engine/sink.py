"""Where comparison records go: the sink owns their order and turns them into report records.

A record is placed by a structured :class:`SortKey` instead of one packed number: the
section of the stage it belongs to (layer calls and their parameters; the map's
parameter-level pairs; the models' own outputs and input gradients, last), the position
in that section (forward: the order comparisons are made; backward and gradients: reverse
call order; weights: the order pairs were first seen) and the tensor within it. Ties keep
arrival order. When the sink is flushed, records get their rank within ``(step, stage)`` as
:attr:`Comparison.order`, which is all the report's readers sort by.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import TYPE_CHECKING

from padiff.adapters.frames import Frame
from padiff.compare.representations import CallKey, excuse_representations
from padiff.report.records import Comparison, DiffReport, Stage, Stats

if TYPE_CHECKING:
    from padiff.runtime.pairing import Event, Role


class Section(IntEnum):
    """The parts of one stage, in the order a person reads them."""

    LAYERS = 0  # layer calls, and the parameters of layer pairs
    PARAM_PAIRS = 1  # the map's parameter-level pairs (``paddle param <-> torch param``)
    MODEL = 2  # the models' own outputs (forward) and input gradients (backward)


@dataclass(frozen=True, order=True)
class SortKey:
    """Where a record sits in its stage: section, then position, then which tensor."""

    section: Section
    position: int
    item: int = 0

    @classmethod
    def arrival(cls, seq: int) -> SortKey:
        """A layer comparison placed by when it was made (forward: torch's call order)."""
        return cls(Section.LAYERS, seq)

    @classmethod
    def backward(cls, call_index: int, item: int) -> SortKey:
        """A gradient of output ``item`` of the paddle call ``call_index``: backward walks calls in reverse."""
        return cls(Section.LAYERS, -call_index, item)

    @classmethod
    def pair_param(cls, pair_index: int, k: int, *, reverse: bool) -> SortKey:
        """Parameter ``k`` of the ``pair_index``-th pair seen; ``reverse`` for gradients (backward order)."""
        return cls(Section.LAYERS, -pair_index if reverse else pair_index, k)

    @classmethod
    def param_pair(cls, k: int) -> SortKey:
        """The map's ``k``-th parameter-level pair."""
        return cls(Section.PARAM_PAIRS, 0, k)

    @classmethod
    def model(cls, item: int) -> SortKey:
        """The models' own output (or input gradient) ``item``."""
        return cls(Section.MODEL, 0, item)


@dataclass(frozen=True)
class Site:
    """Which pair a record is about: both paths and classes, the call, the depth, the user's stacks."""

    paddle_path: str
    torch_path: str
    paddle_class: str
    torch_class: str
    depth: int = 0
    call: int = 0
    paddle_stack: tuple[Frame, ...] = ()
    torch_stack: tuple[Frame, ...] = ()

    @classmethod
    def of_events(cls, pev: Event, tev: Event) -> Site:
        """One paired layer call (torch's call index, paddle's depth, both user stacks)."""
        return cls(pev.role.path, tev.role.path, pev.role.cls, tev.role.cls, pev.role.depth, tev.call,
                   pev.stack, tev.stack)

    @classmethod
    def of_roles(cls, paddle_path: str, torch_path: str, p_role: Role, t_role: Role) -> Site:
        """A pair's parameters (labelled by ``paddle_path`` / ``torch_path``)."""
        return cls(paddle_path, torch_path, p_role.cls, t_role.cls, p_role.depth)

    @classmethod
    def roots(cls, paddle_class: str, torch_class: str, stack: tuple[Frame, ...] = ()) -> Site:
        """The two models themselves (root path ``""``)."""
        return cls("", "", paddle_class, torch_class, 0, 0, stack, stack)


class RecordSink:
    """Collects one run's comparisons and warnings and hands them to the :class:`DiffReport` in order."""

    def __init__(self, report: DiffReport) -> None:
        self.report = report
        self.step = 0
        self._pending: list[tuple[SortKey, int, Comparison]] = []
        self._seq = 0
        # which compared call reads which one's output, from the passes since the last flush
        self.consumers: dict[CallKey, set[CallKey]] = {}
        self.stateful: set[CallKey] = set()  # compared calls that updated their layer's state

    def note_consumers(self, consumers: dict[CallKey, set[CallKey]], stateful: set[CallKey] | None = None) -> None:
        """Add one pass's dataflow between compared calls (for the representation rule at flush).

        ``stateful``: the calls that updated their layer's state in place; they vouch for no input.
        """
        self.stateful.update(stateful or ())
        for key, found in consumers.items():
            self.consumers.setdefault(key, set()).update(found)

    def add(self, stage: Stage, site: Site, stats: Stats, *, item: str = "", key: SortKey | None = None,
            dtype: str = "") -> None:
        """One comparison of ``stage`` at ``site``; without a ``key`` it is placed by arrival."""
        self._seq += 1
        rec = Comparison(
            stage=stage, step=self.step, paddle_path=site.paddle_path, torch_path=site.torch_path,
            paddle_class=site.paddle_class, torch_class=site.torch_class, stats=stats, call=site.call, item=item,
            depth=site.depth, dtype=dtype, paddle_stack=site.paddle_stack, torch_stack=site.torch_stack)
        self._pending.append((SortKey.arrival(self._seq) if key is None else key, self._seq, rec))

    def warn(self, text: str) -> None:
        """A warning for the report."""
        self.report.warnings.append(text)

    def warn_once(self, text: str) -> None:
        """A warning for the report, unless the same text is there already."""
        if text not in self.report.warnings:
            self.report.warnings.append(text)

    def flush(self) -> None:
        """Move the pending records to the report, each with its rank in ``(step, stage)`` as ``order``.

        A differing record whose consumers all agree passes as a representation
        (:func:`~padiff.compare.representations.excuse_representations`).
        """
        pending, self._pending = self._pending, []
        consumers, self.consumers = self.consumers, {}
        stateful, self.stateful = self.stateful, set()
        ranks: dict[int, int] = {}
        counts: dict[tuple[int, str], int] = {}
        for _, seq, rec in sorted(pending, key=lambda p: (p[2].step, p[2].stage, p[0], p[1])):
            group = (rec.step, rec.stage)
            ranks[seq] = counts.get(group, 0)
            counts[group] = ranks[seq] + 1
        # the report's list keeps arrival order; ``order`` says where each record is read
        placed = [replace(rec, order=ranks[seq]) for _, seq, rec in pending]
        self.report.records.extend(excuse_representations(placed, consumers, untrusted=stateful) if consumers
                                   else placed)
