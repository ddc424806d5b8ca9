"""The terminal rendering of a :class:`DiffReport`, and the long logs written to files.

On success: a short summary. On failure: where it failed (stage, step, both layers), the
numbers, the tolerance that would have passed, both model trees with the offending layer
marked ``<--- *** HERE ***``, the user code that made the call on both sides, suggested
tolerances by dtype, warnings and skipped layers. Everything else (every record) goes to
a log directory by :func:`write_logs`, whose path the summary prints.
"""

from __future__ import annotations

import linecache
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from padiff.names import show as show_path
from padiff.report.calibrated_text import calibrated_numbers, largest_ratio_line, ratio_text
from padiff.report.log_folders import log_size_note

if TYPE_CHECKING:  # records import this module (DiffReport.summary); it needs them for annotations only
    from padiff.report.records import Comparison, DiffReport, OpDiff

HERE = "<--- *** HERE ***"
MAX_LISTED = 10  # skipped layers / other failures shown on the terminal; the rest go to the logs


def fmt_num(v: object) -> str:
    """Short, greppable number: ``0``, ``1.23e-05``, ``0.5``, ``inf``, ``nan``."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    return f"{v:.4g}"


def where(rec: Comparison) -> str:
    """``forward, step 0: paddle fc1 (Linear) <-> torch first (Linear) [output]``."""
    item = f" [{rec.item}{', call ' + str(rec.call) if rec.call else ''}]" if rec.item or rec.call else ""
    return (f"{rec.stage}, step {rec.step}: paddle {show_path(rec.paddle_path)} ({rec.paddle_class}) <-> "
            f"torch {show_path(rec.torch_path)} ({rec.torch_class}){item}")


def numbers(rec: Comparison, options: Mapping[str, Any] | None = None) -> list[str]:
    """The numbers of one comparison, one per line, aligned; the verdict's own figure first."""
    s = rec.stats
    if s.mode == "calibrated" or s.note_kind == "fallback":
        return calibrated_numbers(rec) + _record_facts(rec)
    opts = options or {}
    atol, rtol = opts.get("atol"), opts.get("rtol")
    pct = 100.0 * s.mismatched / s.total if s.total else 0.0
    at = f" at index {tuple(s.worst_index)}" if s.worst_index else ""
    mean_line = f"  mean abs diff     {fmt_num(s.mean_abs_diff)}"
    count_line = f"  mismatched        {s.mismatched} / {s.total} ({pct:.1f}%) elements outside atol + rtol * |torch|"
    if s.mode == "mean":
        if atol is not None and rtol is not None:
            mean_line += (f"  (allowed: atol {fmt_num(atol)} + rtol {fmt_num(rtol)} * mean|torch| "
                          f"{fmt_num(s.mean_abs_ref)} = {fmt_num(atol + rtol * s.mean_abs_ref)})")
        lines = [mean_line + "  [compare_mode=mean: the verdict's figure]",
                 f"  max abs diff      {fmt_num(s.max_abs_diff)}{at}",
                 f"  max rel diff      {fmt_num(s.max_rel_diff)}",
                 count_line + " (for information; strict mode would judge this)"]
    else:
        lines = [f"  max abs diff      {fmt_num(s.max_abs_diff)}{at}"
                 + (f"  (allowed: atol {fmt_num(atol)} + rtol {fmt_num(rtol)} * |torch|)" if atol is not None else ""),
                 f"  max rel diff      {fmt_num(s.max_rel_diff)}",
                 count_line + "  [compare_mode=strict: the verdict's figure]",
                 mean_line]
    figure = "mean abs diff" if s.mode == "mean" else "every element"
    lines += [
        f"  means             paddle {fmt_num(s.paddle_mean)}   torch {fmt_num(s.torch_mean)}",
        f"  cosine            {fmt_num(s.cosine)}",
        f"  would pass with   atol >= {fmt_num(s.min_atol)}"
        + (f" (at rtol {fmt_num(rtol)})" if rtol is not None else "")
        + f"  or  rtol >= {fmt_num(s.min_rtol)}" + (f" (at atol {fmt_num(atol)})" if atol is not None else "")
        + f"  [judging the {figure}]",
    ]
    return lines + _record_facts(rec)


