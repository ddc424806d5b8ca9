"""Re-run the first differing layer pair once with both frameworks' operations recorded.

The pair is re-run on identical inputs: the torch layer gets the paddle layer's input.
When that input already differed (functional code between two paired layers changed it),
the nearest enclosing pair whose input agrees is re-run instead, up to the two whole
models. The models' buffers, modes and random state are put back afterwards (the
re-run runs under ``no_grad``, seeded like the compared run).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from padiff.adapters import PADDLE, TORCH, Side
from padiff.adapters.frames import source_text, user_stack
from padiff.adapters.hooks import HookSet
from padiff.adapters.op_events import OpEvent, Trace
from padiff.adapters.snapshot import SideSnapshot
from padiff.compare.conventions import paddle_settings_as_torch
from padiff.options import DiffOptions
from padiff.report.records import Comparison, OpDiff
from padiff.runtime.ops.align import Divergence, agreement, first_divergence


@dataclass
class _Call:
    args: tuple
    kwargs: dict


def op_view(layer: Any, module: Any, paddle_inputs: Mapping[str, Any], torch_inputs: Mapping[str, Any],
            first: Comparison, mapping: list[Mapping[str, str]], options: DiffOptions) -> OpDiff | None:
    """The first differing operation inside the pair of ``first`` (a forward record), or None.

    ``mapping`` is the pairs the compared run used (``paddle_path``/``torch_path`` dicts).
    Raises whatever the models raise on the re-run; :mod:`padiff.api` turns that into a warning.
    """
    cmp = agreement(options.atol, options.rtol, options.compare_mode, options.mismatch_ratio)
    # the user's frames around this call: an op whose innermost user frame is one of them ran in
    # framework code (a built-in layer's forward), so its source line is where the model calls the layer
    outside = set(user_stack(limit=256))
    sites = (first.paddle_stack[-1] if first.paddle_stack else None,
             first.torch_stack[-1] if first.torch_stack else None)
    chain = _chain(first, mapping)
    p_paired = {m["paddle_path"] for m in mapping}
    t_paired = {m["torch_path"] for m in mapping}
    # forwards only (no backward runs here): the gradients the compared run left are not touched
    snaps = [SideSnapshot.take(PADDLE, layer, dict(paddle_inputs), keep_values=False, grads=False),
             SideSnapshot.take(TORCH, module, dict(torch_inputs), keep_values=False, grads=False)]
    try:
        p_caps = _capture(PADDLE, layer, paddle_inputs, [p for p, _ in chain], first.paddle_path, first.call)
        t_caps = _capture(TORCH, module, torch_inputs, [t for _, t in chain], first.torch_path, first.call)
        for p_path, t_path in chain:
            root = p_path == "" and t_path == ""
            if root:
                p_call, t_call = _Call((), dict(paddle_inputs)), _Call((), dict(torch_inputs))
            else:
                p_call, t_call = p_caps.get(p_path), t_caps.get(t_path)
                if p_call is None or t_call is None or not _same_inputs(p_call, t_call, cmp):
                    continue
                t_call = _fed_paddle_inputs(p_call, t_call)
            try:
                p_trace = _record(PADDLE, layer, p_path, p_call, p_paired)
                t_trace = _record(TORCH, module, t_path, t_call, t_paired)
            except Exception:
                if root:
                    raise
                continue
            div = first_divergence(p_trace.ops, t_trace.ops, cmp)
            if div is None:
                if root:
                    return None
                continue
            return _record_of(div, p_path, t_path, p_trace, t_trace, p_paired, t_paired, outside, sites)
        return None
    finally:
        for snap in snaps:
            snap.restore(values=True, grads=True)


def _chain(first: Comparison, mapping: list[Mapping[str, str]]) -> list[tuple[str, str]]:
    """The failing pair, then the pairs enclosing it, innermost first, ending with the two roots."""
    p, t = first.paddle_path, first.torch_path
    out = [(p, t)]
    enclosing = [(m["paddle_path"], m["torch_path"]) for m in mapping
                 if _encloses(m["paddle_path"], p) and _encloses(m["torch_path"], t)]
    enclosing.sort(key=lambda pt: -len(pt[0].split(".")) if pt[0] else 0)
    for pair in [*enclosing, ("", "")]:
        if pair not in out:
            out.append(pair)
    return out


def _encloses(outer: str, inner: str) -> bool:
    return outer != inner and (outer == "" or inner.startswith(outer + "."))


def _capture(side: Side, root: Any, inputs: Mapping[str, Any], paths: list[str], target: str,
             call: int, grad: bool = False) -> dict[str, _Call]:
    """One plain forward: the inputs of ``target``'s call number ``call`` and of the layers enclosing it.

    ``grad``: run it with gradients on (a forward registering gradient hooks needs them).
    """
    by_path = {}
    for path, lay in side.named_layers(root):
        by_path.setdefault(path, lay)
    wanted = [p for p in dict.fromkeys(paths) if p and p in by_path]
    counts: dict[str, int] = {}
    active: list[tuple[str, _Call]] = []
    found: dict[str, _Call] = {}
    if target not in wanted:
        return found
    with HookSet() as hooks:
        for path in wanted:
            def pre(lay: Any, args: tuple, kwargs: dict, path: str = path) -> None:
                n = counts.get(path, 0)
                counts[path] = n + 1
                rec = _Call(side.map_tensors(args, side.clone_detached), side.map_tensors(dict(kwargs),
                                                                                          side.clone_detached))
                active.append((path, rec))
                if path == target and n == call and not found:
                    found.update({p: c for p, c in active})

            def post(lay: Any, args: tuple, out: Any, path: str = path) -> None:
                for i in range(len(active) - 1, -1, -1):
                    if active[i][0] == path:
                        del active[i:]
                        break

            hooks.add(side.add_pre_hook(by_path[path], pre))
            hooks.add(side.add_post_hook(by_path[path], post))
        side.seed(0)
        with side.no_grad() if not grad else contextlib.nullcontext():
            root(**inputs)
    return found


def _same_inputs(p: _Call, t: _Call, cmp: Callable[[Any, Any], Any]) -> bool:
    pa, ta = PADDLE.flatten((p.args, p.kwargs)), TORCH.flatten((t.args, t.kwargs))
    if len(pa) != len(ta):
        return False
    return all(cmp(PADDLE.to_numpy(a), TORCH.to_numpy(b)).passed for a, b in zip(pa, ta))


def _fed_paddle_inputs(p: _Call, t: _Call) -> _Call:
    """The torch call with each float tensor replaced by the paddle input's values (same inputs exactly)."""
    pa = PADDLE.flatten((p.args, p.kwargs))
    it: Iterator[Any] = iter(pa)

    def swap(x: Any) -> Any:
        src = next(it, None)
        if src is None or not TORCH.is_floating(x) or TORCH.shape(x) != PADDLE.shape(src):
            return x
        return TORCH.from_numpy(PADDLE.to_numpy(src), like=x)

    args = TORCH.map_tensors(t.args, swap)
    return _Call(args, TORCH.map_tensors(t.kwargs, swap))


