"""Tables for the terminal: ``rich`` when the output is a terminal, aligned plain text otherwise.

Renderers build a :class:`Table` (a title, column names, rows of strings) and call
:func:`render_tables`; the result is always a ``str`` so callers decide where it goes and
tests can grep it. Plain text is the default whenever stdout is not a terminal (pipes,
CI logs, files), so the content stays greppable there.
"""

from __future__ import annotations

import io
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Table:
    """A titled table of strings; ``marks`` holds row indexes to emphasise (failures, doubts)."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    marks: set[int] = field(default_factory=set)
    empty: str = "(none)"
    optional: Sequence[int] = ()  # columns a narrow terminal may leave out, in this order

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


def fit_columns(t: Table, total: int) -> tuple[list[int], list[int | None], list[list[str]]]:
    """Columns to keep, their widths and the rows, so a table fits ``total`` terminal columns.

    Cells are broken only between words: first each column gets at least its longest word
    (a path stays whole) and the space left is shared in proportion to what each column
    would still like; if that does not fit, the table's ``optional`` columns are left out;
    if it still does not fit, paths are broken after a ``.`` (between components), never
    inside a name. Widths are ``None`` when the table fits as it is.
    """
    keep = list(range(len(t.columns)))
    rows = [[row[j] if j < len(row) else "" for j in range(len(t.columns))] for row in t.rows]
    for drop in [None, *t.optional]:
        if drop is not None:
            keep.remove(drop)
        widths = _share(t, keep, rows, total, str.split)
        if widths is not None:
            return keep, widths, [[r[j] for j in keep] for r in rows]
    widths = _share(t, keep, rows, total, _components) or [None] * len(keep)
    fitted = [[_wrap_components(r[j], w) if w else r[j] for j, w in zip(keep, widths)] for r in rows]
    return keep, widths, fitted


def _components(text: str) -> list[str]:
    return [c for w in text.split() for c in re.findall(r"[^.]+\.?|\.", w)]


def _wrap_components(text: str, width: int) -> str:
    """Break ``text`` into lines of at most ``width`` at spaces and after dots."""
    lines: list[str] = []
    for word in text.split():
        parts = _components(word)
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
            continue
        line = ""
        for c in parts:
            if line and len(line) + len(c) > width:
                lines.append(line)
                line = ""
            line += c
        lines.append(line)
    return "\n".join(lines)


def _share(t: Table, keep: list[int], rows: list[list[str]], total: int,
           units: Callable[[str], list[str]]) -> list[int | None] | None:
    cells = [[r[j] for r in rows] + [t.columns[j]] for j in keep]
    overhead = 3 * len(keep) + 1  # a space either side of each cell, and the borders
    longest = [max(len(c) for c in col) for col in cells]
    if sum(longest) + overhead <= total:
        return [None] * len(keep)
    word = [max((len(w) for c in col for w in units(c)), default=1) for col in cells]
    room = total - overhead - sum(word)
    if room < 0:
        return None
    want = [max(0, lo - w) for lo, w in zip(longest, word)]
    give = [0] * len(keep)
    # fair shares: a column that wants little gets all of it, the rest split what is left
    for n_left, j in enumerate(sorted(range(len(keep)), key=lambda k: want[k])):
        give[j] = min(want[j], room // (len(keep) - n_left))
        room -= give[j]
    return [w + g for w, g in zip(word, give)]


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
        keep, widths, rows = fit_columns(block, console.width)
        for j, w in zip(keep, widths):
            rt.add_column(block.columns[j], overflow="fold", width=w)
        if not block.rows:
            console.print(Text(f"{block.title}\n  {block.empty}"))
            continue
        for i, row in enumerate(rows):
            rt.add_row(*row, style="bold red" if i in block.marks else None)
        console.print(rt)
        left_out = [block.columns[j] for j in range(len(block.columns)) if j not in keep]
        if left_out:
            console.print(Text(f"  (left out to fit the terminal: {', '.join(left_out)})"))
    return buf.getvalue()
