"""The public entry points ``compare`` and ``auto_diff``: validate, prepare, run, restore.

Everything the user passes is checked here first (so misuse is a clear ``PadiffError``,
never a traceback from inside a framework), the models' state is snapshotted, the engine
runs, and the state is restored in ``finally`` whatever happened.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from padiff.errors import InputError, OptionsError, PadiffError, WeightAssignError
from padiff.layer_map import LayerMap, ResolvedMap
from padiff.options import DiffOptions, validate_steps
from padiff.report.records import Comparison, DiffReport
from padiff.runtime.adapters import PADDLE, TORCH, Side
from padiff.runtime.compare import Stats
from padiff.runtime.engine import Engine, RunSpec
from padiff.runtime.state import SideSnapshot

log = logging.getLogger("padiff")


def compare(
    layer: Any,
    module: Any,
    example_inp: Any,
    auto_weights: bool = False,
    steps: int = 1,
    options: Mapping[str, Any] | None = None,
    layer_map: Any = None,
    loss_fn: Any = None,
    optimizer: Any = None,
    *,
    report: str | None = None,
    json_path: str | None = None,
    log_dir: str | None = None,
) -> DiffReport:
    """Run the paddle ``layer`` and torch ``module`` side by side and return a :class:`DiffReport`.

    Same arguments as :func:`auto_diff`; ``report`` writes an HTML report, ``json_path``
    a JSON dump. The report is truthy iff everything compared agreed.
    """
    opts = DiffOptions.from_mapping(options)
    check_models(layer, module)
    p_inp, t_inp = check_example_inp(example_inp, layer, module)
    # inputs computed from other tensors: the run's backward stops at them (fresh dicts, user's untouched)
    p_inp = {k: PADDLE.map_tensors(v, PADDLE.cut_graph) for k, v in p_inp.items()}
    t_inp = {k: TORCH.map_tensors(v, TORCH.cut_graph) for k, v in t_inp.items()}
    loss_fns = _pair_of_callables(loss_fn, "loss_fn")
    optimizers = _optimizer_pair(optimizer)
    steps = validate_steps(steps, opts, optimizers is not None)
    if not isinstance(auto_weights, bool):
        raise OptionsError(f"auto_weights must be True or False, got {auto_weights!r}.")
    lm = _layer_map(layer_map, layer, module, example_inp)
    resolved = lm.resolve(layer, module)

    rep = DiffReport(options=opts.to_dict(), steps=steps)
    rep.mapping_route = lm.route
    rep.settled_numerically = [n for n in lm.notes if "numeric" in n.lower()]
    rep.paddle_tree = _tree(PADDLE, layer)
    rep.torch_tree = _tree(TORCH, module)
    rep.paddle_root_class, rep.torch_root_class = type(layer).__name__, type(module).__name__
    rep.warnings.extend(_randomness_warnings(layer, module))

    training_check = optimizers is not None and opts.checks_backward
    if optimizers is not None and not opts.checks_backward:
        rep.warnings.append("optimizer is not used with diff_phase='forward': no backward pass, so no step. "
                            "Use diff_phase='both' to check training.")
    snaps = [SideSnapshot.take(PADDLE, layer, p_inp, keep_values=False),
             SideSnapshot.take(TORCH, module, t_inp, keep_values=False)]
    # a run that raised or stopped early is no training check the user can use: their grads and
    # BatchNorm statistics come back (weights an optimizer already stepped stay stepped)
    failed = True
    try:
        weights_map = _with_call_order(resolved, lm, layer, module, p_inp, t_inp) if auto_weights else resolved
        if auto_weights and not _assign(layer, module, weights_map, rep):
            return _finish(rep, report, json_path, log_dir)
        if auto_weights:
            # the assigned weights stay: record them as the state to come back to
            snaps[0] = SideSnapshot.take(PADDLE, layer, p_inp, keep_values=False)
        if opts.checks_backward:
            rep.warnings.extend(_inputs_for_backward(layer, module, p_inp, t_inp))
        spec = RunSpec(layer, module, p_inp, t_inp, opts, resolved, steps, loss_fns, optimizers,
                       strict_pairing=not lm.pairs and lm.route == "manual")
        engine = Engine(spec, rep)
        engine.run()
        rep.mapping = [
            {"paddle_path": pr.path, "torch_path": tr.path, "paddle_class": pr.cls, "torch_class": tr.cls}
            for (pr, tr, _) in engine._pairs_seen.values()
        ]
        failed = False
        if not rep.records:  # vacuous agreement would be a silent True
            nan = float("nan")
            rep.records.append(Comparison(
                "forward", 0, "", "", rep.paddle_root_class, rep.torch_root_class,
                Stats(False, nan, nan, 0, 0, nan, nan, nan, math.inf, math.inf, (),
                      "nothing was compared: no layer call could be paired and the outputs hold no tensor"),
                item="model output"))
        rep.warnings.extend(_precision_warnings(rep, opts))
        if not rep and not any("train mode" in w for w in rep.warnings):
            rep.warnings.extend(_randomness_probe(module, t_inp) or _paddle_randomness_probe(layer, p_inp))
    finally:
        for snap in snaps:
            snap.restore(values=failed or not training_check, grads=failed or not training_check)
    return _finish(rep, report, json_path, log_dir)


def auto_diff(
    layer: Any,
    module: Any,
    example_inp: Any,
    auto_weights: bool = False,
    steps: int = 1,
    options: Mapping[str, Any] | None = None,
    layer_map: Any = None,
    loss_fn: Any = None,
    optimizer: Any = None,
    **kwargs: Any,
) -> bool:
    """Compare the two models and print the report; True iff everything agreed (SPEC §1).

    Raises a :class:`~padiff.errors.PadiffError` for misuse, never for a numerical difference.
    """
    unknown = sorted(set(kwargs) - {"report", "json_path", "log_dir"})
    if unknown:
        in_options = [k for k in unknown if k in DiffOptions.valid_keys()]
        hint = (f" {', '.join(in_options)} go{'es' if len(in_options) == 1 else ''} in options, e.g. "
                f"options={{{in_options[0]!r}: ...}}." if in_options else "")
        raise OptionsError(
            f"auto_diff got unknown argument(s) {', '.join(repr(k) for k in unknown)}.{hint} It takes layer, module, "
            "example_inp, auto_weights, steps, options, layer_map, loss_fn, optimizer, report, json_path, log_dir."
        )
    rep = compare(layer, module, example_inp, auto_weights, steps, options, layer_map, loss_fn, optimizer, **kwargs)
    from padiff.report.console import print_report

    print_report(rep)
    return bool(rep)


# --- validation --------------------------------------------------------------------------
def check_models(layer: Any, module: Any) -> None:
    """The paddle model first, the torch model second; say so when they are swapped."""
    if PADDLE.is_model(module) and TORCH.is_model(layer):
        raise InputError("the models are swapped: pass the paddle layer first and the torch module second "
                         "(paddle first everywhere in padiff).")
    if not PADDLE.is_model(layer):
        raise InputError(f"layer must be a paddle.nn.Layer, got {type(layer).__name__}.")
    if not TORCH.is_model(module):
        raise InputError(f"module must be a torch.nn.Module, got {type(module).__name__}.")
    for side, root in ((PADDLE, layer), (TORCH, module)):
        for path, sub in side.named_layers(root):
            if side.is_compiled(sub):
                how = ("paddle.jit.save/load, or call paddle.jit.enable_to_static(False) first for a "
                       "paddle.jit.to_static model" if side is PADDLE else
                       "torch.jit.script/trace (for torch.compile: pass module._orig_mod)")
                raise InputError(
                    f"the {side.name} model{' at ' + path if path else ''} is compiled ({type(sub).__name__}): "
                    f"padiff hooks every layer call and needs the eager model. Pass the model from before {how}."
                )


def check_example_inp(example_inp: Any, layer: Any, module: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``example_inp`` must be ``(paddle_kwargs, torch_kwargs)``; checks halves, tensor kinds and keys."""
    hint = "example_inp must be a pair of dicts (paddle_input, torch_input), e.g. ({'x': paddle_x}, {'x': torch_x})"
    if isinstance(example_inp, Mapping) or not isinstance(example_inp, Sequence) or isinstance(example_inp, str):
        raise InputError(f"{hint}; got {type(example_inp).__name__}.")
    if len(example_inp) != 2:
        raise InputError(f"{hint}; got a sequence of length {len(example_inp)}.")
    p_inp, t_inp = example_inp
    if not isinstance(p_inp, Mapping) or not isinstance(t_inp, Mapping):
        raise InputError(f"{hint}; got ({type(p_inp).__name__}, {type(t_inp).__name__}).")
    p_tensors, t_tensors = PADDLE.flatten(dict(p_inp)), TORCH.flatten(dict(t_inp))
    p_wrong, t_wrong = TORCH.flatten(dict(p_inp)), PADDLE.flatten(dict(t_inp))
    if p_wrong and t_wrong:
        raise InputError("the halves of example_inp are swapped: the first dict holds torch tensors and the second "
                         "paddle tensors. Pass (paddle_input, torch_input).")
    if p_wrong:
        raise InputError("the paddle half of example_inp (the first dict) holds torch tensors; convert them with "
                         "paddle.to_tensor(t.numpy()).")
    if t_wrong:
        raise InputError("the torch half of example_inp (the second dict) holds paddle tensors; convert them with "
                         "torch.from_numpy(t.numpy()).")
    for half, tensors, side, which, convert in ((p_inp, p_tensors, "paddle", "first", "paddle.to_tensor(a)"),
                                                (t_inp, t_tensors, "torch", "second", "torch.from_numpy(a)")):
        bad_keys = [k for k in half if not isinstance(k, str)]
        if bad_keys:
            raise InputError(f"the keys of the {which} dict of example_inp must be the {side} forward's argument "
                             f"names (strings), got {bad_keys[0]!r}.")
        # non-tensor inputs (ints, flags) are allowed; numpy arrays without any tensor are a forgotten conversion
        if not tensors and any(_holds_ndarray(v) for v in half.values()):
            raise InputError(f"the {which} dict of example_inp holds numpy arrays but no {side} tensor; convert "
                             f"them with {convert}.")
    _check_keys(layer, dict(p_inp), "paddle", "first")
    _check_keys(module, dict(t_inp), "torch", "second")
    return dict(p_inp), dict(t_inp)


