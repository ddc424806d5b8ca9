"""``compare_mode="calibrated"`` on the real pairs: the noise ratios of correct ports and of planted faults.

Run from the repository root in the real-pairs venv::

    python -m tests.real_pairs.score --calibrated [PAIR ...]

Per pair, as built and reversed: ``compare(auto_weights=True, layer_map="auto", steps=3,
optimizer=[AdamW, AdamW], compare_mode="calibrated")`` with no tolerance (the correct port must
pass), the largest noise ratio over its records and where. Per pair, as built: generic planted
faults on the torch side (a fault in the original is a difference the port must be blamed for at
that layer), each run once with ``steps=1`` in calibrated mode:

- ``scale``: the output of the pair's ``fault_leaf`` times 1.001 (a forward hook);
- ``eps``: the first LayerNorm / RMSNorm called gets its epsilon moved by a decade (1e-5 <-> 1e-6);
- ``gelu_tanh``: the first leaf whose output is exactly ``gelu(input)`` computes the tanh approximation;
- ``no_sqrt_d``: ``scaled_dot_product_attention`` called with ``scale=1`` (the missing ``1/sqrt(d)``);
- ``mask``: one element of the attention mask ``scaled_dot_product_attention`` gets (or the causal one it
  builds) flipped.

A fault is *named* when the report's ``first_diff`` is the innermost compared torch layer holding
the planted site, or a layer inside the faulty module (the attention module's output projection). A
fault whose pair has no such site (no LayerNorm, no GELU, no attention) is n/a.
The bfloat16 subset runs torch in bfloat16 and paddle emulating it (float32 compute on the same
bfloat16 weights and inputs, every paddle leaf output rounded to bfloat16): paddle's CPU build has no
bfloat16 matmul or LayerNorm kernel.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from padiff.compare.calibrated import K_AFTER_STEP, K

from .handcopy import within
from .pairs import RealPair
from .score import ADAMW, _quiet, build

CAL = {"compare_mode": "calibrated"}
SCALE = 1.001
FAULTS = ("scale", "eps", "gelu_tanh", "no_sqrt_d", "mask")
BF16_PAIRS = ("resnet18", "vit", "llama")


# --- the correct port under AdamW ---------------------------------------------------------

@dataclass
class CalRow:
    """One correct port in one torch order: the verdict and its largest noise ratio."""

    pair: str
    order: str
    verdict: bool | None = None
    max_ratio: float = math.nan
    max_at: str = ""
    first_step_max: float = math.nan  # the largest ratio of step 0 (judged with K; later steps with K_AFTER_STEP)
    judged: int = 0
    fell_back: int = 0
    first_diff: str = ""
    seconds: float = 0.0
    error: str = ""


def _where(r: Any) -> str:
    return f"{r.stage}@{r.step} {r.torch_path or '<root>'} [{r.item}]"


def summarize(rep: Any, row: CalRow) -> CalRow:
    """Fill ``row`` from report ``rep``: verdict, largest ratio and where, judged / fallback counts."""
    ratios = [(r.stats.noise_ratio, _where(r)) for r in rep.records if not math.isnan(r.stats.noise_ratio)]
    row.verdict = bool(rep)
    row.judged = len(ratios)
    row.fell_back = sum(r.stats.note_kind == "fallback" for r in rep.records)
    if ratios:
        row.max_ratio, row.max_at = max(ratios)
    row.first_step_max = max((r.stats.noise_ratio for r in rep.records
                              if r.step == 0 and not math.isnan(r.stats.noise_ratio)), default=math.nan)
    first = rep.first_diff
    if first is not None:
        row.first_diff = f"{_where(first)} {first.stats.noise_ratio:.3g}x {first.stats.note[:160]}"
    return row


def adamw_optimizers(layer: Any, module: Any) -> list[Any]:
    """``[paddle AdamW, torch AdamW]`` with score.py's equal settings."""
    import paddle
    import torch

    return [paddle.optimizer.AdamW(learning_rate=ADAMW["lr"], beta1=ADAMW["betas"][0], beta2=ADAMW["betas"][1],
                                   epsilon=ADAMW["eps"], weight_decay=ADAMW["weight_decay"],
                                   parameters=layer.parameters()),
            torch.optim.AdamW(module.parameters(), lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"],
                              weight_decay=ADAMW["weight_decay"])]


