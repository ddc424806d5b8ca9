"""Score padiff on the real pairs and print a markdown table.

Run from the repository root in the real-pairs venv (``make real-pairs-score``)::

    python -m tests.real_pairs.score [PAIR ...]

Per pair, as built and with the torch definition order reversed inside every module:
- equivalence of the hand copy (max abs diff of the outputs);
- leaf precision / recall of ``padiff.suggest_layer_map`` against the hand copy's pairing;
- the ``auto_diff(auto_weights=True, layer_map="auto")`` verdict on the correct port;
- for a pair with ``weights_only`` pairs (outputs the two APIs define differently), the verdict
  again with those pairs not compared, as a user edits the proposal; the fault is planted under it;
- with the output of one torch leaf scaled by 1.05, whether ``compare``'s ``first_diff`` names it;
- the parameter-free pairs the proposal made and how many of them were wrong.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .handcopy import apply_copy, as_numpy, owner, reverse_definition_order, truth_pairs, within
from .pairs import Built, RealPair, all_pairs, new_pairs

OPTIONS = {"atol": 1e-5, "rtol": 1e-4}
FAULT_SCALE = 1.05


def missing_requirements(pair: RealPair) -> list[str]:
    """The packages ``pair`` needs that cannot be imported here."""
    out = []
    for mod in pair.requires:
        try:
            importlib.import_module(mod)
        except ImportError:
            out.append(mod)
    return out


def build(pair: RealPair, reverse: bool = False, seed: int = 0) -> Built:
    """Both models from the same seeds, in the pair's mode; torch order reversed on request."""
    import paddle
    import torch

    paddle.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)
    layer, module, p_inp, t_inp = pair.build()
    if reverse:
        reverse_definition_order(module)
    for m in (layer, module):
        m.train() if pair.train_mode else m.eval()
    return layer, module, p_inp, t_inp


def run_both(layer: Any, module: Any, p_inp: dict[str, Any], t_inp: dict[str, Any]) -> tuple[list, list]:
    """Both models' floating outputs as numpy arrays."""
    import torch

    with torch.no_grad():
        t_out = as_numpy(module(**t_inp))
    return as_numpy(layer(**p_inp)), t_out


def hand_copy_diff(pair: RealPair, reverse: bool = False) -> float:
    """Max abs difference of the outputs after the hand copy (inf when shapes or counts differ)."""
    layer, module, p_inp, t_inp = build(pair, reverse)
    apply_copy(layer, module, pair.copy(layer, module))
    p_out, t_out = run_both(layer, module, p_inp, t_inp)
    if len(p_out) != len(t_out) or any(a.shape != b.shape for a, b in zip(p_out, t_out)):
        return float("inf")
    return max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(p_out, t_out))


def equivalent(pair: RealPair, reverse: bool = False) -> bool:
    """The hand copy makes the two models agree within float32 rounding (``OPTIONS``)."""
    layer, module, p_inp, t_inp = build(pair, reverse)
    apply_copy(layer, module, pair.copy(layer, module))
    p_out, t_out = run_both(layer, module, p_inp, t_inp)
    if not any(float(np.max(np.abs(b))) > 1e-3 for b in t_out if b.size):
        raise AssertionError(f"{pair.name}: the torch outputs are all ~0, so agreeing proves nothing; "
                             "give the pair a livelier init")
    return len(p_out) == len(t_out) > 0 and all(
        a.shape == b.shape and np.allclose(a, b, atol=OPTIONS["atol"], rtol=OPTIONS["rtol"])
        for a, b in zip(p_out, t_out))


# --- scoring a proposal (plain data: framework-free) -------------------------------------

@dataclass(frozen=True)
class ProposalScore:
    """How a proposal's layer pairs compare with the hand copy's."""

    considered: int  # proposed pairs with a parameter-holding layer on a side
    correct: int
    recall: float  # true (paddle owner, torch owner) pairs a correct proposed pair covers
    free_pairs: int  # proposed pairs of two parameter-free layers
    free_wrong: int
    wrong: tuple[str, ...]  # the wrong pairs, for the report

    @property
    def precision(self) -> float:
        return self.correct / self.considered if self.considered else float("nan")


Side = str | tuple[str, ...]  # one path, or the parts of a fused pair's split side


def _in(path: str, top: Side) -> bool:
    return any(within(path, x) for x in (top if isinstance(top, tuple) else (top,)))