def _record_facts(rec: Comparison) -> list[str]:
    """The lines every record's numbers end with, whatever judged it: reconciled shapes, note, dtype."""
    s, lines = rec.stats, []
    if s.reconciled:
        lines.append(f"  shapes            {s.reconciled}")
    if s.note:
        lines.append(f"  note              {s.note}")
    if rec.dtype:
        lines.append(f"  dtype             {rec.dtype}")
    return lines


MAX_TREE_ROWS = 60  # bigger trees are folded around the marked layer on the terminal (full tree in the logs)


def tree_lines(tree: Sequence[tuple[str, str, int]], root_class: str, mark: str | None,
               skipped: Iterable[str] = (), title: str = "", max_rows: int | None = MAX_TREE_ROWS) -> list[str]:
    """An indented model tree; the layer at ``mark`` gets ``<--- *** HERE ***``, skipped ones ``(skip)``.

    A tree longer than ``max_rows`` is folded: the marked layer's ancestors, their
    children and the marked layer's own children stay, runs of other layers become
    ``... N more``.
    """
    skipped = set(skipped)
    out = [title] if title else []
    if not tree:
        return [*out, "  (tree not recorded)"]
    keep = _kept_rows(tree, mark) if max_rows is not None and len(tree) > max_rows else None
    hidden, hidden_depth = 0, 0
    for i, (path, cls, depth) in enumerate(tree):
        if keep is not None and i not in keep:
            if not hidden:
                hidden_depth = depth
            hidden += 1
            continue
        if hidden:
            out.append("  " + "  " * hidden_depth + f"... {hidden} more")
            hidden = 0
        name = path.rsplit(".", 1)[-1] if path else ""
        label = f"{name} ({cls})" if path else f"{cls or root_class}"
        line = "  " + "  " * depth + label
        if path in skipped:
            line += "  (skip)"
        if mark is not None and path == mark:
            line += "  " + HERE
        out.append(line)
    if hidden:
        out.append("  " + "  " * hidden_depth + f"... {hidden} more")
    return out


def _kept_rows(tree: Sequence[tuple[str, str, int]], mark: str | None, window: int = 2) -> set[int]:
    """Rows to show of a long tree: the root, the marked layer's ancestors, a few siblings around
    each of them (plus the first and last sibling), and the marked layer's first children."""
    def parent(path: str) -> str:
        return path.rsplit(".", 1)[0] if "." in path else ""

    chain = [""]
    if mark:
        parts = mark.split(".")
        chain += [".".join(parts[:k]) for k in range(1, len(parts) + 1)]
    children: dict[str, list[int]] = {}
    index: dict[str, int] = {}
    for i, (path, _cls, _depth) in enumerate(tree):
        index.setdefault(path, i)
        if path:
            children.setdefault(parent(path), []).append(i)
    keep = {index[p] for p in chain if p in index}
    for level, anc in enumerate(chain):
        kids = children.get(anc, [])
        if not kids:
            continue
        nxt = chain[level + 1] if level + 1 < len(chain) else None
        if nxt is None or nxt not in index or index[nxt] not in kids:
            keep.update(kids[:2 * window + 1])  # the marked layer's own children (or no mark)
            continue
        j = kids.index(index[nxt])
        keep.update(kids[max(0, j - window): j + window + 1])
        keep.update((kids[0], kids[-1]))
    return keep


_PADIFF_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def op_rows(op: OpDiff | None) -> list[tuple[str, str]]:
    """``(label, text)`` rows of the first differing operation, for the text and HTML reports."""
    if op is None:
        return []
    rows = [("first op", op.summary()), ("re-ran", "the whole models" if op.scope == "<root>" else op.scope)]
    if op.paddle_source:
        rows.append(("paddle op", f"{op.paddle_op} at {op.paddle_source}"))
    if op.torch_source:
        rows.append(("torch op", f"{op.torch_op} at {op.torch_source}"))
    if op.stats is not None and op.paddle_shape == op.torch_shape:
        s = op.stats
        rows.append(("op numbers", f"max abs diff {fmt_num(s.max_abs_diff)}, max rel diff {fmt_num(s.max_rel_diff)}, "
                                   f"mismatched {s.mismatched} / {s.total}"))
    if op.note:
        rows.append(("op note", op.note))
    return rows


