"""Tables for the terminal: ``rich`` when the output is a terminal, aligned plain text otherwise.

Renderers build a :class:`Table` (a title, column names, rows of strings) and call
:func:`render_tables`; the result is always a ``str`` so callers decide where it goes and
tests can grep it. Plain text is the default whenever stdout is not a terminal (pipes,
CI logs, files), so the content stays greppable there.
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Table:
    """A titled table of strings; ``marks`` holds row indexes to emphasise (failures, doubts)."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    marks: set[int] = field(default_factory=set)
    empty: str = "(none)"

    def add(self, *cells: object, mark: bool = False) -> None:
        """Append a row; cells are turned into strings."""
        if mark:
            self.marks.add(len(self.rows))
        self.rows.append([str(c) for c in cells])


def use_rich(fancy: bool | None = None) -> bool:
    """``fancy`` if given, else whether stdout is a terminal (and ``rich`` importable)."""
    if fancy is None:
        try:
            fancy = sys.stdout.isatty()
        except (AttributeError, ValueError):
            fancy = False
    if not fancy:
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def render_tables(blocks: Sequence[Table | str], fancy: bool | None = None, width: int | None = None) -> str:
    """Render a sequence of tables and free text paragraphs as one string."""
    if use_rich(fancy):
        return _render_rich(blocks, width)
    parts = [b if isinstance(b, str) else plain_table(b) for b in blocks]
    return "\n\n".join(p.rstrip("\n") for p in parts if p is not None) + "\n"


def plain_table(t: Table) -> str:
    """Aligned columns separated by two spaces, with a dashed rule under the header."""
    lines = [f"{t.title}"] if t.title else []
    if not t.rows:
        lines.append(f"  {t.empty}")
        return "\n".join(lines)
    widths = [len(c) for c in t.columns]
    for row in t.rows:
        for i, cell in enumerate(row):
            if i < len(widths):
                widths[i] = max(widths[i], len(cell))
    def fmt(cells: Sequence[str], prefix: str) -> str:
        return (prefix + "  ".join(c.ljust(w) for c, w in zip(cells, widths))).rstrip()
    lines.append(fmt(t.columns, "  "))
    lines.append(fmt(["-" * w for w in widths], "  "))
    for i, row in enumerate(t.rows):
        lines.append(fmt(row, "! " if i in t.marks else "  "))
    return "\n".join(lines)


def _render_rich(blocks: Sequence[Table | str], width: int | None) -> str:
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=width or shutil.get_terminal_size((120, 40)).columns,
                      highlight=False)
    for i, block in enumerate(blocks):
        if i:
            console.print()
        if isinstance(block, str):
            console.print(Text(block))
            continue
        rt = RichTable(title=block.title or None, title_justify="left", show_lines=False)
        for col in block.columns:
            rt.add_column(col, overflow="fold")
        if not block.rows:
            console.print(Text(f"{block.title}\n  {block.empty}"))
            continue
        for i, row in enumerate(block.rows):
            rt.add_row(*row, style="bold red" if i in block.marks else None)
        console.print(rt)
    return buf.getvalue()