def pair_is_correct(p: Side, t: Side, truth: set[tuple[str, str]]) -> bool:
    """A proposed pair is right when it covers a true pair and contradicts none.

    Every paddle owner inside ``p`` must have its torch side(s) inside ``t``, and every
    torch owner at ``t`` itself must have at least one paddle side inside ``p`` (so a fused
    torch ``in_proj`` owner against paddle's ``q_proj`` counts as right).
    """
    covered = [(a, b) for a, b in truth if _in(a, p) and _in(b, t)]
    if not covered:
        return False
    if any(_in(a, p) and not _in(b, t) for a, b in truth):
        return False
    t_owners = {b for _, b in truth if b in (t if isinstance(t, tuple) else (t,))}
    return all(any(_in(a, p) for a, bb in truth if bb == b) for b in t_owners)


def score_pairs(pairs: Iterable[tuple[Side, Side, bool]], truth: set[tuple[str, str]],
                free_truth: Any, params: Iterable[tuple[str, str]] = (),
                param_truth: set[tuple[str, str]] = frozenset()) -> ProposalScore:
    """Score proposed ``(paddle_path, torch_path, opaque)`` pairs against the true pairing.

    Only leaf-level pairs count for precision: those whose paddle or torch side owns a
    parameter directly, and opaque pairs (which stand for everything inside them).
    ``free_truth(paddle_path)`` gives the true torch partner of a parameter-free layer.
    Parameter pairs ``params`` (paddle param, torch param) count as leaf pairs, right when the
    hand copy writes that paddle tensor from that torch tensor (``param_truth``).
    """
    p_owners = {a for a, _ in truth}
    t_owners = {b for _, b in truth}
    considered = correct = free = free_wrong = 0
    covered: set[tuple[str, str]] = set()
    wrong: list[str] = []
    def show(x: Side) -> str:
        return "+".join(x) if isinstance(x, tuple) else (x or "<root>")

    def owns(x: Side, owners: set[str]) -> bool:
        return any(y in owners for y in (x if isinstance(x, tuple) else (x,)))

    for p, t, opaque in pairs:
        p_has = any(_in(a, p) for a in p_owners)
        t_has = any(_in(b, t) for b in t_owners)
        if not p_has and not t_has:
            free += 1
            if free_truth(p) != t:
                free_wrong += 1
                wrong.append(f"{show(p)} <-> {show(t)} (parameter-free)")
            continue
        if not (opaque or owns(p, p_owners) or owns(t, t_owners)):
            continue  # a container pair: compared for its output, not a leaf correspondence
        considered += 1
        if pair_is_correct(p, t, truth):
            correct += 1
            covered |= {(a, b) for a, b in truth if _in(a, p) and _in(b, t)}
        else:
            wrong.append(f"{show(p)} <-> {show(t)}")
    for pp, tp in params:
        considered += 1
        if (pp, tp) in param_truth:
            correct += 1
            covered.add((owner(pp), owner(tp)))
        else:
            wrong.append(f"param {pp} <-> {tp}")
    recall = len(covered) / len(truth) if truth else float("nan")
    return ProposalScore(considered, correct, recall, free, free_wrong, tuple(wrong))


# --- padiff on one pair ------------------------------------------------------------------

@dataclass
class Row:
    """One line of the table: a pair, as built or reversed."""

    pair: str
    order: str
    hand_diff: float = float("nan")
    score: ProposalScore | None = None
    verdict: bool | None = None
    edited_verdict: bool | None = None  # with the pair's ``weights_only`` pairs not compared (when it has any)
    fault_named: bool | None = None
    fault_at: str = ""
    confident_wrong: int | None = None  # proposed pairs at confidence >= 0.9 that are wrong
    verdict_at: str = ""  # first_diff of the correct port when the verdict is False
    norm_fault_named: bool | None = None  # a planted norm fault (other epsilon, or scaled output) named there
    norm_fault_at: str = ""
    attrs_changed: str | None = None  # what suggest_layer_map left changed on a sublayer ("" = nothing)
    seconds: float = 0.0
    error: str = ""


def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    logging.getLogger("padiff").setLevel(logging.ERROR)
    return stack


def _scaled(module: Any, inputs: Any, out: Any) -> Any:
    """The planted fault: the leaf's (first) output times ``FAULT_SCALE``."""
    if isinstance(out, tuple):
        return (out[0] * FAULT_SCALE, *out[1:])
    return out * FAULT_SCALE