def calibrated_adamw(pair: RealPair, reverse: bool = False, steps: int = 3) -> CalRow:
    """The correct port, ``steps`` AdamW steps, calibrated, no tolerance."""
    import padiff

    row = CalRow(pair.name, "reversed" if reverse else "as built")
    start = time.time()
    try:
        layer, module, p_inp, t_inp = build(pair, reverse)
        with _quiet():
            rep = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True, layer_map="auto", steps=steps,
                                 optimizer=adamw_optimizers(layer, module), options=CAL)
        summarize(rep, row)
    except Exception as exc:  # noqa: BLE001 - a pair that breaks is a row saying so
        row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    row.seconds = time.time() - start
    return row


# --- planted faults ------------------------------------------------------------------------

@dataclass
class Planted:
    """A fault in the torch model: where it is, and how to take it out again."""

    site: str  # torch path of the module holding the fault
    undo: Callable[[], None]
    what: str = ""


@dataclass
class FaultRow:
    """One planted fault on one pair."""

    pair: str
    fault: str
    site: str = ""  # where it was planted ("" when the pair has no such site)
    expected: str = ""  # the innermost compared torch layer holding the site
    verdict: bool | None = None
    first_diff: str = ""
    ratio: float = math.nan  # the noise ratio at the first difference
    site_ratio: float = math.nan  # the largest forward noise ratio at the expected layer
    named: bool | None = None
    what: str = ""
    seconds: float = 0.0
    error: str = ""


def _call_order(module: Any, t_inp: dict[str, Any]) -> list[tuple[str, Any, tuple, Any]]:
    """(path, module, args, output) of every module call of one no-grad forward, in call order."""
    import torch

    seen: list[tuple[str, Any, tuple, Any]] = []
    names = {id(m): n for n, m in module.named_modules()}
    handles = [m.register_forward_hook(lambda mod, args, out: seen.append((names[id(mod)], mod, args, out)))
               for m in module.modules()]
    state = {k: v.clone() for k, v in module.state_dict().items()}  # a train-mode BatchNorm's statistics
    try:
        with torch.no_grad():
            module(**t_inp)
    finally:
        for h in handles:
            h.remove()
        module.load_state_dict(state)
    return seen


def _scale(module: Any, t_inp: dict[str, Any], pair: RealPair) -> Planted | None:
    def scaled(mod: Any, args: Any, out: Any) -> Any:
        return (out[0] * SCALE, *out[1:]) if isinstance(out, tuple) else out * SCALE

    handle = dict(module.named_modules())[pair.fault_leaf].register_forward_hook(scaled)
    return Planted(pair.fault_leaf, handle.remove, f"output x{SCALE}")


_EPS_ATTRS = ("eps", "variance_epsilon", "epsilon")


def _eps(module: Any, t_inp: dict[str, Any], pair: RealPair) -> Planted | None:
    for path, mod, _, _ in _call_order(module, t_inp):
        name = type(mod).__name__.lower()
        if "norm" not in name or "batch" in name:
            continue
        for attr in _EPS_ATTRS:
            old = getattr(mod, attr, None)
            if isinstance(old, float) and old > 0:
                new = old / 10 if old >= 1e-5 else old * 10
                setattr(mod, attr, new)
                return Planted(path, lambda m=mod, a=attr, o=old: setattr(m, a, o), f"{attr} {old:g} -> {new:g}")
    return None


def _gelu_tanh(module: Any, t_inp: dict[str, Any], pair: RealPair) -> Planted | None:
    import torch

    for path, mod, args, out in _call_order(module, t_inp):
        if any(True for _ in mod.children()) or len(args) != 1 or not torch.is_tensor(args[0]):
            continue
        x = args[0]
        if torch.is_tensor(out) and x.is_floating_point() and out.shape == x.shape and x.numel() > 1 and \
                torch.equal(out, torch.nn.functional.gelu(x)):
            handle = mod.register_forward_hook(
                lambda m, a, o: torch.nn.functional.gelu(a[0], approximate="tanh"))
            return Planted(path, handle.remove, f"{type(mod).__name__} -> gelu(approximate='tanh')")
    return None


