"""The long logs of a run, written to files: every record, both trees, the map, the JSON.

:func:`render_report` is what a run prints: the terminal text of :mod:`padiff.report.text`,
after writing these logs when the run failed (their folder is named in the text).
"""

from __future__ import annotations

import datetime as _dt
import json
import os

from padiff.names import show as show_path
from padiff.report.files import unwritable
from padiff.report.log_folders import default_log_root, keep_count, prune_logs
from padiff.report.records import DiffReport
from padiff.report.text import numbers, render_summary, stack_lines, tree_lines, where


def render_report(rep: DiffReport, *, log_dir: str | None = None, write_log: bool | None = None,
                  log_keep: int | None = None) -> str:
    """The terminal text of a report.

    ``write_log`` (default: only when the run failed and no log was written yet) writes
    the long version with :func:`write_logs` under ``log_dir`` and prints its path.
    """
    if write_log is None:
        write_log = not rep and not rep.log_dir
    if write_log:
        try:
            write_logs(rep, log_dir, log_keep)
        except OSError as exc:  # a read-only directory must not hide the result
            rep.warnings.append(f"could not write the log files: {exc}")
    return render_summary(rep)


def write_logs(rep: DiffReport, log_dir: str | None = None, keep: int | None = None) -> str:
    """Write every record and the summary under ``log_dir/<timestamp>/``; return that directory.

    ``log_dir`` defaults to :func:`default_log_root`. Each run gets a fresh timestamped
    directory, so earlier logs are never overwritten. Sets ``rep.log_dir``. ``keep``
    (default ``$PADIFF_LOG_KEEP``, unset: keep all) removes the oldest run folders beyond
    the last ``keep``; only folders padiff named and filled are ever removed.
    """
    root = os.fspath(log_dir) if log_dir else default_log_root()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = os.path.join(root, stamp)
    n = 0
    while os.path.exists(path):
        n += 1
        path = os.path.join(root, f"{stamp}-{n}")
    try:
        os.makedirs(path)
    except OSError as exc:
        raise unwritable(path, exc, "the log files") from exc
    rep.log_dir = path
    files = {
        "summary.txt": render_summary(rep, size_note=False) + "\n",
        "records.txt": records_text(rep),
        "trees.txt": trees_text(rep),
        "mapping.txt": mapping_text(rep),
        "report.json": json.dumps(rep.to_dict(), indent=2, default=str) + "\n",
    }
    for name, text in files.items():
        with open(os.path.join(path, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    prune_logs(root, keep_count(keep))
    return path


def trees_text(rep: DiffReport) -> str:
    """Both whole model trees, unfolded, the first difference marked."""
    first = rep.first_diff
    skipped: dict[str, set[str]] = {"paddle": set(), "torch": set()}
    for s in rep.skipped:
        skipped.setdefault(s.side, set()).add(s.path)
    lines = tree_lines(rep.paddle_tree, rep.paddle_root_class, first.paddle_path if first else None,
                       skipped["paddle"], "Paddle model:", None)
    lines += ["", *tree_lines(rep.torch_tree, rep.torch_root_class, first.torch_path if first else None,
                              skipped["torch"], "Torch model:", None)]
    return "\n".join(lines) + "\n"


def records_text(rep: DiffReport) -> str:
    """Every comparison, in run order, one block each (the long version of the summary)."""
    out = [f"{len(rep.records)} comparison(s); options: {rep.options}", ""]
    for i, rec in enumerate(rep.ordered()):
        out.append(f"[{i}] {'ok  ' if rec.passed else 'FAIL'} {where(rec)}")
        out += numbers(rec, rep.options)
        if not rec.passed:
            out += ["  " + ln for ln in stack_lines(rec.paddle_stack, "paddle call:")]
            out += ["  " + ln for ln in stack_lines(rec.torch_stack, "torch call:")]
        out.append("")
    if rep.skipped:
        out.append("Not compared:")
        out += [f"  {s.side} {show_path(s.path)} ({s.cls}): {s.reason}" for s in rep.skipped]
    return "\n".join(out) + "\n"


def mapping_text(rep: DiffReport) -> str:
    """The layer pairs the run used, its route and any weight conversions."""
    out = [f"layer map route: {rep.mapping_route or '(default)'}"]
    out += [f"  paddle {show_path(m.get('paddle_path', ''))} ({m.get('paddle_class', '')}) <-> "
            f"torch {show_path(m.get('torch_path', ''))} ({m.get('torch_class', '')})" for m in rep.mapping]
    if rep.conversions:
        out.append("weight conversions:")
        out += [f"  {c}" for c in rep.conversions]
    if rep.settled_numerically:
        out.append("settled numerically:")
        out += [f"  {c}" for c in rep.settled_numerically]
    return "\n".join(out) + "\n"