def _record(side: Side, root: Any, scope: str, call: _Call, paired: set[str]) -> Trace:
    trace = Trace(scope)
    with side.no_grad():
        _run_recorded(side, root, scope, call, paired, trace)
    if side is PADDLE:  # paddle's conventions read the torch way, so they are no differing setting
        trace.ops = [replace(op, params=paddle_settings_as_torch(op.kind, op.params)) for op in trace.ops]
    return trace


def _run_recorded(side: Side, root: Any, scope: str, call: _Call, paired: set[str],
                  trace: Trace) -> Any:
    """Call ``scope`` (a layer path under ``root``) once with ``call``'s arguments, ops going to ``trace``."""
    layers, seen = {}, set()
    for path, lay in side.named_layers(root):
        if id(lay) not in seen:
            seen.add(id(lay))
            layers[path] = lay
    with HookSet() as hooks:
        for path, lay in layers.items():
            if not _encloses(scope, path):
                continue

            def pre(lay: Any, args: tuple, kwargs: dict, path: str = path) -> None:
                trace.enter(path)

            def post(lay: Any, args: tuple, out: Any, path: str = path) -> None:
                trace.exit(path, path in paired)

            hooks.add(side.add_pre_hook(lay, pre))
            hooks.add(side.add_post_hook(lay, post))
        side.seed(0)
        with side.record_ops(trace):
            return layers[scope](*call.args, **call.kwargs)