@contextlib.contextmanager
def _patched(function: str, change: Callable[..., tuple[tuple, dict] | None], module: Any) -> Iterator[list[str]]:
    """``torch.nn.functional.<function>`` with its arguments changed by ``change``; yields the list the
    torch path (in ``module``) of the innermost module of each call is appended to."""
    import torch

    f = torch.nn.functional
    original = getattr(f, function)
    stack: list[str] = []
    sites: list[str] = []
    names = {id(m): n for n, m in module.named_modules()}

    def pre(mod: Any, args: Any) -> None:
        stack.append(names.get(id(mod), ""))

    def post(mod: Any, args: Any, out: Any) -> None:
        if stack:
            stack.pop()

    def patched(*args: Any, **kwargs: Any) -> Any:
        changed = change(*args, **kwargs)
        if changed is None:  # a call the fault does not apply to (a GELU already approximate)
            return original(*args, **kwargs)
        sites.append(stack[-1] if stack else "")
        return original(*changed[0], **changed[1])

    h1 = torch.nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = torch.nn.modules.module.register_module_forward_hook(post)
    setattr(f, function, patched)
    try:
        yield sites
    finally:
        setattr(f, function, original)
        h1.remove()
        h2.remove()


def _sdpa_args(args: tuple, kwargs: dict) -> dict:
    keys = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")
    return {**dict(zip(keys, args)), **kwargs}


def _tanh_gelu(*args: Any, **kwargs: Any) -> tuple[tuple, dict] | None:
    kw = {**dict(zip(("input", "approximate"), args)), **kwargs}
    return None if kw.get("approximate", "none") != "none" else ((), {**kw, "approximate": "tanh"})


def _no_scale(*args: Any, **kwargs: Any) -> tuple[tuple, dict]:
    return (), {**_sdpa_args(args, kwargs), "scale": 1.0}


def _flip_mask(*args: Any, **kwargs: Any) -> tuple[tuple, dict]:
    """One element of the mask flipped: the causal mask built explicitly, or the given one (bool or additive)."""
    import torch

    kw = _sdpa_args(args, kwargs)
    q, k = kw["query"], kw["key"]
    mask = kw.get("attn_mask")
    if kw.pop("is_causal", False):
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    if mask is None:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device)
    mask = mask.clone()
    flat = mask.reshape(-1, *mask.shape[-2:])[0]  # the first batch/head slice (a broadcast mask: all of them)
    if mask.dtype == torch.bool:
        flat[0, 1 if flat.shape[1] > 1 else 0] = ~flat[0, 1 if flat.shape[1] > 1 else 0]
    else:
        lowest = torch.finfo(mask.dtype).min
        hidden = flat[0, 1] < lowest / 2 if flat.shape[1] > 1 else False
        flat[0, 1 if flat.shape[1] > 1 else 0] = 0.0 if hidden else lowest
    kw["attn_mask"] = mask
    return (), kw


def proposed_map(pair: RealPair, reverse: bool = False) -> Any:
    """``padiff.suggest_layer_map`` on the correct port (what ``layer_map="auto"`` uses, special pairs aside):
    the faults are planted under it, as score.py plants its fault under the correct port's map."""
    import padiff

    layer, module, p_inp, t_inp = build(pair, reverse)
    with _quiet():
        return padiff.suggest_layer_map(layer, module, ({**p_inp}, {**t_inp}))