def score_pair(pair: RealPair, reverse: bool = False) -> Row:
    """Everything the table says about one pair in one definition order."""
    import padiff
    from padiff.assign import with_special_pairs

    row = Row(pair.name, "reversed" if reverse else "as built")
    start = time.time()
    try:
        row.hand_diff = hand_copy_diff(pair, reverse)
        layer, module, p_inp, t_inp = build(pair, reverse)
        entries = pair.copy(layer, module)
        truth = truth_pairs(entries)
        before = attribute_state(layer), attribute_state(module)
        with _quiet():
            lm = padiff.suggest_layer_map(layer, module, ({**p_inp}, {**t_inp}))
        row.attrs_changed = attributes_changed(before[0], attribute_state(layer), "paddle") or attributes_changed(
            before[1], attribute_state(module), "torch")
        row.score = score_pairs(((pr.paddle_parts or pr.paddle_path, pr.torch_parts or pr.torch_path, pr.opaque)
                                 for pr in lm.pairs), truth,
                                pair.free_rename, ((pp.paddle_param, pp.torch_param) for pp in lm.params),
                                {(e.paddle_name, t) for e in entries for t in e.torch_names})
        confident = score_pairs(((pr.paddle_parts or pr.paddle_path, pr.torch_parts or pr.torch_path, pr.opaque)
                                 for pr in lm.pairs if pr.confidence >= 0.9), truth, pair.free_rename,
                                ((pp.paddle_param, pp.torch_param) for pp in lm.params if pp.confidence >= 0.9),
                                {(e.paddle_name, t) for e in entries for t in e.torch_names})
        row.confident_wrong = len(confident.wrong)
        # layer_map="auto" is exactly this: the proposal plus the special-init pairs (one export, reused)
        auto = with_special_pairs(lm, layer, module)
        with _quiet():
            rep = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True, layer_map=auto, options=OPTIONS)
        row.verdict = bool(rep)
        if not row.verdict:
            first = rep.first_diff
            row.verdict_at = f"{first.stage}: {first.paddle_path} <-> {first.torch_path}" if first else "(none)"
        if pair.weights_only:
            layer, module, p_inp, t_inp = build(pair, reverse)
            lm = weights_only(lm, pair.weights_only)
            with _quiet():
                row.edited_verdict = bool(padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True,
                                                         layer_map=with_special_pairs(lm, layer, module),
                                                         options=OPTIONS))
        layer, module, p_inp, t_inp = build(pair, reverse)
        auto = with_special_pairs(lm, layer, module)  # the edited map, when the pair has one
        leaf = dict(module.named_modules())[pair.fault_leaf]
        handle = leaf.register_forward_hook(_scaled)
        try:
            with _quiet():
                rep = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True, layer_map=auto,
                                     options=OPTIONS)
        finally:
            handle.remove()
        first = rep.first_diff
        row.fault_at = f"{first.stage}: {first.paddle_path} <-> {first.torch_path}" if first else "(none)"
        row.fault_named = first is not None and first.torch_path == pair.fault_leaf
        row.norm_fault_named, row.norm_fault_at = norm_fault_check(pair, reverse, lm, truth)
    except Exception as exc:  # noqa: BLE001 - a pair that breaks is a row saying so, the table goes on
        row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    row.seconds = time.time() - start
    return row


# --- the planted norm fault and the attribute check (separate functions: other branches edit score_pair) ---

NORM_EPS = 0.5  # a planted norm's epsilon (1e-5 / 1e-6 in the models): as a wrong default in a port