def op_lines(op: OpDiff | None) -> list[str]:
    """The first differing operation as indented report lines."""
    return [f"  {label:<10} {text}" for label, text in op_rows(op)]


def user_frames(stack: Sequence[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """The frames of ``stack`` outside padiff itself (the CLI and API frames are not the user's code)."""
    return [f for f in stack if not os.path.abspath(f[0]).startswith(_PADIFF_DIR)]


def stack_lines(stack: Sequence[tuple[str, int, str]], title: str) -> list[str]:
    """``File "x.py", line 3, in forward`` plus the source line, innermost last (padiff's frames left out)."""
    stack = user_frames(stack)
    if not stack:
        return [title, "  (no user frames recorded)"]
    out = [title]
    for filename, lineno, func in stack:
        out.append(f'  File "{filename}", line {lineno}, in {func}')
        src = linecache.getline(filename, lineno).strip()
        if src:
            out.append(f"    {src}")
    return out


def tolerance_lines(rep: DiffReport) -> list[str]:
    """Suggested tolerances per dtype: settings that would have passed every comparison, each complete.

    None for a calibrated run: its verdicts use no tolerance.
    """
    if rep.options.get("compare_mode") == "calibrated":
        return []
    sug = rep.suggested_tolerances()
    if not sug:
        return []
    mode = rep.options.get("compare_mode", "mean")
    out = [f"Suggested tolerances (compare_mode={mode}): complete settings that pass every comparison "
           "of the run, by dtype (use one setting as a whole):"]
    for dtype, settings in sorted(sug.items()):
        alts = "   or   ".join(f"atol={fmt_num(d['atol'])}, rtol={fmt_num(d['rtol'])}" for d in settings)
        out.append(f"  {dtype:<9} {alts}")
    return out


def stage_summary(rep: DiffReport) -> list[str]:
    """One line per stage: how many comparisons, how many failed, the largest diff."""
    out = []
    stages = rep.stages or sorted({r.stage for r in rep.records})
    for stage in stages:
        recs = [r for r in rep.records if r.stage == stage]
        if not recs:
            continue
        bad = sum(not r.passed for r in recs)
        out.append(f"  {stage:<13} {len(recs):>5} compared, {bad:>4} failed, max abs diff "
                   f"{fmt_num(max(r.max_abs_diff for r in recs))}")
    ratio = largest_ratio_line(rep.records)
    return out + ([ratio] if ratio else [])


def render_summary(rep: DiffReport, *, size_note: bool = True) -> str:
    """The terminal text without writing anything (``size_note``: may point out the logs' size)."""
    if rep:
        return _success(rep)
    return _failure(rep, size_note)


def _success(rep: DiffReport) -> str:
    n = len(rep.records)
    stages = ", ".join(rep.stages or sorted({r.stage for r in rep.records})) or "(none)"
    lines = [f"padiff: SUCCESS — {n} comparison(s) agree within tolerance; stages: {stages}; steps: {rep.steps}; "
             f"max forward diff {fmt_num(rep.max_diff('forward'))}"]
    lines += stage_summary(rep)
    lines += [f"  reconciled ({n_rec}x): {what} (at {', '.join(at[:3])}{', ...' if len(at) > 3 else ''})"
              for what, n_rec, at in rep.reconciliations()]
    lines += representation_lines(rep)
    if rep.mapping_route and rep.mapping_route != "manual":
        lines.append(f"  layer map: {rep.mapping_route} ({len(rep.mapping)} pairs)")
    lines += [f"  warning: {w}" for w in rep.warnings]
    if rep.skipped:
        lines.append(f"  {len(rep.skipped)} layer(s) ran but were not compared" +
                     (f"; see {rep.log_dir}" if rep.log_dir else ""))
    lines += ["  " + ln for ln in tolerance_lines(rep)]
    if rep.log_dir:
        lines.append(f"  logs: {rep.log_dir}")
    return "\n".join(lines)


def representation_lines(rep: DiffReport, limit: int = 5) -> list[str]:
    """The differences passed as representations (their consumers agree), forward ones, at most ``limit``."""
    found = [r for r in rep.ordered() if r.stage == "forward" and r.stats.note_kind == "representation"]
    lines = [f"  representation: {show_path(r.paddle_path)} <-> {show_path(r.torch_path)}: {r.note}"
             for r in found[:limit]]
    return lines + ([f"  ... and {len(found) - limit} more representation(s)"] if len(found) > limit else [])


def _failure(rep: DiffReport, size_note: bool = True) -> str:
    first = rep.first_diff
    lines: list[str] = []
    assign_failed = rep.assign_error or (first is not None and first.stage == "assign_weight")
    if assign_failed:
        lines.append("padiff: FAILED — the weights could not be assigned (torch -> paddle):")
        lines.append("  " + (rep.assign_error or (first.note if first is not None else "") or "(no reason recorded)"))
    if first is not None and first.stage != "assign_weight":
        lines.append(f"padiff: FAILED — first difference in {first.stage}, step {first.step}")
        lines.append(f"  paddle  {show_path(first.paddle_path, rep.paddle_root_class)} ({first.paddle_class})")
        lines.append(f"  torch   {show_path(first.torch_path, rep.torch_root_class)} ({first.torch_class})")
        if first.item or first.call:
            lines.append(f"  tensor  {first.item or 'output'}" + (f", call {first.call}" if first.call else ""))
        lines += numbers(first, rep.options)
        lines += op_lines(first.op)
    elif not assign_failed:
        lines.append("padiff: FAILED")
    opts = ", ".join(f"{k}={v}" for k, v in rep.options.items())
    if opts:
        lines.append(f"  options: {opts}")
    lines.append("")
    lines.append("Stages:")
    lines += stage_summary(rep) or ["  (nothing compared)"]
    all_others = [r for r in rep.failures() if r is not first]
    others = all_others[:MAX_LISTED]
    if others:
        lines.append("")
        shown = "" if len(others) == len(all_others) else f", first {len(others)} shown"
        lines.append(f"Other differences ({len(all_others)}{shown}):")
        lines += [f"  {where(r)}: " + (ratio_text(r.stats) or f"max abs diff {fmt_num(r.max_abs_diff)}")
                  for r in others]
    if first is not None and (first.paddle_path or first.torch_path or first.stage != "assign_weight"):
        skipped: dict[str, set[str]] = {s.side: set() for s in rep.skipped}
        for s in rep.skipped:
            skipped[s.side].add(s.path)
        lines.append("")
        lines += tree_lines(rep.paddle_tree, rep.paddle_root_class, first.paddle_path, skipped.get("paddle", ()),
                            f"Paddle model ({rep.paddle_root_class or 'paddle'}):")
        lines.append("")
        lines += tree_lines(rep.torch_tree, rep.torch_root_class, first.torch_path, skipped.get("torch", ()),
                            f"Torch model ({rep.torch_root_class or 'torch'}):")
    if first is not None and (first.paddle_stack or first.torch_stack):
        lines.append("")
        lines += stack_lines(first.paddle_stack, "Paddle call (innermost last):")
        lines += stack_lines(first.torch_stack, "Torch call (innermost last):")
    tol = tolerance_lines(rep)
    if tol:
        lines.append("")
        lines += tol
    if rep.warnings:
        lines.append("")
        lines += [f"Warning: {w}" for w in rep.warnings]
    if rep.skipped:
        lines.append("")
        lines.append(f"Not compared ({len(rep.skipped)}):")
        lines += [f"  {s.side} {show_path(s.path)} ({s.cls}): {s.reason}" for s in rep.skipped[:MAX_LISTED]]
        if len(rep.skipped) > MAX_LISTED:
            lines.append(f"  ... {len(rep.skipped) - MAX_LISTED} more in the logs")
    if rep.log_dir:
        lines.append("")
        lines.append(f"Full logs: {rep.log_dir}")
        lines += log_size_note(rep.log_dir) if size_note else []
    return "\n".join(lines)


