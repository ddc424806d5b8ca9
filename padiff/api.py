"""The public entry points ``compare`` and ``auto_diff``: validate, prepare, run, restore.

Everything the user passes is checked here first (so misuse is a clear ``PadiffError``,
never a traceback from inside a framework), the models' state is snapshotted, the engine
runs, and the state is restored in ``finally`` whatever happened.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from padiff.adapters import PADDLE, TORCH, Side
from padiff.adapters.snapshot import SideSnapshot
from padiff.checks import check_example_inp, check_models, optimizer_pair, pair_of_callables
from padiff.compare.arrays import Stats
from padiff.errors import InputError, OptionsError, OutputPathError, WeightAssignError
from padiff.layer_map import LayerMap
from padiff.maps.notes import notes_of
from padiff.names import depth as path_depth
from padiff.names import show
from padiff.options import DiffOptions, validate_steps
from padiff.report.progress import status, step_progress
from padiff.report.records import Comparison, DiffReport
from padiff.runtime import diagnostics
from padiff.runtime.discovery import AutoWeights, CallOrderDiffers
from padiff.runtime.engine import Engine, RunSpec
from padiff.runtime.warn_once import warnings_once

log = logging.getLogger("padiff")


@warnings_once
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
    **option_kwargs: Any,
) -> DiffReport:
    """Run the paddle ``layer`` and torch ``module`` side by side and return a :class:`DiffReport`.

    Same arguments as :func:`auto_diff`; ``report`` writes an HTML report, ``json_path``
    a JSON dump. The report is truthy iff everything compared agreed.
    """
    opts = DiffOptions.from_mapping(_with_option_kwargs(options, option_kwargs, "compare"))
    check_models(layer, module)
    p_inp, t_inp = check_example_inp(example_inp, layer, module)
    # inputs computed from other tensors: the run's backward stops at them (fresh dicts, user's untouched)
    p_inp = {k: PADDLE.map_tensors(v, PADDLE.cut_graph) for k, v in p_inp.items()}
    t_inp = {k: TORCH.map_tensors(v, TORCH.cut_graph) for k, v in t_inp.items()}
    loss_fns = pair_of_callables(loss_fn, "loss_fn")
    optimizers = optimizer_pair(optimizer)
    steps = validate_steps(steps, opts, optimizers is not None)
    if not isinstance(auto_weights, bool):
        raise OptionsError(f"auto_weights must be True or False, got {auto_weights!r}.")
    lm = _layer_map(layer_map, layer, module, example_inp)
    resolved = lm.resolve(layer, module)

    rep = DiffReport(options=opts.to_dict(), steps=steps)
    rep.mapping_route = lm.route
    rep.settled_numerically = notes_of(lm.notes, "numeric")
    rep.paddle_tree = _tree(PADDLE, layer)
    rep.torch_tree = _tree(TORCH, module)
    rep.paddle_root_class, rep.torch_root_class = type(layer).__name__, type(module).__name__
    rep.warnings.extend(diagnostics.randomness_warnings(layer, module))

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
        weights = AutoWeights(layer, module, resolved, lm, p_inp, t_inp) if auto_weights else None
        before_run = _ReportMark(rep)
        while True:
            if weights is not None:
                if not _assign(layer, module, weights, rep):
                    return _finish(rep, report, json_path, log_dir)
                # the assigned weights stay: record them as the state to come back to
                snaps[0] = snaps[0].with_values_now()
            if opts.checks_backward:
                rep.warnings.extend(_inputs_for_backward(layer, module, p_inp, t_inp))
            spec = RunSpec(layer, module, p_inp, t_inp, opts, resolved, steps, loss_fns, optimizers,
                           strict_pairing=not lm.pairs and lm.route == "manual",
                           on_paired=weights.check if weights is not None and weights.checking else None)
            try:
                with step_progress(steps, "padiff: comparing steps") as advance:
                    result = Engine(spec, rep).run(on_step=advance)
            except CallOrderDiffers:
                # weights were copied in definition order but the run pairs in call order: nothing
                # the run did counts; back to the state before the copy, copy again, run again
                for snap in snaps:
                    snap.restore(values=True, grads=True)
                assert weights is not None
                weights.undo()
                before_run.rewind()
                continue
            break
        rep.mapping = [
            {"paddle_path": sp.paddle.path, "torch_path": sp.torch.path, "paddle_class": sp.paddle.cls,
             "torch_class": sp.torch.cls}
            for sp in result.pairs
        ]
        if optimizers is None or not opts.checks_backward:  # the weights are still those the forward used
            _attach_op_view(rep, layer, module, p_inp, t_inp, opts)
        failed = False
        if not rep.records:  # vacuous agreement would be a silent True
            rep.records.append(Comparison(
                "forward", 0, "", "", rep.paddle_root_class, rep.torch_root_class,
                Stats.failure("nothing was compared: no layer call could be paired and the outputs hold no tensor",
                              kind="nothing"),
                item="model output"))
        _flag_empty_batch(rep, p_inp, t_inp)
        rep.warnings.extend(diagnostics.precision_warnings(rep, opts))
        if not rep and not rep.has_warning("dropout_train", "mode_mismatch"):
            rep.warnings.extend(diagnostics.randomness_probe(module, t_inp)
                                or diagnostics.paddle_randomness_probe(layer, p_inp))
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
    """Compare the two models and print the report; True iff everything agreed (README "Use").

    Raises a :class:`~padiff.errors.PadiffError` for misuse, never for a numerical difference.
    """
    from padiff.console import print_report

    try:
        rep = compare(layer, module, example_inp, auto_weights, steps, options, layer_map, loss_fn, optimizer,
                      **kwargs)
    except OutputPathError as e:
        if e.report is not None:  # the run finished: show its result before the path error
            print_report(e.report)
        raise
    print_report(rep)
    return bool(rep)


def _with_option_kwargs(options: Any, extra: dict[str, Any], fn: str) -> Any:
    """Options may also be passed as keywords (``atol=1e-5``), as older PaDiff releases took them."""
    if not extra:
        return options
    valid = DiffOptions.valid_keys()
    unknown = sorted(k for k in extra if k not in valid)
    if unknown:
        raise OptionsError(
            f"{fn} got unknown argument(s) {', '.join(repr(k) for k in unknown)}. It takes layer, module, "
            "example_inp, auto_weights, steps, options, layer_map, loss_fn, optimizer, report, json_path, log_dir, "
            f"and the option names ({', '.join(valid)}) as keywords."
        )
    if options is not None and not isinstance(options, Mapping):
        return options  # from_mapping names the problem
    merged = dict(options or {})
    clash = sorted(k for k in extra if k in merged and merged[k] != extra[k])
    if clash:
        raise OptionsError(f"{', '.join(repr(k) for k in clash)} given both in options and as a keyword argument "
                           "with different values; give each option once.")
    merged.update(extra)
    return merged


def _layer_map(value: Any, layer: Any, module: Any, example_inp: Any) -> LayerMap:
    if isinstance(value, str):
        if value != "auto":
            raise InputError(f"layer_map must be a LayerMap, a dict or 'auto', got the string {value!r}.")
        from padiff.assign import with_special_pairs
        from padiff.graph.suggest import suggest_layer_map

        with status("padiff: proposing a layer map (exporting both models to ONNX)..."):
            lm = with_special_pairs(suggest_layer_map(layer, module, example_inp), layer, module)
        from padiff.console import print_mapping

        print_mapping(lm, layer, module)
        return lm
    return LayerMap.coerce(value)


class _ReportMark:
    """What the report held before a run, so a run that must be repeated leaves no trace in it."""

    def __init__(self, rep: DiffReport) -> None:
        self.rep = rep
        self.lengths = {name: len(getattr(rep, name)) for name in ("records", "warnings", "skipped", "conversions")}
        self.stages = list(rep.stages)

    def rewind(self) -> None:
        for name, n in self.lengths.items():
            del getattr(self.rep, name)[n:]
        self.rep.stages = list(self.stages)


def _assign(layer: Any, module: Any, weights: AutoWeights, rep: DiffReport) -> bool:
    from padiff.weights.assign import copy_weights

    try:
        plans = weights.plan()
        rep.conversions = copy_weights(layer, module, plans, keep=weights.before if weights.checking else None)
        return True
    except WeightAssignError as e:
        rep.assign_error = str(e)
        stats = Stats.failure(str(e), kind="assign")
        rep.records.append(Comparison("assign_weight", 0, getattr(e, "paddle_path", ""), getattr(e, "torch_path", ""),
                                      getattr(e, "paddle_class", ""), getattr(e, "torch_class", ""), stats))
        return False


def _attach_op_view(rep: DiffReport, layer: Any, module: Any, p_inp: dict[str, Any], t_inp: dict[str, Any],
                    opts: DiffOptions) -> None:
    """Look inside the first differing pair and put the first differing op on its record.

    A forward record gets the forward op view. A gradient record gets the backward one
    (ops re-run with gradients followed). With ``single_step`` a forward fault can hide: each
    torch layer got the paddle layer's input, so every forward compare passed and the first
    difference is a gradient; the whole forward is then re-run unsynchronised first, and a
    differing op found there is the likelier cause.
    """
    first = rep.first_diff
    if first is None or first.stage not in ("forward", "backward", "grad"):
        return
    from padiff.runtime.ops import grad_op_view, op_view

    try:
        if first.stage == "forward":
            op = op_view(layer, module, p_inp, t_inp, first, rep.mapping, opts.for_ops())
        else:
            op = None
            if opts.single_step and opts.checks_forward:
                whole = dataclasses.replace(first, paddle_path="", torch_path="", call=0)
                try:
                    op = op_view(layer, module, p_inp, t_inp, whole, rep.mapping, opts.for_ops())
                except Exception:  # noqa: BLE001 - a forward needing gradients (it registers hooks): backward view
                    op = None
                if op is not None:
                    op = dataclasses.replace(op, note=(op.note + "; " if op.note else "") + (
                        "found by re-running the whole forward without single_step's input synchronisation "
                        "(every synchronised forward compare passed)"))
            if op is None:
                op = grad_op_view(layer, module, p_inp, t_inp, first, rep.mapping, opts.for_ops())
    except Exception as e:  # noqa: BLE001 - the layer verdict stands; the op view is extra detail
        rep.warnings.append(f"the op view could not re-run {show(first.paddle_path)} <-> "
                            f"{show(first.torch_path)}: {type(e).__name__}: {e}. The layer-level result "
                            "above is unaffected.")
        return
    if op is not None:
        i = next(k for k, r in enumerate(rep.records) if r is first)
        rep.records[i] = dataclasses.replace(first, op=op)


def _flag_empty_batch(rep: DiffReport, p_inp: dict[str, Any], t_inp: dict[str, Any]) -> None:
    """A run whose every compared tensor has no elements compared nothing: that is no pass.

    A ``(0, 4)`` batch runs through both models and every comparison of empty tensors
    agrees trivially; the report gets a failing record saying the batch is empty instead.
    """
    compared = [r for r in rep.records if r.stage != "assign_weight"]
    if not compared or any(r.stats.total > 0 for r in compared) or any(not r.passed for r in compared):
        return
    empty = [f"{side.name} input {k!r} has shape {list(side.shape(t))}"
             for side, inp in ((PADDLE, p_inp), (TORCH, t_inp)) for k, v in inp.items()
             for t in side.flatten(v) if side.numel(t) == 0]
    why = ("the batch is empty (" + "; ".join(empty) + ")") if empty else "every compared tensor is empty"
    rep.records.append(Comparison(
        "forward", 0, "", "", rep.paddle_root_class, rep.torch_root_class,
        Stats.failure(f"nothing compared: {why}, so no element of any output could be checked. Give example_inp at "
              "least one sample.", kind="empty"),
        item="model output"))


def _tree(side: Side, root: Any) -> list[tuple[str, str, int]]:
    return [(p, type(m).__name__, path_depth(p)) for p, m in side.named_layers(root)]


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


def _finish(rep: DiffReport, html: str | None, json_path: str | None, log_dir: str | None) -> DiffReport:
    """Write the files asked for; a path that cannot be written raises, carrying the finished report.

    Every file is tried (one bad path does not cost the others); the first failure is raised
    as :class:`OutputPathError` with ``report`` set, so the computed result is not lost.
    """
    from padiff.report.html import write_html
    from padiff.report.json_report import write_json
    from padiff.report.logs import write_logs

    failed: list[OutputPathError] = []
    jobs = [(log_dir and not rep, lambda: write_logs(rep, log_dir)), (html, lambda: write_html(rep, html)),
            (json_path, lambda: write_json(rep, json_path))]
    for wanted, job in jobs:
        if not wanted:
            continue
        try:
            job()
        except OutputPathError as e:
            failed.append(e)
    if failed:
        first = failed[0]
        others = "".join(f"\nAlso: {e}" for e in failed[1:])
        raise OutputPathError(f"{first}{others}\nThe comparison itself finished ({'agree' if rep else 'differ'}); "
                              "its report is on this error's .report attribute.", first.path, rep) from first
    return rep