def attribute_state(model: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every sublayer's attributes as plain facts: each value's identity, and for tensors their values, for
    plain values the value, for containers their members' identities."""
    named = model.named_sublayers(include_self=True) if hasattr(model, "named_sublayers") else model.named_modules()
    out = []
    for path, sub in named:
        facts: dict[str, Any] = {}
        for key, value in vars(sub).items():
            if isinstance(value, (bool, int, float, str, type(None), tuple)):
                facts[key] = ("plain", value)
            elif isinstance(value, dict):
                facts[key] = ("dict", tuple((k, id(v)) for k, v in value.items()))
            elif isinstance(value, (list, set)):
                facts[key] = ("seq", tuple(sorted(id(v) for v in value)))
            else:
                facts[key] = ("object", id(value))
        for name, t in [*getattr(sub, "_parameters", {}).items(), *getattr(sub, "_buffers", {}).items()]:
            if t is None:
                continue
            try:
                arr = t.detach().cpu().numpy() if isinstance(t, _torch_tensor()) else np.asarray(t.numpy())
            except RuntimeError:  # a paddle view without memory of its own (an LSTM's flattened weights)
                facts[f"<value {name}>"] = ("object", id(t))
            else:
                facts[f"<value {name}>"] = ("tensor", arr.copy())
        out.append((path, facts))
    return out


def _torch_tensor() -> type:
    import torch

    return torch.Tensor


def attributes_changed(before: list[tuple[str, dict[str, Any]]], after: list[tuple[str, dict[str, Any]]],
                       side: str) -> str:
    """The first attribute that differs between two :func:`attribute_state` records, or ""."""
    if [p for p, _ in before] != [p for p, _ in after]:
        return f"{side}: the sublayers changed"
    for (path, a), (_, b) in zip(before, after):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{side} {path or '<root>'}.{key}: {'added' if key not in a else 'removed'}"
            (ka, va), (kb, vb) = a[key], b[key]
            same = ka == kb and (np.array_equal(va, vb) if ka == "tensor" else va == vb)
            if not same:
                return f"{side} {path or '<root>'}.{key}: changed"
    return ""


def _norm_leaf(module: Any, truth: set[tuple[str, str]]) -> str:
    """The torch norm leaf (class name with "Norm") in the middle of those the hand copy reads."""
    read = {b for _, b in truth}
    norms = [n for n, m in module.named_modules() if n in read and not list(m.children())
             and "norm" in type(m).__name__.lower()]
    return norms[len(norms) // 2] if norms else ""


def _plant_norm_fault(m: Any) -> Any:
    """Give norm ``m`` another epsilon when it keeps one as a float attribute (the port's wrong default);
    otherwise scale its output. Returns the undo."""
    for attr in ("eps", "variance_epsilon", "epsilon"):
        if isinstance(getattr(m, attr, None), float):
            old = getattr(m, attr)
            setattr(m, attr, NORM_EPS)
            return lambda: setattr(m, attr, old)
    handle = m.register_forward_hook(_scaled)
    return handle.remove


def norm_fault_check(pair: RealPair, reverse: bool, lm: Any, truth: set[tuple[str, str]]) -> tuple[bool | None, str]:
    """(named, first diff) for a planted fault in a torch norm the hand copy reads; (None, why) without one.

    The fault is another epsilon (or, when the changed epsilon does not change the torch output, because
    the norm reads it from elsewhere, the output scaled by ``FAULT_SCALE``); named when ``first_diff`` is at it.
    """
    import torch

    import padiff
    from padiff.assign import with_special_pairs

    layer, module, p_inp, t_inp = build(pair, reverse)
    leaf = _norm_leaf(module, truth)
    if not leaf:
        return None, "no norm"
    m = dict(module.named_modules())[leaf]
    with torch.no_grad():
        clean = as_numpy(module(**t_inp))
    undo = _plant_norm_fault(m)
    with torch.no_grad():
        faulty = as_numpy(module(**t_inp))
    if all(np.array_equal(a, b) for a, b in zip(clean, faulty)):  # epsilon not read from the attribute
        undo()
        undo = m.register_forward_hook(_scaled).remove
    try:
        with _quiet():
            rep = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True,
                                 layer_map=with_special_pairs(lm, layer, module), options=OPTIONS)
    finally:
        undo()
    first = rep.first_diff
    at = f"{leaf}: {first.stage}: {first.paddle_path} <-> {first.torch_path}" if first else f"{leaf}: (none)"
    return first is not None and first.torch_path == leaf, at


ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)


