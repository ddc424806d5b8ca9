"""A difference that does not propagate is a representation, not a bug: the post-pass over a step's records.

Two ports may hold the same quantity in different forms: a rotary table laid out ``[f, f]``
against interleaved, a mask as 0/1 against additive ``-inf``, a router returning probabilities
against logits. The pair that produces it differs, yet every compared pair that consumes it
agrees, because each side's consumer reads its own form. Failing there is a false alarm.

:func:`excuse_representations` takes one step's records and the dataflow between compared
calls (``consumers``: for each call, the compared calls that read its output; a recorder notes
it from tensor identity, or gives the enclosing call when nothing reads the output directly)
and passes a differing forward record when every consumer agrees, with a note naming them. The
same call's output-gradient records (backward) are excused with it: a gradient of another form
is another form too. Its parameter gradients and values are not: they must still agree.

It never excuses a real fault whose difference reaches the models' outputs, the loss or the
gradients: a call without compared consumers, a NaN, an Inf on both sides, a real shape
difference, and every excuse of a step whose model output, loss, gradients or trained weights
still differ while no unexcused forward record does (the difference got there by a path the
dataflow did not see) are kept as failures. Framework-free, so the offline
comparison applies the same rule to recorded runs.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from padiff.compare.calibrated import resolution
from padiff.names import show
from padiff.report.records import Comparison, Stats

#: one layer call of a step: ``(step, paddle path, torch path, call)``, as its records carry it
CallKey = tuple[int, str, str, int]
#: failures that can be another form of the same values; NaN, structure and a real shape difference cannot,
#: and Inf only on one side (an additive mask's -inf against 0/1): the same Inf on both is never agreement
EXCUSABLE = frozenset({"", "flip", "inf"})


def _excusable(stats: Stats) -> bool:
    """Whether this failure can be another form of the same values (see :data:`EXCUSABLE`)."""
    if stats.note_kind == "inf":
        return math.isfinite(stats.paddle_mean) != math.isfinite(stats.torch_mean)
    return stats.note_kind in EXCUSABLE


#: a consumer vouches for its input only when it agrees to within this many resolutions of its dtype
#: (mean relative error): a difference diluted below the tolerance (a residual stream) can grow again
#: further on, so "within tolerance" is not enough to call the producer's difference harmless
VOUCH_RESOLUTIONS = 100.0


def _agrees_closely(rec: Comparison) -> bool:
    """The record passed with an error at rounding level (see :data:`VOUCH_RESOLUTIONS`)."""
    s = rec.stats
    if not rec.passed:
        return False
    if s.mode == "calibrated" or not (math.isfinite(s.mean_abs_diff) and math.isfinite(s.mean_abs_ref)):
        return True  # calibrated verdicts are already judged against the measured rounding
    return s.mean_abs_diff <= VOUCH_RESOLUTIONS * resolution(rec.dtype or "float32") * s.mean_abs_ref


def call_key(rec: Comparison) -> CallKey:
    """The layer call a record belongs to."""
    return (rec.step, rec.paddle_path, rec.torch_path, rec.call)


def _is_model_level(rec: Comparison) -> bool:
    """The models' own outputs, or the loss: what the user's code sees; never a representation."""
    return rec.stage == "loss" or (rec.paddle_path == "" and rec.torch_path == "")


def excuse_representations(records: Sequence[Comparison], consumers: Mapping[CallKey, Collection[CallKey]],
                           untrusted: Collection[CallKey] = ()) -> list[Comparison]:
    """``records`` with each representation's forward and output-gradient records passed and noted.

    ``consumers[k]``: the compared calls that read call ``k``'s output. Records keep their
    order and every other field; an excused record keeps its numbers (a person can still see
    how the forms differ) and gets ``note_kind == "representation"``. ``untrusted``: calls that
    updated their layer's state from their input (a train-mode BatchNorm's running statistics); such
    a consumer keeps what its output hides, so a difference it reads is never excused.
    """
    forward: dict[CallKey, list[int]] = {}
    for i, rec in enumerate(records):
        if rec.stage == "forward":
            forward.setdefault(call_key(rec), []).append(i)
    agrees = {k: all(records[i].passed for i in idx) for k, idx in forward.items()}
    close = {k: all(_agrees_closely(records[i]) for i in idx) for k, idx in forward.items()}
    excused: dict[CallKey, list[CallKey]] = {}
    # latest call first, so a consumer that is a representation itself counts as agreeing
    for key in sorted(forward, key=lambda k: max(records[i].order for i in forward[k]), reverse=True):
        if agrees[key] or any(_is_model_level(records[i]) for i in forward[key]):
            continue
        if not all(_excusable(records[i].stats) for i in forward[key] if not records[i].passed):
            continue
        seen = [c for c in consumers.get(key, ()) if c in forward and c != key]
        if seen and all(close[c] and c not in untrusted for c in seen):
            excused[key] = seen
            agrees[key] = close[key] = True
    if not excused:
        return list(records)
    still = [r for r in records if r.stage == "forward" and not r.passed and call_key(r) not in excused
             and not _is_model_level(r)]
    later = [r for r in records if not r.passed and (_is_model_level(r) or (
        r.stage in ("backward", "grad", "weight") and not (r.stage == "backward" and call_key(r) in excused)))]
    if not still and later:
        return list(records)  # the difference reached the outputs, the loss or the gradients: not a representation
    return [_excuse(r, records, excused[call_key(r)])
            if not r.passed and r.stage in ("forward", "backward") and call_key(r) in excused else r
            for r in records]


def _excuse(rec: Comparison, records: Sequence[Comparison], seen: list[CallKey]) -> Comparison:
    """The record passed, its note naming the consumers that agree."""
    names = {call_key(r): f"{show(r.paddle_path)} <-> {show(r.torch_path)}" for r in records}
    agree = ", ".join(dict.fromkeys(names.get(c, f"{show(c[1])} <-> {show(c[2])}") for c in seen))
    what = "output" if rec.stage == "forward" else "output gradient"
    note = (f"a representation, not a bug: the {what} differs here (max abs diff {rec.stats.max_abs_diff:.3g}"
            f"{'; ' + rec.stats.note if rec.stats.note else ''}) but every compared pair that consumes it agrees: "
            f"{agree}")
    return replace(rec, stats=replace(rec.stats, passed=True, note=note, note_kind="representation"))


__all__ = ["EXCUSABLE", "CallKey", "call_key", "excuse_representations"]