def _holds_ndarray(value: Any, depth: int = 0) -> bool:
    import numpy as np

    if isinstance(value, np.ndarray):
        return True
    if depth < 5 and isinstance(value, list | tuple):
        return any(_holds_ndarray(v, depth + 1) for v in value)
    if depth < 5 and isinstance(value, Mapping):
        return any(_holds_ndarray(v, depth + 1) for v in value.values())
    return False


def _check_keys(model: Any, inputs: dict[str, Any], side: str, which: str) -> None:
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                           inspect.Parameter.KEYWORD_ONLY)]
    unknown = [k for k in inputs if k not in accepted]
    if unknown:
        raise InputError(
            f"the {side} model's forward does not take {', '.join(repr(k) for k in unknown)} (from the {which} dict "
            f"of example_inp); it takes {', '.join(repr(a) for a in accepted) or 'no keyword arguments'}."
        )
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty
               and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
               and n not in inputs]
    if missing:
        raise InputError(f"the {which} dict of example_inp lacks {', '.join(repr(m) for m in missing)}, which the "
                         f"{side} model's forward requires.")


def _pair_of_callables(value: Any, name: str) -> tuple[Any, Any] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise OptionsError(f"{name} must be [paddle_fn, torch_fn], a pair of callables, got {_describe(value)}.")
    if not all(callable(f) for f in value):
        raise OptionsError(f"both items of {name} must be callables taking the model output.")
    return value[0], value[1]