def adamw_check(pair: RealPair, steps: int = 3) -> tuple[bool | None, str]:
    """``compare(..., steps=3, optimizer=[paddle AdamW, torch AdamW])`` with equal hyper-parameters on the
    correct port: (verdict, first_diff or error text)."""
    import paddle
    import torch

    import padiff

    try:
        layer, module, p_inp, t_inp = build(pair)
        p_opt = paddle.optimizer.AdamW(learning_rate=ADAMW["lr"], beta1=ADAMW["betas"][0], beta2=ADAMW["betas"][1],
                                       epsilon=ADAMW["eps"], weight_decay=ADAMW["weight_decay"],
                                       parameters=layer.parameters())
        t_opt = torch.optim.AdamW(module.parameters(), lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"],
                                  weight_decay=ADAMW["weight_decay"])
        with _quiet():
            rep = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True, layer_map="auto", steps=steps,
                                 optimizer=[p_opt, t_opt], options=OPTIONS)
        first = rep.first_diff
        at = f"{first.stage}: {first.paddle_path} <-> {first.torch_path}" if first else ""
        return bool(rep), at
    except Exception as exc:  # noqa: BLE001 - reported, the table goes on
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def weights_only(lm: Any, torch_paths: tuple[str, ...]) -> Any:
    """A copy of proposal ``lm`` whose pairs at ``torch_paths`` copy weights but compare no outputs."""
    import copy
    import dataclasses

    out = copy.copy(lm)
    out.pairs = [dataclasses.replace(pr, compare_output=False) if pr.torch_path in torch_paths else pr
                 for pr in lm.pairs]
    return out


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.2f}"


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    head = ("| pair | torch order | hand copy max diff | leaf precision | leaf recall | auto_diff | "
            "fault named | first diff with fault | param-free pairs (wrong) | s |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        if r.error and r.score is None:
            lines.append(f"| {r.pair} | {r.order} | {r.hand_diff:.1e} | error: {r.error} | | | | | | "
                         f"{r.seconds:.0f} |")
            continue
        s = r.score
        prec = f"{_fmt(s.precision)} ({s.correct}/{s.considered})" if s else ""
        free = f"{s.free_pairs} ({s.free_wrong})" if s else ""
        verdict = "error" if r.verdict is None else str(r.verdict)
        if r.edited_verdict is not None:
            verdict += f" (edited map: {r.edited_verdict})"
        named = "error: " + r.error if r.fault_named is None else ("yes" if r.fault_named else "no")
        lines.append(f"| {r.pair} | {r.order} | {r.hand_diff:.1e} | {prec} | {_fmt(s.recall) if s else ''} | "
                     f"{verdict} | {named} | {r.fault_at} | {free} | {r.seconds:.0f} |")
    return "\n".join(lines)


def _skipped(pair: RealPair) -> bool:
    """True (and says so) when a package ``pair`` needs is not installed."""
    missing = missing_requirements(pair)
    if missing:
        print(f"skip {pair.name}: {', '.join(missing)} not installed", file=sys.stderr)
    return bool(missing)


def checks_table(rows: list[Row]) -> str:
    """The planted norm fault and the attribute check, one line per row."""
    lines = ["| pair | order | norm fault named | first diff with norm fault | attributes after suggest_layer_map |",
             "|---|---|---|---|---|"]
    for r in rows:
        named = "n/a" if r.norm_fault_named is None else ("yes" if r.norm_fault_named else "no")
        attrs = "n/a" if r.attrs_changed is None else (r.attrs_changed or "unchanged")
        lines.append(f"| {r.pair} | {r.order} | {named} | {r.norm_fault_at} | {attrs} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Score the pairs named in ``argv`` (all by default) and print the table and the wrong pairs.

    ``--offline``: the offline table instead (:mod:`offline`: ``Recorder`` + ``compare_runs`` against the live
    ``compare``, and ``import_weights`` against the hand copy).
    ``--new``: the enumerated pairs only (pairs_enum.py, pairs_convert.py), each also with a 3-step AdamW
    check and the count of wrong pairs proposed at confidence >= 0.9. ``--calibrated``: instead of the
    table above, ``compare_mode="calibrated"`` with no tolerance (calibrated.py): each pair's 3-step AdamW
    verdict and largest noise ratio in both torch orders, the planted faults, the bfloat16 subset and the
    margin between correct ports and faults.
    """
    import os

    from .pairs_enum import ENV

    if "--offline" in argv:  # the offline table (tests/real_pairs/offline.py): hand-written pairs
        from .offline import main as offline_main

        return offline_main([a for a in argv if a != "--offline"])
    os.environ.setdefault(ENV, "1")
    new = "--new" in argv
    calibrated = "--calibrated" in argv
    argv = [a for a in argv if a not in ("--new", "--calibrated")]
    pool = new_pairs() if new else all_pairs()
    chosen = [p for p in pool if not argv or p.name in argv]
    if calibrated:
        from .calibrated import print_margin

        print_margin([p for p in chosen if not _skipped(p)])
        return 0
    rows: list[Row] = []
    for pair in chosen:
        if _skipped(pair):
            continue
        for reverse in (False, True):
            rows.append(score_pair(pair, reverse))
            print(f"done {pair.name} {rows[-1].order} in {rows[-1].seconds:.0f}s", file=sys.stderr)
    print(table(rows))
    print()
    print(checks_table(rows))
    if new:
        print("\n| pair | order | proposed at confidence >= 0.9 and wrong | verdict first_diff | AdamW 3 steps |")
        print("|---|---|---|---|---|")
        adamw = {p.name: adamw_check(p) for p in chosen}
        for r in rows:
            v, at = adamw.get(r.pair, (None, ""))
            print(f"| {r.pair} | {r.order} | {r.confident_wrong} | {r.verdict_at or '-'} | "
                  f"{v}{' (' + at + ')' if at else ''} |")
    for r in rows:
        if r.score and r.score.wrong:
            print(f"\n{r.pair} ({r.order}) wrong pairs: " + "; ".join(r.score.wrong))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
