"""The op view in backward: re-run a pair with gradients followed, name the first op whose backward parts.

When the first difference is a gradient, the pair is re-run as in forward (the torch layer
gets the paddle layer's input; the enclosing pair, up to the whole models, when that input
differs), this time with gradients: every recorded op's tensors are followed
(:class:`~padiff.runtime.ops.grads.GradTrace`), both sides run one backward from the *same*
output gradient (seeded), and the ops are walked in backward order
(:func:`~padiff.runtime.ops.align_bwd.first_backward_divergence`). The gradient of a layer's
*output* is made downstream of it, so for such a record the search starts at the pair
enclosing the layer. Nothing accumulates into the models' ``.grad``; the models' buffers,
modes, random state and gradients are put back, and every gradient hook is removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from padiff.adapters import PADDLE, TORCH, Side
from padiff.adapters.frames import source_text, user_stack
from padiff.adapters.op_events import OpEvent
from padiff.adapters.snapshot import SideSnapshot
from padiff.options import DiffOptions
from padiff.report.records import Comparison, OpDiff
from padiff.runtime.ops.align import agreement
from padiff.runtime.ops.align_bwd import BackwardDivergence, first_backward_divergence
from padiff.runtime.ops.grads import GradTrace
from padiff.runtime.ops.rerun import (
    _Call,
    _capture,
    _chain,
    _differing_args,
    _fed_paddle_inputs,
    _run_recorded,
    _same_inputs,
    _where,
)

_SEED = 0


def grad_op_view(layer: Any, module: Any, paddle_inputs: Mapping[str, Any], torch_inputs: Mapping[str, Any],
                 first: Comparison, mapping: list[Mapping[str, str]], options: DiffOptions) -> OpDiff | None:
    """The first op, in backward order, whose output gradient agrees and whose input gradient does not.

    ``first`` is a ``backward`` (gradient of a layer's output) or ``grad`` (parameter gradient)
    record. Raises whatever the models raise on the re-run.
    """
    cmp = agreement(options.atol, options.rtol, options.compare_mode, options.mismatch_ratio)
    outside = set(user_stack(limit=256))
    sites = (first.paddle_stack[-1] if first.paddle_stack else None,
             first.torch_stack[-1] if first.torch_stack else None)
    chain = _chain(first, mapping)
    search = chain[1:] if first.stage == "backward" and len(chain) > 1 else chain
    p_paired = {m["paddle_path"] for m in mapping}
    t_paired = {m["torch_path"] for m in mapping}
    snaps = [SideSnapshot.take(PADDLE, layer, dict(paddle_inputs), keep_values=False),
             SideSnapshot.take(TORCH, module, dict(torch_inputs), keep_values=False)]
    try:
        p_caps = _capture(PADDLE, layer, paddle_inputs, [p for p, _ in chain], first.paddle_path, first.call,
                          grad=True)
        t_caps = _capture(TORCH, module, torch_inputs, [t for _, t in chain], first.torch_path, first.call,
                          grad=True)
        for p_path, t_path in search:
            root = p_path == "" and t_path == ""
            if root:
                p_call, t_call = _Call((), dict(paddle_inputs)), _Call((), dict(torch_inputs))
            else:
                p_found, t_found = p_caps.get(p_path), t_caps.get(t_path)
                if p_found is None or t_found is None or not _same_inputs(p_found, t_found, cmp):
                    continue
                p_call, t_call = p_found, _fed_paddle_inputs(p_found, t_found)
            p_trace, t_trace = GradTrace(p_path, PADDLE), GradTrace(t_path, TORCH)
            try:
                recorded = _backward(layer, module, p_path, t_path, p_call, t_call, p_trace, t_trace,
                                     (p_paired, t_paired))
                div = (first_backward_divergence(p_trace.ops, t_trace.ops, p_trace, t_trace, cmp, options.rtol)
                       if recorded else None)
                if div is not None:
                    return _record_of(div, p_path, t_path, (p_trace, t_trace), (p_paired, t_paired), outside, sites)
            except Exception:
                if root:
                    raise
                continue
            finally:
                p_trace.close()
                t_trace.close()
        return None
    finally:
        for snap in snaps:
            snap.restore(values=True, grads=True)


def _with_grad(side: Side, call: _Call) -> _Call:
    """The call on copies of its arguments, float ones requiring grad (the user's tensors stay as they are)."""
    def fresh(t: Any) -> Any:
        c = side.clone_detached(t)
        if side.is_floating(c):
            side.set_requires_grad(c, True)
        return c

    return _Call(side.map_tensors(call.args, fresh), side.map_tensors(dict(call.kwargs), fresh))


def _backward(layer: Any, module: Any, p_path: str, t_path: str, p_call: _Call, t_call: _Call,
              p_trace: GradTrace, t_trace: GradTrace,
              paired: tuple[set[str], set[str]]) -> bool:
    """Both forwards recorded, then both backwards from one seeded output gradient; False if none can run."""
    p_out = _run_recorded(PADDLE, layer, p_path, _with_grad(PADDLE, p_call), paired[0], p_trace)
    p_trace.forward_done()
    t_out = _run_recorded(TORCH, module, t_path, _with_grad(TORCH, t_call), paired[1], t_trace)
    t_trace.forward_done()
    p_outs = [o for o in PADDLE.flatten(p_out) if PADDLE.carries_grad(o)]
    t_outs = [o for o in TORCH.flatten(t_out) if TORCH.carries_grad(o)]
    if not p_outs or len(p_outs) != len(t_outs) or any(
            PADDLE.shape(a) != TORCH.shape(b) for a, b in zip(p_outs, t_outs)):
        return False
    rng = np.random.default_rng(_SEED)
    grads = [(rng.standard_normal(PADDLE.shape(o)) / max(1, PADDLE.numel(o))).astype(PADDLE.to_numpy(o).dtype)
             for o in p_outs]
    p_trace.backward(p_outs, [PADDLE.from_numpy(g, like=o) for g, o in zip(grads, p_outs)])
    t_trace.backward(t_outs, [TORCH.from_numpy(g, like=o) for g, o in zip(grads, t_outs)])
    return True


def _frame(op: OpEvent | None, outside: set[Any], site: Any) -> Any:
    if op is None:
        return None
    return site if op.frame in outside else op.frame


def _record_of(div: BackwardDivergence, p_scope: str, t_scope: str, traces: tuple[GradTrace, GradTrace],
               paired: tuple[set[str], set[str]], outside: set[Any], sites: tuple[Any, Any]) -> OpDiff:
    p, t = div.paddle, div.torch
    # a custom Function's body ran its ops without gradients: that is the code to look at
    p_src, t_src = div.inside[0] or p, div.inside[1] or t
    p_frame, t_frame = _frame(p_src, outside, sites[0]), _frame(t_src, outside, sites[1])
    where = _where(p, p_scope, traces[0], paired[0])
    t_where = _where(t, t_scope, traces[1], paired[1])
    if t_where != where and t_where:
        where = f"{where} (torch: {t_where})" if where else f"torch: {t_where}"
    scope = "<root>" if not p_scope and not t_scope else f"{p_scope or '<root>'} <-> {t_scope or '<root>'}"
    p_name, t_name = p.name if p else "", t.name if t else ""
    nodes = {side: [n for s, n in div.unrecorded if s == side] for side in ("paddle", "torch")}
    if div.kind == "output" and (nodes["paddle"] or nodes["torch"]):
        p_name = ", ".join(nodes["paddle"]) or p_name
        t_name = ", ".join(nodes["torch"]) or t_name
    both = p is not None and t is not None and p.kind == t.kind
    return OpDiff(
        paddle_op=p_name, torch_op=t_name, kind=(p or t).kind if (p or t) else "", scope=scope, where=where,
        paddle_source=source_text(p_frame), torch_source=source_text(t_frame),
        paddle_shape=p.out_shape() if p else (), torch_shape=t.out_shape() if t else (),
        args=_differing_args(p, t) if both and p and t else (),
        stats=div.stats, inputs_agree=div.kind != "output",
        only_paddle=tuple(o.name for o in div.only_paddle), only_torch=tuple(o.name for o in div.only_torch),
        agreed_before=div.agreed_after, note=_note(div, nodes, p, t, traces), phase="backward", grad_item=div.item,
        paddle_frame=tuple(p_frame) if p_frame else (), torch_frame=tuple(t_frame) if t_frame else ())


def _note(div: BackwardDivergence, nodes: dict[str, list[str]], p: OpEvent | None, t: OpEvent | None,
          traces: tuple[GradTrace, GradTrace]) -> str:
    if p is None or t is None:
        side, op = ("torch", t) if p is None else ("paddle", p)
        return (f"{side} alone runs {op.name if op else 'this op'} here (the other side fuses or splits it), and a "
                f"gradient hook registered on its {div.item} (on the {side} side) changes the gradient")
    if div.kind == "op" and div.stats.note_kind == "one_sided":
        return (f"the gradient reaching its output agrees; {div.stats.note.replace('it', f'its {div.item}', 1)}, "
                "so the two sides differentiate through different inputs")
    if div.kind == "op":
        custom = [f"{', '.join(names)} ({side})" for side, names in
                  (("paddle", traces[0].custom(p.index)), ("torch", traces[1].custom(t.index))) if names]
        what = (f"its output is what a custom autograd function returns, {' and '.join(custom)}, and that "
                "function's backward differs (the lines shown are in its forward)") if custom else \
            "this op's backward differs"
        return (f"the gradient reaching its output agrees and the gradient it passes back to its {div.item} does "
                f"not: {what}")
    if div.kind == "hook":
        sides = " and ".join(div.hooked) or "one"
        return (f"the gradient reaching its {div.item} agrees until a gradient hook registered on that tensor "
                f"(on the {sides} side) changes it")
    why = []
    if nodes["paddle"] or nodes["torch"]:
        named = "; ".join(f"{', '.join(ns)} ({side})" for side, ns in nodes.items() if ns)
        why.append(f"a backward no recorded op accounts for (a custom PyLayer / autograd.Function): {named}; "
                   "its forward body's source lines are shown")
    if div.only_paddle or div.only_torch:
        why.append("ops only one side runs after it: " + ", ".join(
            [f"{o.name} (paddle)" for o in div.only_paddle] + [f"{o.name} (torch)" for o in div.only_torch]))
    cause = "; ".join(why) or "code padiff records no op for"
    return (f"the gradient reaching the {div.item} of {p.name} (paddle) / {t.name} (torch) already differs though "
            f"every op after it agrees in backward: it came back through {cause}")
