"""Data records the engine produces; every renderer (text, HTML, JSON, CLI) reads only these."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

from padiff.names import json_number, show
from padiff.report.text import render_summary

REPORT_FORMAT_VERSION = 1  # the JSON report (DiffReport.to_dict); padiff.report.json_report loads it back
Stage = Literal["assign_weight", "forward", "loss", "backward", "grad", "weight"]
CompareMode = Literal["mean", "strict", "calibrated"]
# what a comparison's note is about; the note itself is the text a person reads
NoteKind = Literal["", "nan", "inf", "shape", "structure", "flip", "empty", "nothing", "one_sided", "assign",
                   "noise", "fallback", "representation"]


@dataclass(frozen=True, kw_only=True)
class Stats:
    """The numbers of one comparison of two tensors (paddle ``a`` vs torch ``b``).

    ``mode`` is the verdict's figure: ``"mean"`` judged ``mean_abs_diff`` against
    ``atol + rtol * mean_abs_ref``, ``"strict"`` every element. ``mismatched`` always counts
    elements outside the element-wise tolerance, whichever mode judged. Fields are keyword
    only; :meth:`failure` and :meth:`empty` build the records that hold no measured numbers.
    """

    passed: bool
    max_abs_diff: float
    max_rel_diff: float
    mismatched: int
    total: int
    paddle_mean: float
    torch_mean: float
    cosine: float
    min_atol: float  # smallest atol that passes at the given rtol, under the verdict's figure
    min_rtol: float  # smallest rtol that passes at the given atol, likewise
    worst_index: tuple[int, ...] = ()
    note: str = ""  # "shape mismatch ...", "nan", "inf", "structure ...", "boundary flip ..."
    note_kind: NoteKind = ""
    mode: CompareMode = "strict"
    mean_abs_diff: float = math.nan  # mean |paddle - torch|
    mean_abs_ref: float = math.nan  # mean |torch|
    flips: int = 0  # mismatched elements that are boundary flips (zero on one side)
    reconciled: str = ""  # how differing shapes were reconciled before comparing, if they were
    # compare_mode="calibrated" (padiff.compare.calibrated): errors against torch's float64 reference
    paddle_error: float = math.nan  # mean |paddle - reference|
    torch_error: float = math.nan  # mean |torch - reference|: torch's own rounding
    noise_ratio: float = math.nan  # paddle_error / max(torch_error, floor): passes when <= k

    @classmethod
    def failure(cls, note: str, *, kind: NoteKind, count: int = 0, paddle_mean: float = math.nan,
                torch_mean: float = math.nan, mode: CompareMode = "strict") -> Stats:
        """A failed comparison with no element-wise numbers (shapes or structure differ, nothing to compare).

        The differences are infinite and no tolerance passes (``min_atol``/``min_rtol`` inf), so
        every renderer and the tolerance suggestion treat it alike; ``count`` elements are
        counted as mismatched out of ``count``.
        """
        return cls(passed=False, max_abs_diff=math.inf, max_rel_diff=math.inf, mismatched=count, total=count,
                   paddle_mean=paddle_mean, torch_mean=torch_mean, cosine=math.nan, min_atol=math.inf,
                   min_rtol=math.inf, note=note, note_kind=kind, mode=mode)

    @classmethod
    def empty(cls, *, mode: CompareMode, reconciled: str = "") -> Stats:
        """Two tensors without elements: they agree, and nothing was measured."""
        return cls(passed=True, max_abs_diff=0.0, max_rel_diff=0.0, mismatched=0, total=0, paddle_mean=0.0,
                   torch_mean=0.0, cosine=1.0, min_atol=0.0, min_rtol=0.0, note="empty", note_kind="empty",
                   mode=mode, mean_abs_diff=0.0, mean_abs_ref=0.0, reconciled=reconciled)


STAGES: tuple[Stage, ...] = ("assign_weight", "forward", "loss", "backward", "grad", "weight")


@dataclass(frozen=True)
class OpDiff:
    """The first framework operation that parts inside the first differing layer pair (README "Down to the operation").

    Found by re-running ``scope`` (the pair, or the enclosing pair when its input already
    differed) on identical inputs with both frameworks' operations recorded. ``where`` places
    the op among the pair's sublayers ("between `fc1` and `fc2`", "inside `norm`"); ``args``
    lists the settings that differ, ``(name, paddle value, torch value)``; ``only_paddle`` /
    ``only_torch`` name ops one side ran with no counterpart right before it.
    """

    paddle_op: str
    torch_op: str
    kind: str
    scope: str  # "attn <-> self_attn": the pair that was re-run ("<root>" for the whole models)
    where: str
    paddle_source: str  # "file:line (function): code"
    torch_source: str
    paddle_shape: tuple[int, ...] = ()
    torch_shape: tuple[int, ...] = ()
    args: tuple[tuple[str, Any, Any], ...] = ()
    stats: Stats | None = None
    inputs_agree: bool = True
    only_paddle: tuple[str, ...] = ()
    only_torch: tuple[str, ...] = ()
    agreed_before: int = 0  # op pairs that agreed before this one
    note: str = ""
    paddle_frame: tuple[str, int, str] | tuple[()] = ()  # (file, line, function) of the user's code
    torch_frame: tuple[str, int, str] | tuple[()] = ()
    phase: str = "forward"  # "backward": found by following gradients (the op's backward differs)
    grad_item: str = ""  # backward: which gradient differs ("input 0": the one the op passes back)

    def summary(self) -> str:
        """One line: which ops, where, what differs."""
        same = self.paddle_op == self.torch_op
        ops = (self.paddle_op if same else f"{self.paddle_op} (paddle only)" if not self.torch_op
               else f"{self.torch_op} (torch only)" if not self.paddle_op
               else f"{self.paddle_op} (paddle) vs {self.torch_op} (torch)")
        if self.phase == "backward":
            text = f"in backward, at op {ops}" + (f" {self.where}" if self.where else "")
            if self.grad_item:
                text += f"; gradient of its {self.grad_item} differs"
        else:
            text = f"{self.where}: {ops}" if self.where else ops
        if self.args:
            text += "; " + ", ".join(f"{k}={p!r} vs {t!r}" for k, p, t in self.args)
        if self.paddle_shape != self.torch_shape and self.paddle_op and self.torch_op:
            text += f"; output shape {list(self.paddle_shape)} vs {list(self.torch_shape)}"
        elif self.stats is not None and self.stats.note_kind == "one_sided":
            text += f"; {self.stats.note}"
        elif self.stats is not None:
            text += f"; max abs diff {self.stats.max_abs_diff:.3g}"
        if self.only_torch:
            text += f"; torch alone runs {', '.join(self.only_torch)}"
        if self.only_paddle:
            text += f"; paddle alone runs {', '.join(self.only_paddle)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the output statistics flattened under ``stats``)."""
        d = {k: v for k, v in asdict(self).items() if k != "stats"}
        d["args"] = [[k, _json_val(p), _json_val(t)] for k, p, t in self.args]
        d["paddle_shape"], d["torch_shape"] = list(self.paddle_shape), list(self.torch_shape)
        d["only_paddle"], d["only_torch"] = list(self.only_paddle), list(self.only_torch)
        d["paddle_frame"], d["torch_frame"] = list(self.paddle_frame), list(self.torch_frame)
        d["stats"] = None if self.stats is None else {k: _json_num(v) for k, v in asdict(self.stats).items()}
        if d["stats"] is not None:
            d["stats"]["worst_index"] = list(self.stats.worst_index) if self.stats else []
        return d