def _describe(value: Any) -> str:
    if isinstance(value, list | tuple):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    return type(value).__name__


def _optimizer_pair(value: Any) -> tuple[Any, Any] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise OptionsError("optimizer must be [paddle_opt, torch_opt]: two optimizers, or two zero-argument callables "
                           f"that step and clear grads; got {_describe(value)}.")
    for opt, side in zip(value, ("paddle", "torch")):
        ok = callable(opt) or (hasattr(opt, "step") and (hasattr(opt, "clear_grad") or hasattr(opt, "zero_grad")))
        if not ok:
            raise OptionsError(f"the {side} optimizer must be an optimizer or a zero-argument callable, "
                               f"got {type(opt).__name__}.")
    p_opt, t_opt = value
    if hasattr(p_opt, "zero_grad") and not hasattr(p_opt, "clear_grad") and hasattr(t_opt, "clear_grad"):
        raise OptionsError("optimizer is swapped: pass [paddle_opt, torch_opt].")
    return p_opt, t_opt


def _layer_map(value: Any, layer: Any, module: Any, example_inp: Any) -> LayerMap:
    if isinstance(value, str):
        if value != "auto":
            raise InputError(f"layer_map must be a LayerMap, a dict or 'auto', got the string {value!r}.")
        from padiff.graph.suggest import suggest_layer_map
        from padiff.runtime.assign import with_special_pairs

        lm = with_special_pairs(suggest_layer_map(layer, module, example_inp), layer, module)
        from padiff.report.console import print_mapping

        print_mapping(lm)
        return lm
    return LayerMap.coerce(value)


