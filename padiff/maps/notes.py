"""A map's notes: free text for a person, each with a kind code can test.

``LayerMap.notes`` has always been a list of strings, and stays one: a :class:`MapNote` is
a ``str`` that also carries a ``kind``. Decisions read the kind (:func:`note_kind`), never
the wording, so a note can be reworded without changing what padiff does: the report's
"settled numerically" section lists the ``numeric`` notes (those of the aligner's numeric
confirmation), whatever they say. A plain string is a ``general`` note.

In a map file a general note is its text; a note of another kind is the mapping
``{kind: numeric, text: ...}`` (map format version 3). Pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from padiff.maps import fields as F

NoteKind = Literal["general", "numeric"]
NOTE_KINDS: tuple[NoteKind, ...] = ("general", "numeric")
_FIELDS = ("kind", "text")


class MapNote(str):
    """A note's text (a ``str``, as ``LayerMap.notes`` always held) with its ``kind``."""

    kind: NoteKind

    def __new__(cls, text: str, kind: NoteKind = "general") -> MapNote:
        obj = super().__new__(cls, text)
        obj.kind = kind
        return obj

    @classmethod
    def numeric(cls, text: str) -> MapNote:
        """A note of the aligner's numeric confirmation (settled, refused, not done...)."""
        return cls(text, "numeric")

    @classmethod
    def from_dict(cls, value: Any, label: str = "note") -> MapNote:
        """A map-file note: its text, or ``{kind, text}``; anything else is a :class:`MapFileError`."""
        if not isinstance(value, dict):
            return cls(F.text(value, label))
        e = F.entry_fields(value, label, _FIELDS, _FIELDS)
        kind: NoteKind = "numeric" if F.choice(e["kind"], label, "kind", NOTE_KINDS) == "numeric" else "general"
        return cls(F.text(e["text"], label), kind)


def note_kind(note: str) -> NoteKind:
    """The kind of ``note`` (a plain string is ``general``)."""
    kind: NoteKind = getattr(note, "kind", "general")
    return kind


def note_entry(note: str) -> str | dict[str, str]:
    """``note`` as written in a map file: a general note is its text, another kind ``{kind, text}``."""
    kind = note_kind(note)
    return str(note) if kind == "general" else {"kind": kind, "text": str(note)}


def notes_of(notes: Iterable[str], kind: NoteKind) -> list[str]:
    """The texts of the notes of ``kind``, in order."""
    return [str(n) for n in notes if note_kind(n) == kind]