@dataclass(frozen=True)
class Comparison:
    """One comparison of one tensor pair: where, what stage, and the numbers."""

    stage: Stage
    step: int
    paddle_path: str
    torch_path: str
    paddle_class: str
    torch_class: str
    stats: Stats
    call: int = 0  # which call of a layer called several times (0-based)
    item: str = ""  # which tensor of the output / which parameter ("out[1]", "weight")
    order: int = 0  # position in the stage (forward call order; backward: reverse)
    depth: int = 0  # nesting depth of the paddle layer (for plots)
    dtype: str = ""
    paddle_stack: tuple[tuple[str, int, str], ...] = ()
    torch_stack: tuple[tuple[str, int, str], ...] = ()
    op: OpDiff | None = None  # the first differing operation inside the pair (forward, or backward: op.phase)

    passed = property(lambda self: self.stats.passed)
    max_abs_diff = property(lambda self: self.stats.max_abs_diff)
    max_rel_diff = property(lambda self: self.stats.max_rel_diff)
    mismatched = property(lambda self: self.stats.mismatched)
    total = property(lambda self: self.stats.total)
    paddle_mean = property(lambda self: self.stats.paddle_mean)
    torch_mean = property(lambda self: self.stats.torch_mean)
    cosine = property(lambda self: self.stats.cosine)
    note = property(lambda self: self.stats.note)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (infinities and NaN become strings)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("stats", "op")}
        d.update({k: _json_num(v) for k, v in asdict(self.stats).items()})
        d["op"] = self.op.to_dict() if self.op is not None else None
        d["worst_index"] = list(self.stats.worst_index)
        d["paddle_stack"] = [list(f) for f in self.paddle_stack]
        d["torch_stack"] = [list(f) for f in self.torch_stack]
        return d