def _with_call_order(resolved: ResolvedMap, lm: LayerMap, layer: Any, module: Any, p_inp: dict[str, Any],
                     t_inp: dict[str, Any]) -> ResolvedMap:
    """Add call-order pairs of stateful layers to a map that has no full correspondences.

    Weights are copied before the run, but default pairing is by call order; a quiet
    discovery forward finds it, so layers defined in another order still get the right
    weights. When the discovery forward fails, tree order is used and the real run will
    report the model's error properly.
    """
    if lm.pairs:
        return resolved
    from padiff.runtime.discovery import discover_pairs

    try:
        found = discover_pairs(layer, module, p_inp, t_inp, resolved)
    except Exception:  # noqa: BLE001 - the compared run raises the model's error with context
        return resolved
    taken_p = {p.paddle_path for p in resolved.pairs}
    taken_t = {p.torch_path for p in resolved.pairs}
    extra = tuple(p for p in found if p.paddle_path not in taken_p and p.torch_path not in taken_t)
    return dataclasses.replace(resolved, pairs=resolved.pairs + extra)


def _assign(layer: Any, module: Any, resolved: Any, rep: DiffReport) -> bool:
    from padiff.runtime.assign import copy_weights, plan_weights

    try:
        plans = plan_weights(layer, module, resolved)
        rep.conversions = copy_weights(layer, module, plans)
        return True
    except WeightAssignError as e:
        rep.assign_error = str(e)
        nan = float("nan")
        stats = Stats(False, nan, nan, 0, 0, nan, nan, nan, nan, nan, (), str(e))
        rep.records.append(Comparison("assign_weight", 0, getattr(e, "paddle_path", ""), getattr(e, "torch_path", ""),
                                      getattr(e, "paddle_class", ""), getattr(e, "torch_class", ""), stats))
        return False


def _tree(side: Side, root: Any) -> list[tuple[str, str, int]]:
    return [(p, type(m).__name__, 0 if p == "" else p.count(".") + 1) for p, m in side.named_layers(root)]


def _randomness_warnings(layer: Any, module: Any) -> list[str]:
    out = []
    for side, root in ((PADDLE, layer), (TORCH, module)):
        for path, m in side.named_layers(root):
            p = getattr(m, "p", None)
            if "dropout" in type(m).__name__.lower() and side.is_training(m) and isinstance(p, float) and p > 0:
                out.append(f"{side.name} {path} ({type(m).__name__}, p={p}) is in train mode: its random masks differ "
                           "between frameworks, so results cannot agree. Call .eval() on both models or set p=0.")
    p_train, t_train = PADDLE.is_training(layer), TORCH.is_training(module)
    if p_train != t_train:
        out.append(f"the paddle model is in {'train' if p_train else 'eval'} mode and the torch model in "
                   f"{'train' if t_train else 'eval'} mode; BatchNorm and Dropout will behave differently.")
    return out


