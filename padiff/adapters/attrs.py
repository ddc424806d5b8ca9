"""Snapshot and restore of every layer's own attributes, around work that runs the user's forward.

An export traces the forward: ``paddle.jit.save`` runs it in static-graph mode, so a forward
that caches a tensor in an attribute (``self.mask = ...``, a rotary ``freqs_cis`` table built
on first use) leaves a static-graph ``pir.Value`` there, and the next forward fails; a torch
trace leaves the traced tensor, and any forward bumps counters. :class:`AttributeSnapshot`
keeps each layer's instance ``__dict__`` (every entry, so rebound attributes, parameters and
buffers come back by identity) and a shallow copy of each list, dict and set in it (parameter,
buffer and sub-layer tables, user caches changed in place); :meth:`AttributeSnapshot.restore`
puts them back and removes entries added since. Values are not copied: tensor contents, modes
and flags are :class:`padiff.adapters.snapshot.SideSnapshot`'s job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from padiff.adapters.base import Side

_Container = list | dict | set


@dataclass
class AttributeSnapshot:
    """Each layer's ``__dict__`` entries and the contents of its containers, as they were."""

    side: Side
    layers: list[tuple[Any, dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def take(cls, side: Side, root: Any) -> AttributeSnapshot:
        """Record every layer under ``root`` (shared layers once)."""
        snap = cls(side)
        seen: set[int] = set()
        for _, layer in side.named_layers(root):
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            entries = dict(vars(layer))
            contents = {k: _shallow(v) for k, v in entries.items() if isinstance(v, _Container)}
            snap.layers.append((layer, entries, contents))
        return snap

    def restore(self) -> None:
        """Put every entry and container content back; drop entries added since. Never raises."""
        for layer, entries, contents in self.layers:
            now = vars(layer)
            for key in [k for k in now if k not in entries]:
                with contextlib.suppress(Exception):
                    del now[key]
            for key, value in entries.items():
                if now.get(key, _MISSING) is not value:
                    now[key] = value
                if key in contents:
                    with contextlib.suppress(Exception):
                        _refill(value, contents[key])


_MISSING = object()


def _shallow(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else set(value)


def _refill(container: Any, content: Any) -> None:
    """Make ``container`` hold ``content`` again (in place: other references see it), when it changed."""
    if isinstance(container, list):
        if len(container) != len(content) or any(a is not b for a, b in zip(container, content)):
            container[:] = content
    elif isinstance(container, dict):
        if container.keys() != content.keys() or any(container[k] is not v for k, v in content.items()):
            container.clear()
            container.update(content)
    elif container != content:
        container.clear()
        container.update(content)


@contextlib.contextmanager
def attributes_kept(side: Side, root: Any) -> Iterator[AttributeSnapshot]:
    """A context after which every layer's attributes under ``root`` are as before (also on error)."""
    snap = AttributeSnapshot.take(side, root)
    try:
        yield snap
    finally:
        snap.restore()