def run_fault(pair: RealPair, fault: str, reverse: bool = False, lm: Any = None) -> FaultRow:
    """Plant ``fault`` in the torch model and run calibrated ``compare`` once (one step, no tolerance) under the
    correct port's proposed map ``lm`` (:func:`proposed_map` when not given)."""
    import padiff
    from padiff.assign import with_special_pairs

    row = FaultRow(pair.name, fault)
    start = time.time()
    try:
        lm = proposed_map(pair, reverse) if lm is None else lm
        layer, module, p_inp, t_inp = build(pair, reverse)
        with contextlib.ExitStack() as stack:
            planted: Planted | None = None
            if fault == "gelu_tanh":  # a GELU module that keeps its own function is found by its output
                planted = _gelu_tanh(module, t_inp, pair)
                if planted is not None:
                    stack.callback(planted.undo)
            if fault in ("no_sqrt_d", "mask") or (fault == "gelu_tanh" and planted is None):
                function, change, what = {
                    "no_sqrt_d": ("scaled_dot_product_attention", _no_scale, "scale=1"),
                    "mask": ("scaled_dot_product_attention", _flip_mask, "one mask element flipped"),
                    "gelu_tanh": ("gelu", _tanh_gelu, "approximate='tanh'")}[fault]
                sites = stack.enter_context(_patched(function, change, module))
                _call_order(module, t_inp)  # a probe forward: which module calls it first
                if not sites:
                    row.seconds = time.time() - start
                    return row
                planted = Planted(sites[0] or "<root>", lambda: None, f"F.{function} {what}")
            elif planted is None:
                planted = {"scale": _scale, "eps": _eps, "gelu_tanh": _gelu_tanh}[fault](module, t_inp, pair)
                if planted is None:
                    row.seconds = time.time() - start
                    return row
                stack.callback(planted.undo)
            row.site, row.what = planted.site, planted.what
            with _quiet():
                rep = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True,
                                     layer_map=with_special_pairs(lm, layer, module), options=CAL)
        compared = {r.torch_path for r in rep.records if r.stage == "forward"}
        site = "" if row.site == "<root>" else row.site
        holders = [p for p in compared if within(site, p)]
        row.expected = max(holders, key=len) if holders else ""
        row.verdict = bool(rep)
        first = rep.first_diff
        if first is not None:
            row.first_diff = f"{_where(first)}"
            row.ratio = first.stats.noise_ratio
        # at the innermost compared layer holding the fault, or at one inside the faulty module (an
        # attention module's output projection, when the attention module itself is not compared)
        row.named = first is not None and (first.torch_path == row.expected or within(first.torch_path, site))
        row.site_ratio = max((r.stats.noise_ratio for r in rep.records if r.stage == "forward"
                              and r.torch_path == row.expected), default=math.nan)
    except Exception as exc:  # noqa: BLE001 - reported, the table goes on
        row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    row.seconds = time.time() - start
    return row


def run_faults(pair: RealPair, faults: tuple[str, ...] = FAULTS, reverse: bool = False) -> list[FaultRow]:
    """Every fault of ``faults`` on ``pair``, under one proposal of the correct port."""
    try:
        lm = proposed_map(pair, reverse)
    except Exception as exc:  # noqa: BLE001
        return [FaultRow(pair.name, f, error=f"{type(exc).__name__}: {str(exc)[:200]}") for f in faults]
    return [run_fault(pair, f, reverse, lm) for f in faults]


# --- bfloat16 -----------------------------------------------------------------------------

def bf16_build(pair: RealPair, reverse: bool = False) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """The pair with torch in bfloat16 and paddle emulating it: float inputs rounded to bfloat16 on both sides,
    torch's parameters and persistent float buffers cast to bfloat16 (paddle gets them by ``auto_weights``),
    every paddle leaf layer's float output rounded to bfloat16."""
    import paddle
    import torch

    layer, module, p_inp, t_inp = build(pair, reverse)
    persistent = set(module.state_dict())
    with torch.no_grad():
        for p in module.parameters():
            p.data = p.data.to(torch.bfloat16)
        for name, b in module.named_buffers():
            if name in persistent and b.is_floating_point():
                owner_path, _, attr = name.rpartition(".")
                setattr(module.get_submodule(owner_path) if owner_path else module, attr, b.to(torch.bfloat16))
    t16 = {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in t_inp.items()}
    p16 = {k: paddle.to_tensor(t16[kt].float().numpy()) if torch.is_tensor(t16[kt]) and t16[kt].is_floating_point()
           else v for (k, v), kt in zip(p_inp.items(), t_inp)}

    def rounded(lay: Any, args: Any, out: Any) -> Any:
        if isinstance(out, paddle.Tensor) and out.dtype == paddle.float32:
            return out.astype("bfloat16").astype("float32")
        return out

    for sub in layer.sublayers():
        if not sub.sublayers():
            sub.register_forward_post_hook(rounded)
    return layer, module, p16, t16


def calibrated_bf16(pair: RealPair, reverse: bool = False) -> CalRow:
    """The bfloat16 pair, one step (forward, backward), calibrated, no tolerance."""
    import padiff

    row = CalRow(pair.name, ("reversed" if reverse else "as built") + ", bfloat16")
    start = time.time()
    try:
        layer, module, p_inp, t_inp = bf16_build(pair, reverse)
        with _quiet():
            rep = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True, layer_map="auto", options=CAL)
        summarize(rep, row)
    except Exception as exc:  # noqa: BLE001
        row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    row.seconds = time.time() - start
    return row


# --- the table ----------------------------------------------------------------------------