def _inputs_for_backward(layer: Any, module: Any, p_inp: dict[str, Any], t_inp: dict[str, Any]) -> list[str]:
    """Let a model with nothing trainable have a backward pass: its float inputs require grad for the run.

    Without a trainable parameter or an input that requires grad there is no backward
    at all (a parameter-free block, a frozen model). The snapshot taken before puts the
    inputs' flags and grads back afterwards.
    """
    out = []
    for side, root, inp in ((PADDLE, layer, p_inp), (TORCH, module, t_inp)):
        tensors = side.flatten(inp)
        if any(e.trainable for es in side.owned_state(root).values() for e in es) \
                or any(side.requires_grad(t) for t in tensors):
            continue
        floats = [t for t in tensors if "float" in side.dtype_name(t)]
        for t in floats:
            side.set_requires_grad(t, True)
        if floats:
            out.append(f"the {side.name} model has no trainable parameter and no input that requires grad: its "
                       "float inputs were made to require grad for this run (put back afterwards) so the backward "
                       "pass can be compared. Use options={'diff_phase': 'forward'} to skip backward.")
    return out


# float16/bfloat16 are compared in float32; below these tolerances (torch.testing's defaults
# for the two types) rounding alone makes the two sides differ
_HALF_RTOL = {"float16": 1e-3, "bfloat16": 1.6e-2}


def _precision_warnings(rep: DiffReport, opts: DiffOptions) -> list[str]:
    out = []
    dtypes = {r.dtype for r in rep.records}
    failing = {r.dtype for r in rep.records if not r.passed}
    for dtype, rtol in _HALF_RTOL.items():
        if dtype not in dtypes:
            continue
        text = f"{dtype} tensors were compared in float32 (both sides widened, means in float64)"
        if dtype in failing and opts.rtol < rtol and opts.atol < rtol:
            text += (f"; atol={opts.atol:g}, rtol={opts.rtol:g} are below {dtype} resolution, so rounding alone "
                     f"can fail: try options={{'atol': 1e-5, 'rtol': {rtol:g}}} or see "
                     "report.suggested_tolerances()")
        out.append(text + ".")
    return out


def _randomness_probe(module: Any, t_inp: dict[str, Any]) -> list[str]:
    """After a failed run: does the torch forward draw random numbers (functional dropout, rand...)?"""
    snap = SideSnapshot.take(TORCH, module, t_inp, keep_values=False)
    try:
        calls = TORCH.random_calls(module, t_inp)
    except Exception:  # noqa: BLE001 - only a hint; the run itself has been reported
        return []
    finally:
        snap.restore(values=True, grads=False)
    if not calls:
        return []
    return [f"the torch model calls {', '.join(calls)} in its forward: random numbers differ between frameworks, "
            "so results cannot agree. Call .eval() on both models, or set the dropout probability to 0."]


def _paddle_randomness_probe(layer: Any, p_inp: dict[str, Any]) -> list[str]:
    """After a failed run with a deterministic torch side: do two paddle seeds give two outputs?"""
    import numpy as np

    snap = SideSnapshot.take(PADDLE, layer, p_inp, keep_values=False)
    try:
        outs = []
        with PADDLE.no_grad():
            for seed in (1, 2):
                PADDLE.seed(seed)
                outs.append([PADDLE.to_numpy(t) for t in PADDLE.flatten(layer(**p_inp))])
    except Exception:  # noqa: BLE001 - only a hint; the run itself has been reported
        return []
    finally:
        snap.restore(values=True, grads=False)
    if all(a.shape == b.shape and np.array_equal(a, b, equal_nan=True) for a, b in zip(*outs)):
        return []
    return ["the paddle model gives different outputs for different random seeds: it draws random numbers "
            "(dropout in train mode, paddle.rand...) and the torch model does not, so results cannot agree. "
            "Call .eval() on both models, or set the dropout probability to 0."]


def _finish(rep: DiffReport, html: str | None, json_path: str | None, log_dir: str | None) -> DiffReport:
    try:
        if log_dir and not rep:
            from padiff.report.text import write_logs

            write_logs(rep, log_dir)
        if html:
            from padiff.report.html import write_html

            write_html(rep, html)
        if json_path:
            from padiff.report.json_report import write_json

            write_json(rep, json_path)
    except PadiffError:
        raise
    return rep
