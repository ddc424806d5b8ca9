"""The terminal rendering of a :class:`DiffReport`, and the long logs written to files.

On success: a short summary. On failure: where it failed (stage, step, both layers), the
numbers, the tolerance that would have passed, both model trees with the offending layer
marked ``<--- *** HERE ***``, the user code that made the call on both sides, suggested
tolerances by dtype, warnings and skipped layers. Everything else (every record) goes to
a log directory by :func:`write_logs`, whose path the summary prints.
"""

from __future__ import annotations

import datetime as _dt
import json
import linecache
import math
import os
import re
import shutil
from collections.abc import Iterable, Sequence

from padiff.report.records import Comparison, DiffReport, OpDiff

HERE = "<--- *** HERE ***"
MAX_LISTED = 10  # skipped layers / other failures shown on the terminal; the rest go to the logs
LOG_DIR_ENV = "PADIFF_LOG_DIR"
LOG_KEEP_ENV = "PADIFF_LOG_KEEP"  # keep only the last N runs' logs under the log root
DEFAULT_LOG_DIR = "padiff_logs"
_RUN_DIR = re.compile(r"^\d{8}-\d{6}-\d{6}(-\d+)?$")  # the names write_logs gives its run folders
_noted: set[str] = set()  # log roots whose size was already pointed out in this process


def fmt_num(v: float) -> str:
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


def _show(path: str, root_class: str = "") -> str:
    if path:
        return path
    return f"<root {root_class}>" if root_class else "<root>"


def where(rec: Comparison) -> str:
    """``forward, step 0: paddle fc1 (Linear) <-> torch first (Linear) [output]``."""
    item = f" [{rec.item}{', call ' + str(rec.call) if rec.call else ''}]" if rec.item or rec.call else ""
    return (f"{rec.stage}, step {rec.step}: paddle {_show(rec.paddle_path)} ({rec.paddle_class}) <-> "
            f"torch {_show(rec.torch_path)} ({rec.torch_class}){item}")


def numbers(rec: Comparison, options: dict | None = None) -> list[str]:
    """The numbers of one comparison, one per line, aligned; the verdict's own figure first."""
    s = rec.stats
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
    """``(label, text)`` rows of the first differing operation (SPEC §6), for the text and HTML reports."""
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
    """Suggested tolerances per dtype: settings that would have passed every comparison, each complete."""
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
    return out


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


def _failure(rep: DiffReport, size_note: bool = True) -> str:
    first = rep.first_diff
    lines: list[str] = []
    assign_failed = rep.assign_error or (first is not None and first.stage == "assign_weight")
    if assign_failed:
        lines.append("padiff: FAILED — the weights could not be assigned (torch -> paddle):")
        lines.append("  " + (rep.assign_error or (first.note if first is not None else "") or "(no reason recorded)"))
    if first is not None and first.stage != "assign_weight":
        lines.append(f"padiff: FAILED — first difference in {first.stage}, step {first.step}")
        lines.append(f"  paddle  {_show(first.paddle_path, rep.paddle_root_class)} ({first.paddle_class})")
        lines.append(f"  torch   {_show(first.torch_path, rep.torch_root_class)} ({first.torch_class})")
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
        lines += [f"  {where(r)}: max abs diff {fmt_num(r.max_abs_diff)}" for r in others]
    if first is not None and (first.paddle_path or first.torch_path or first.stage != "assign_weight"):
        skipped = {s.side: set() for s in rep.skipped}
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
        lines += [f"  {s.side} {_show(s.path)} ({s.cls}): {s.reason}" for s in rep.skipped[:MAX_LISTED]]
        if len(rep.skipped) > MAX_LISTED:
            lines.append(f"  ... {len(rep.skipped) - MAX_LISTED} more in the logs")
    if rep.log_dir:
        lines.append("")
        lines.append(f"Full logs: {rep.log_dir}")
        lines += log_size_note(rep.log_dir) if size_note else []
    return "\n".join(lines)


def _size(path: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                pass
    return total


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


def log_size_note(run_dir: str) -> list[str]:
    """Once per log root and process: how much the logs of failed runs take, and how to cap it."""
    root = os.path.dirname(run_dir)
    key = os.path.abspath(root)
    if key in _noted or not os.path.isdir(run_dir) or os.environ.get(LOG_KEEP_ENV):
        return []
    _noted.add(key)
    runs = _run_dirs(root)
    return [f"  ({_mb(_size(run_dir))} this run; every failed run adds its own folder: {root} holds {len(runs)} "
            f"run(s), {_mb(_size(root))}. Keep only the last N with {LOG_KEEP_ENV}=N (padiff run --log-keep N), "
            f"or point {LOG_DIR_ENV} elsewhere.)"]


# --- long logs ---------------------------------------------------------------------------------
def default_log_root() -> str:
    """``$PADIFF_LOG_DIR`` if set, else ``./padiff_logs``."""
    return os.environ.get(LOG_DIR_ENV) or DEFAULT_LOG_DIR


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
        from padiff.report.files import unwritable

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
    prune_logs(root, _keep(keep))
    return path


def _keep(keep: int | None) -> int | None:
    if keep is not None:
        return keep
    raw = os.environ.get(LOG_KEEP_ENV, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        from padiff.errors import OptionsError

        raise OptionsError(f"{LOG_KEEP_ENV} must be a whole number of runs to keep, got {raw!r}; "
                           f"unset it to keep every run's logs.") from None
    return max(n, 1)


def _run_dirs(root: str) -> list[str]:
    """The run folders write_logs made under ``root``, oldest first."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [os.path.join(root, n) for n in names
            if _RUN_DIR.match(n) and os.path.isfile(os.path.join(root, n, "summary.txt"))]


def prune_logs(root: str, keep: int | None) -> list[str]:
    """Remove the oldest run folders under ``root`` beyond the last ``keep``; return what was removed."""
    if keep is None:
        return []
    old = _run_dirs(root)[:-keep] if keep > 0 else _run_dirs(root)
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return old


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
        out += [f"  {s.side} {_show(s.path)} ({s.cls}): {s.reason}" for s in rep.skipped]
    return "\n".join(out) + "\n"


def mapping_text(rep: DiffReport) -> str:
    """The layer pairs the run used, its route and any weight conversions."""
    out = [f"layer map route: {rep.mapping_route or '(default)'}"]
    out += [f"  paddle {_show(m.get('paddle_path', ''))} ({m.get('paddle_class', '')}) <-> "
            f"torch {_show(m.get('torch_path', ''))} ({m.get('torch_class', '')})" for m in rep.mapping]
    if rep.conversions:
        out.append("weight conversions:")
        out += [f"  {c}" for c in rep.conversions]
    if rep.settled_numerically:
        out.append("settled numerically:")
        out += [f"  {c}" for c in rep.settled_numerically]
    return "\n".join(out) + "\n"