@dataclass
class Margin:
    """The correct ports' largest ratio and the faults' smallest, over everything run."""

    correct: list[CalRow] = field(default_factory=list)
    faults: list[FaultRow] = field(default_factory=list)

    def largest_correct(self) -> tuple[float, str]:
        """The largest ratio over every record of the correct ports (any step) and where."""
        rows = [r for r in self.correct if not math.isnan(r.max_ratio)]
        top = max(rows, key=lambda r: r.max_ratio, default=None)
        return (top.max_ratio, f"{top.pair} ({top.order}) {top.max_at}") if top else (math.nan, "")

    def largest_first_step(self) -> tuple[float, str]:
        """The largest ratio of the correct ports' first step (judged with K) and which pair."""
        rows = [r for r in self.correct if not math.isnan(r.first_step_max)]
        top = max(rows, key=lambda r: r.first_step_max, default=None)
        return (top.first_step_max, f"{top.pair} ({top.order})") if top else (math.nan, "")

    def smallest_fault(self) -> tuple[float, str]:
        rows = [r for r in self.faults if r.verdict is False and not math.isnan(r.ratio)]
        low = min(rows, key=lambda r: r.ratio, default=None)
        return (low.ratio, f"{low.pair} {low.fault} at {low.first_diff}") if low else (math.nan, "")


def _r(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.3g}x"


def correct_table(rows: list[CalRow]) -> str:
    """Correct ports as a markdown table."""
    lines = ["| pair | order | calibrated verdict | largest ratio | at | largest at step 0 | judged | fell back | "
             "first diff | s |", "|" + "---|" * 10]
    for r in rows:
        verdict = f"error: {r.error}" if r.error else str(r.verdict)
        lines.append(f"| {r.pair} | {r.order} | {verdict} | {_r(r.max_ratio)} | {r.max_at} | "
                     f"{_r(r.first_step_max)} | {r.judged} | {r.fell_back} | {r.first_diff or '-'} | {r.seconds:.0f} |")
    return "\n".join(lines)


def fault_table(rows: list[FaultRow]) -> str:
    """Planted faults as a markdown table."""
    lines = ["| pair | fault | planted at | expected | verdict | first diff | ratio | ratio at expected | named | s |",
             "|" + "---|" * 10]
    for r in rows:
        if not r.site and not r.error:
            continue
        named = f"error: {r.error}" if r.error else ("yes" if r.named else "no")
        lines.append(f"| {r.pair} | {r.fault} ({r.what}) | {r.site} | {r.expected} | {r.verdict} | "
                     f"{r.first_diff or '-'} | {_r(r.ratio)} | {_r(r.site_ratio)} | {named} | {r.seconds:.0f} |")
    return "\n".join(lines)


def print_margin(pairs: list[RealPair], faults: tuple[str, ...] = FAULTS, orders: tuple[bool, ...] = (False, True),
                 bf16: tuple[str, ...] = BF16_PAIRS) -> Margin:
    """Run everything on ``pairs``, printing progress to stderr and the tables and the margin to stdout."""
    import sys

    margin = Margin()
    for pair in pairs:
        for reverse in orders:
            margin.correct.append(calibrated_adamw(pair, reverse))
            print(f"adamw {pair.name} {margin.correct[-1].order}: {margin.correct[-1]}", file=sys.stderr, flush=True)
    for pair in pairs:
        if pair.name in bf16:
            margin.correct.append(calibrated_bf16(pair))
            print(f"bf16 {pair.name}: {margin.correct[-1]}", file=sys.stderr, flush=True)
    for pair in pairs:
        for row in run_faults(pair, faults):
            margin.faults.append(row)
            print(f"fault {pair.name} {row.fault}: {row}", file=sys.stderr, flush=True)
    print(correct_table(margin.correct))
    print()
    print(fault_table(margin.faults))
    hi, hi_at = margin.largest_first_step()
    after, after_at = margin.largest_correct()
    lo, lo_at = margin.smallest_fault()
    passed = [f"{r.pair} {r.fault}" for r in margin.faults if r.site and r.verdict]
    print(f"\nlargest ratio of a correct port on the first step (k = {K:g}): {_r(hi)} ({hi_at})")
    print(f"largest ratio of a correct port on any step (k = {K_AFTER_STEP:g} after the first): {_r(after)} "
          f"({after_at})")
    print(f"smallest ratio at a failing planted fault: {_r(lo)} ({lo_at})")
    print(f"margin: {lo / hi:.3g}x" if hi == hi and lo == lo and hi > 0 else "margin: n/a")
    if passed:
        print("planted faults that passed: " + "; ".join(passed))
    return margin