WarningCode = Literal["dropout_train", "mode_mismatch", "other"]


class ReportWarning(str):
    """A warning's text (a ``str``, as ``report.warnings`` always held) with a ``code`` code can test.

    Decisions test the code (:meth:`DiffReport.has_warning`), never the wording, so a
    message can be reworded without changing what padiff does.
    """

    code: WarningCode

    def __new__(cls, text: str, code: WarningCode = "other") -> ReportWarning:
        obj = super().__new__(cls, text)
        obj.code = code
        return obj


class MappedPair(TypedDict):
    """One layer pair a run used: both paths and classes."""

    paddle_path: str
    torch_path: str
    paddle_class: str
    torch_class: str


@dataclass(frozen=True)
class SkippedLayer:
    """A layer that ran but was not compared, and why."""

    side: str
    path: str
    cls: str
    reason: str


@dataclass
class DiffReport:
    """Everything one run compared. Truthy iff everything agreed within tolerance."""

    records: list[Comparison] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    steps: int = 1
    stages: list[str] = field(default_factory=list)
    skipped: list[SkippedLayer] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mapping: list[MappedPair] = field(default_factory=list)  # pairs used (from the LayerMap)
    mapping_route: str = ""
    conversions: list[str] = field(default_factory=list)  # inferred weight conversions
    settled_numerically: list[str] = field(default_factory=list)
    paddle_tree: list[tuple[str, str, int]] = field(default_factory=list)  # (path, class, depth)
    torch_tree: list[tuple[str, str, int]] = field(default_factory=list)
    paddle_root_class: str = ""
    torch_root_class: str = ""
    log_dir: str = ""
    assign_error: str = ""

    def __bool__(self) -> bool:
        return not self.assign_error and all(r.passed for r in self.records)

    def has_warning(self, *codes: WarningCode) -> bool:
        """True when a warning with one of ``codes`` was raised (plain-text warnings have code ``"other"``)."""
        return any(getattr(w, "code", "other") in codes for w in self.warnings)

    def summary(self) -> str:
        """The text report a person reads (what ``auto_diff`` prints); writes no files."""
        return render_summary(self)

    def __str__(self) -> str:
        """``print(report)`` shows the text report, not the dataclass fields (``repr`` keeps those)."""
        return self.summary()

    @property
    def ok(self) -> bool:
        """Same as ``bool(report)``."""
        return bool(self)

    @property
    def first_diff(self) -> Comparison | None:
        """The first failing comparison in run order (stage by stage, step by step)."""
        for rec in self.ordered():
            if not rec.passed:
                return rec
        return None

    def ordered(self) -> list[Comparison]:
        """Records in the order a person reads a run: step, stage, position within stage."""
        rank: dict[str, int] = {s: i for i, s in enumerate(STAGES)}
        return sorted(self.records, key=lambda r: (r.step, rank.get(r.stage, 99), r.order))

    def failures(self) -> list[Comparison]:
        """Every failing record, in run order."""
        return [r for r in self.ordered() if not r.passed]

    def by_stage(self, stage: str) -> list[Comparison]:
        """Records of one stage, in order."""
        return [r for r in self.ordered() if r.stage == stage]

    def max_diff(self, stage: str = "forward") -> float:
        """Largest max-abs-diff of a stage (0.0 when nothing was compared)."""
        vals = [r.max_abs_diff for r in self.records if r.stage == stage]
        return max(vals) if vals else 0.0

    def reconciliations(self) -> list[tuple[str, int, tuple[str, ...]]]:
        """``(what was reconciled, how many comparisons, at which pairs)`` over the run, by what was done."""
        seen: dict[str, tuple[int, dict[str, None]]] = {}
        for r in self.records:
            if r.stats.reconciled:
                n, pairs = seen.get(r.stats.reconciled, (0, {}))
                pairs[f"{show(r.paddle_path)} <-> {show(r.torch_path)}"] = None
                seen[r.stats.reconciled] = (n + 1, pairs)
        return sorted((what, n, tuple(pairs)) for what, (n, pairs) in seen.items())

    def suggested_tolerances(self) -> dict[str, list[dict[str, float]]]:
        """Per dtype, complete ``{"atol", "rtol"}`` settings that would pass every comparison.

        Two alternatives, each to be used as a whole: the smallest atol at the run's rtol,
        and the smallest rtol at the run's atol, both under the run's ``compare_mode``.
        """
        atol, rtol = float(self.options.get("atol", 0.0)), float(self.options.get("rtol", 0.0))
        need: dict[str, list[float]] = {}
        for r in self.records:
            if r.stage == "assign_weight" or r.stats.note_kind == "representation":
                continue  # a representation passes whatever the tolerance
            d = need.setdefault(r.dtype or "float32", [atol, rtol])
            # NaN (a NaN in the data) must not make the answer depend on record order
            if not math.isnan(r.stats.min_atol):
                d[0] = max(d[0], r.stats.min_atol)
            if not math.isnan(r.stats.min_rtol):
                d[1] = max(d[1], r.stats.min_rtol)
        return {k: [{"atol": a, "rtol": rtol}, {"atol": atol, "rtol": rt}] for k, (a, rt) in need.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of the whole report."""
        first = self.first_diff
        return {
            "version": REPORT_FORMAT_VERSION,
            "ok": bool(self),
            "options": dict(self.options),
            "steps": self.steps,
            "stages": list(self.stages),
            "first_diff": first.to_dict() if first else None,
            "records": [r.to_dict() for r in self.ordered()],
            "skipped": [asdict(s) for s in self.skipped],
            "warnings": list(self.warnings),
            "warning_codes": [getattr(w, "code", "other") for w in self.warnings],
            "mapping_route": self.mapping_route,
            "mapping": list(self.mapping),
            "conversions": list(self.conversions),
            "settled_numerically": list(self.settled_numerically),
            "suggested_tolerances": {k: [{kk: _json_num(vv) for kk, vv in d.items()} for d in v]
                                     for k, v in self.suggested_tolerances().items()},
            "assign_error": self.assign_error,
            "log_dir": self.log_dir,
            "paddle_root_class": self.paddle_root_class,
            "torch_root_class": self.torch_root_class,
            "paddle_tree": [list(row) for row in self.paddle_tree],
            "torch_tree": [list(row) for row in self.torch_tree],
        }


def _json_val(v: Any) -> Any:
    if isinstance(v, (bool, int, float, str)) or v is None:
        return _json_num(v)
    if isinstance(v, (list, tuple)):
        return [_json_val(x) for x in v]
    return repr(v)


def _json_num(v: Any) -> Any:
    return json_number(v) if isinstance(v, float) else v