def _record_of(div: Divergence, p_scope: str, t_scope: str, p_trace: Trace, t_trace: Trace,
               p_paired: set[str], t_paired: set[str], outside: set[Any] = frozenset(),  # type: ignore[assignment]
               sites: tuple[Any, Any] = (None, None)) -> OpDiff:
    p, t = div.paddle, div.torch
    p_frame = (sites[0] if p.frame in outside else p.frame) if p is not None else None
    t_frame = (sites[1] if t.frame in outside else t.frame) if t is not None else None
    args = _differing_args(p, t) if p is not None and t is not None and p.kind == t.kind else ()
    where = _where(p, p_scope, p_trace, p_paired)
    t_where = _where(t, t_scope, t_trace, t_paired)
    if t_where != where and t_where:
        where = f"{where} (torch: {t_where})" if where else f"torch: {t_where}"
    scope = "<root>" if not p_scope and not t_scope else f"{p_scope or '<root>'} <-> {t_scope or '<root>'}"
    note = ""
    if div.alone_inputs_agree:
        side, alone = ("paddle", div.only_paddle) if div.only_paddle else ("torch", div.only_torch)
        other = "torch" if side == "paddle" else "paddle"
        note = (f"{side} alone runs {', '.join(o.name for o in alone)} here ({other} runs no op in its place); its "
                f"input agrees with {other}'s value at that point, so this op is the difference")
    elif not div.inputs_agree:
        note = ("the op's inputs already differ; the ops each side runs alone just before it are the likely cause"
                if div.only_paddle or div.only_torch else "the op's inputs already differ")
    return OpDiff(
        paddle_op=p.name if p else "", torch_op=t.name if t else "", kind=(p or t).kind if (p or t) else "",
        scope=scope, where=where, paddle_source=source_text(p_frame),
        torch_source=source_text(t_frame),
        paddle_shape=p.out_shape() if p else (), torch_shape=t.out_shape() if t else (), args=args,
        stats=div.stats, inputs_agree=div.inputs_agree or div.alone_inputs_agree,
        only_paddle=tuple(o.name for o in div.only_paddle),
        only_torch=tuple(o.name for o in div.only_torch), agreed_before=div.agreed_before, note=note,
        paddle_frame=tuple(p_frame) if p_frame else (), torch_frame=tuple(t_frame) if t_frame else ())


def _differing_args(p: OpEvent, t: OpEvent) -> tuple[tuple[str, Any, Any], ...]:
    out = []
    for k in p.params:
        if k in t.params and p.params[k] != t.params[k]:
            out.append((k, p.params[k], t.params[k]))
    return tuple(out)


def _where(op: OpEvent | None, scope: str, trace: Trace, paired: set[str]) -> str:
    if op is None:
        return ""
    if op.layer != scope and op.layer in paired:
        return f"inside `{op.layer}`"
    inside = f"in `{op.layer}`, " if op.layer != scope else ""  # a wrapper layer the run did not pair
    before, after = op.after, trace.next_enter(op.index, paired)
    if before and after:
        return f"{inside}between `{before}` and `{after}`"
    if before:
        return f"{inside}after `{before}`"
    if after:
        return f"{inside}before `{after}`"
    return f"in `{op.layer or '<root>'}`"
