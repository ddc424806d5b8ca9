"""Offline = live on the real pairs: ``Recorder`` + ``compare_runs`` against ``compare``, and ``import_weights``.

``python -m tests.real_pairs.score --offline [PAIR ...]`` prints the table; ``test_offline_real.py`` asserts it.

Per pair, as built and with the torch definition order reversed (:func:`score.build`):

- this process builds both models, makes the hand copy (:mod:`handcopy`) and saves both states, and
  saves the map ``suggest_layer_map`` proposes; it runs ``compare`` live (2 AdamW steps, padiff's
  built-in loss) with that map and with ``"auto"``, and once more with the planted fault (the torch
  ``fault_leaf``'s output scaled by ``score.FAULT_SCALE`` from step 1 on);
- :mod:`offline_side` records each side in its own process, the other framework never imported:
  torch exports its weights and records a correct and a faulty run; paddle imports the weights with
  ``"auto"`` and with the saved map (each must equal the hand copy's, or be refused), then records;
- ``compare_runs`` with ``"auto"`` and the saved map must give the live verdict, stages and first
  difference, and name the fault at its leaf and step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .handcopy import apply_copy
from .pairs import RealPair
from .score import ADAMW, FAULT_SCALE, OPTIONS, _quiet, build, missing_requirements

STEPS = 2
FAULT_STEP = 1
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _key(r: Any) -> tuple[str, int, str, str, str] | None:
    return None if r is None else (r.stage, r.step, r.paddle_path, r.torch_path, r.item)


@dataclass
class Agreement:
    """How one offline report agrees with the live one."""

    verdict: bool | None = None  # the offline verdict
    same_verdict: bool = False
    same_stages: bool = False
    same_first: bool = False
    only_live: int = 0  # records only the live report has
    only_offline: int = 0
    passed_differs: int = 0  # records both have, passing in one only
    first: str = ""
    error: str = ""

    def short(self) -> str:
        if self.error:
            return "error: " + self.error
        s = str(self.verdict)
        if not self.same_verdict:
            s += " (live differs)"
        extra = []
        if not self.same_stages:
            extra.append("stages differ")
        if not self.same_first:
            extra.append(f"first diff {self.first}")
        if self.only_live or self.only_offline or self.passed_differs:
            extra.append(f"records: {self.only_live} live only, {self.only_offline} offline only, "
                         f"{self.passed_differs} verdict differs")
        return s + (f" [{'; '.join(extra)}]" if extra else "")


def agreement(live: Any, off: Any) -> Agreement:
    """Compare an offline report with the live one, record by record."""
    lk = {(r.stage, r.step, r.paddle_path, r.torch_path, r.item): r for r in live.records}
    ok = {(r.stage, r.step, r.paddle_path, r.torch_path, r.item): r for r in off.records}
    both = set(lk) & set(ok)
    first = off.first_diff
    return Agreement(
        verdict=bool(off), same_verdict=bool(off) == bool(live), same_stages=list(off.stages) == list(live.stages),
        same_first=_key(first) == _key(live.first_diff), only_live=len(set(lk) - set(ok)),
        only_offline=len(set(ok) - set(lk)), passed_differs=sum(lk[k].passed != ok[k].passed for k in both),
        first=_where(first))


def _where(r: Any) -> str:
    return "(none)" if r is None else f"{r.stage} step {r.step}: {r.paddle_path} <-> {r.torch_path} {r.item}".strip()


@dataclass
class OfflineRow:
    """One line of the table: one pair in one torch definition order."""

    pair: str
    order: str
    live: bool | None = None
    live_auto: bool | None = None
    live_first: str = ""
    imports: dict[str, str] = field(default_factory=dict)  # "auto"/"map" -> "equal" / "refused: ..." / "WRONG: ..."
    offline: dict[str, Agreement] = field(default_factory=dict)  # "auto"/"map"
    fault: dict[str, str] = field(default_factory=dict)  # "live"/"auto"/"map" -> where the first diff is
    fault_named: dict[str, bool] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""
    reports: dict[str, Any] = field(default_factory=dict)  # kept for the tests: live/offline reports


def _adamw_pair(layer: Any, module: Any) -> list[Any]:
    import paddle
    import torch

    return [paddle.optimizer.AdamW(learning_rate=ADAMW["lr"], beta1=ADAMW["betas"][0], beta2=ADAMW["betas"][1],
                                   epsilon=ADAMW["eps"], weight_decay=ADAMW["weight_decay"],
                                   parameters=layer.parameters()),
            torch.optim.AdamW(module.parameters(), lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"],
                              weight_decay=ADAMW["weight_decay"])]


def _copied(pair: RealPair, reverse: bool) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    layer, module, p_inp, t_inp = build(pair, reverse)
    apply_copy(layer, module, pair.copy(layer, module))
    return layer, module, p_inp, t_inp


def live_run(pair: RealPair, reverse: bool, layer_map: Any, fault: bool = False) -> Any:
    """``compare`` on the hand-copied models: 2 AdamW steps, the built-in loss; ``fault`` plants the scale."""
    import padiff
    from padiff.adapters import PADDLE, TORCH
    from padiff.runtime.engine.calls import builtin_loss

    layer, module, p_inp, t_inp = _copied(pair, reverse)
    loss_fn = None
    handle = None
    if fault:
        state = {"step": 0}

        def planted(_m: Any, _i: Any, o: Any) -> Any:
            if state["step"] < FAULT_STEP:
                return None
            return (o[0] * FAULT_SCALE, *o[1:]) if isinstance(o, tuple) else o * FAULT_SCALE

        def t_loss(out: Any) -> Any:
            state["step"] += 1  # the next forward is the next step's
            return builtin_loss(TORCH, out)[0]

        handle = dict(module.named_modules())[pair.fault_leaf].register_forward_hook(planted)
        loss_fn = [lambda out: builtin_loss(PADDLE, out)[0], t_loss]
    try:
        with _quiet():
            return padiff.compare(layer, module, (p_inp, t_inp), steps=STEPS, optimizer=_adamw_pair(layer, module),
                                  layer_map=layer_map, options=OPTIONS, loss_fn=loss_fn)
    finally:
        if handle is not None:
            handle.remove()


def prepare(pair: RealPair, reverse: bool, work: str) -> None:
    """Save both hand-copied states and the ``suggest_layer_map`` proposal into ``work``."""
    import padiff

    layer, module, p_inp, t_inp = _copied(pair, reverse)
    np.savez(os.path.join(work, "pd_state.npz"), **{k: np.asarray(v.numpy()) for k, v in layer.state_dict().items()})
    np.savez(os.path.join(work, "pt_state.npz"),
             **{k: v.detach().cpu().numpy() for k, v in module.state_dict().items()})
    with _quiet():
        lm = padiff.suggest_layer_map(layer, module, ({**p_inp}, {**t_inp}))
    lm.save(os.path.join(work, "map.yaml"))


def _env() -> dict[str, str]:
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), GLOG_minloglevel="2")
    for k in ("RANK", "WORLD_SIZE", "PADDLE_TRAINER_ID", "PADDLE_TRAINERS_NUM"):
        e.pop(k, None)
    return e


def record_sides(pair: RealPair, reverse: bool, work: str) -> None:
    """Run :mod:`offline_side` for torch (export, records) then paddle (imports, record)."""
    for fw in ("torch", "paddle"):
        cmd = [sys.executable, "-m", "tests.real_pairs.offline_side", fw, pair.name, work, "--steps", str(STEPS),
               "--fault-step", str(FAULT_STEP), *(["--reverse"] if reverse else [])]
        p = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            tail = (p.stderr or p.stdout).strip().splitlines()
            raise RuntimeError(f"{fw} side failed: {tail[-1] if tail else p.returncode}\n" + "\n".join(tail[-30:]))


def _import_cell(res: dict[str, Any]) -> str:
    if res.get("refused"):
        changed = res.get("changed_on_refusal") or []
        return "refused" + (f" BUT CHANGED {changed[:3]}" if changed else "")
    if res["wrong"]:
        return f"WRONG {len(res['wrong'])}: {', '.join(res['wrong'][:3])}"
    return "equal"


def offline_row(pair: RealPair, reverse: bool, keep: str | None = None) -> OfflineRow:
    """Everything the offline table says about one pair in one order (``keep``: the work folder to use)."""
    import padiff

    row = OfflineRow(pair.name, "reversed" if reverse else "as built")
    start = time.time()
    work = keep or tempfile.mkdtemp(prefix=f"padiff_offline_{pair.name.replace(':', '_')}_")
    os.makedirs(work, exist_ok=True)
    try:
        prepare(pair, reverse, work)
        map_path = os.path.join(work, "map.yaml")
        saved = padiff.LayerMap.load(map_path)  # the file compare_runs and import_weights read
        live = {"map": live_run(pair, reverse, saved), "auto": live_run(pair, reverse, "auto")}
        live_fault = live_run(pair, reverse, saved, fault=True)
        row.live, row.live_auto = bool(live["map"]), bool(live["auto"])
        row.live_first = _where(live["map"].first_diff)
        row.fault["live"] = _where(live_fault.first_diff)
        row.fault_named["live"] = _named(live_fault, pair)
        row.reports.update({"live_map": live["map"], "live_auto": live["auto"], "live_fault": live_fault})
        record_sides(pair, reverse, work)
        with open(os.path.join(work, "import.json")) as f:
            imports = json.load(f)
        row.imports = {k: _import_cell(v) for k, v in imports.items()}
        row.reports["imports"] = imports
        for key, lm in (("auto", "auto"), ("map", map_path)):
            with _quiet():
                off = padiff.compare_runs(os.path.join(work, "pd"), os.path.join(work, "pt"), layer_map=lm,
                                          options=OPTIONS)
                off_fault = padiff.compare_runs(os.path.join(work, "pd"), os.path.join(work, "pt_fault"),
                                                layer_map=lm, options=OPTIONS)
            row.offline[key] = agreement(live[key], off)
            row.fault[key] = _where(off_fault.first_diff)
            row.fault_named[key] = _named(off_fault, pair)
            row.reports[f"offline_{key}"], row.reports[f"offline_fault_{key}"] = off, off_fault
    except Exception as exc:  # noqa: BLE001 - a pair that breaks is a row saying so, the table goes on
        text = str(exc).strip().splitlines()
        row.error = f"{type(exc).__name__}: {text[0][:300] if text else ''}"
        row.reports["traceback"] = str(exc)
    row.seconds = time.time() - start
    return row


def _named(rep: Any, pair: RealPair) -> bool:
    first = rep.first_diff
    return first is not None and first.torch_path == pair.fault_leaf and first.step == FAULT_STEP


def table(rows: list[OfflineRow]) -> str:
    """The rows as a markdown table."""
    lines = ["| pair | order | import auto | import map | live (map / auto) | offline auto | offline map | "
             "fault named (live / auto / map) | s |", "|" + "---|" * 9]
    for r in rows:
        if r.error and not r.offline:
            lines.append(f"| {r.pair} | {r.order} | {r.imports.get('auto', '')} | {r.imports.get('map', '')} | "
                         f"{r.live} / {r.live_auto} | error: {r.error} | | | {r.seconds:.0f} |")
            continue
        named = " / ".join("yes" if r.fault_named.get(k) else f"no ({r.fault.get(k, '')})"
                           for k in ("live", "auto", "map"))
        lines.append(f"| {r.pair} | {r.order} | {r.imports.get('auto', '')} | {r.imports.get('map', '')} | "
                     f"{r.live} / {r.live_auto} | {r.offline['auto'].short()} | {r.offline['map'].short()} | "
                     f"{named} | {r.seconds:.0f} |")
    return "\n".join(lines)


def main(names: list[str]) -> int:
    """Print the offline table for the hand-written pairs called ``names`` (all by default)."""
    from .pairs import PAIRS

    chosen = [p for p in PAIRS if not names or p.name in names]
    rows = []
    for pair in chosen:
        missing = missing_requirements(pair)
        if missing:
            print(f"skip {pair.name}: {', '.join(missing)} not installed", file=sys.stderr)
            continue
        for reverse in (False, True):
            rows.append(offline_row(pair, reverse))
            r = rows[-1]
            print(f"done {r.pair} {r.order} in {r.seconds:.0f}s{' ' + r.error if r.error else ''}", file=sys.stderr)
            if r.error:
                print(r.reports.get("traceback", ""), file=sys.stderr)
    print(table(rows))
    return 0
