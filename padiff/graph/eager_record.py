"""Record one eager forward of a model as :class:`~padiff.graph.eager.EagerOp`s (the aligner's fallback).

Used when an exporter cannot export the model (paddle ``jit.save`` on ``Tensor.view``,
torch's TorchScript exporter on ``histc``/``diff``): the same recorders as the op view,
keeping tensor identities instead of values, with every layer's calls counted. The model
runs in eval mode under ``no_grad``; modes, running statistics and random state are put
back afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from padiff.adapters import Side
from padiff.adapters.attrs import AttributeSnapshot
from padiff.adapters.hooks import HookSet
from padiff.adapters.op_events import Trace, canonical_kind
from padiff.adapters.snapshot import SideSnapshot
from padiff.graph.eager import EagerOp


class RefTrace(Trace):
    """A trace of tensor identities, attributed to ``(layer path, call)``."""

    keep_values = False

    def __init__(self) -> None:
        super().__init__("")
        self.refs: list[EagerOp] = []
        self._alive: list[Any] = []  # keeps every seen tensor alive, so identities stay unique
        self._calls: dict[str, int] = {}
        self._scopes: list[tuple[str, int]] = [("", 0)]
        self.returned: dict[str, tuple[int, ...]] = {}  # a layer's first call: identities of the tensors it returned

    def enter(self, path: str) -> None:
        n = self._calls.get(path, 0)
        self._calls[path] = n + 1
        self._scopes.append((path, n))

    def exit(self, path: str, paired: bool = True) -> None:
        for i in range(len(self._scopes) - 1, 0, -1):
            if self._scopes[i][0] == path:
                del self._scopes[i:]
                return

    def returns(self, path: str, outputs: list[Any]) -> None:
        """Note what ``path``'s first call returned (the aligner compares what paired calls hand back)."""
        if path not in self.returned:
            self._alive.extend(outputs)
            self.returned[path] = tuple(id(t) for t in outputs)

    def add_refs(self, name: str, inputs: list[Any], outputs: list[Any], shape: Any) -> None:
        if not outputs:
            return
        self._alive.extend(inputs)
        self._alive.extend(outputs)
        layer, call = self._scopes[-1]
        self.refs.append(EagerOp(name, canonical_kind(name), layer, call, tuple(id(t) for t in inputs),
                                 tuple(id(t) for t in outputs)))


Params = dict[int, tuple[str, tuple[int, ...], str]]


Returns = dict[str, tuple[int, ...]]


def record_dataflow(side: Side, root: Any,
                    inputs: Mapping[str, Any]) -> tuple[list[EagerOp], set[int], Params, Returns]:
    """``(ops, input identities, {param identity: (name, shape, owner path)}, {layer path: returned identities})``.

    The last item holds, per layer, the tensors its first call returned, so the aligner can
    tell pairs whose calls hand back different quantities (a router returning logits
    against one returning logits, scores and indices).
    """
    trace = RefTrace()
    params: Params = {}
    for path, entries in side.owned_state(root).items():
        for e in entries:
            params.setdefault(id(e.tensor), (f"{path}.{e.name}" if path else e.name, side.shape(e.tensor), path))
    layers, seen = [], set()
    for path, lay in side.named_layers(root):
        if id(lay) not in seen and path:
            seen.add(id(lay))
            layers.append((path, lay))
    snap = SideSnapshot.take(side, root, dict(inputs), keep_values=False, grads=False)  # a no_grad forward
    attrs = AttributeSnapshot.take(side, root)  # what the forward caches in attributes is put back too
    try:
        with HookSet() as hooks:
            for path, lay in layers:
                hooks.add(side.add_pre_hook(lay, lambda _l, _a, _k, path=path: trace.enter(path)))
                hooks.add(side.add_post_hook(lay, lambda _l, _a, o, path=path: _leave(side, trace, path, o)))
            for _, lay in side.named_layers(root):
                side.set_training(lay, False)
            side.seed(0)
            with side.no_grad(), side.record_ops(trace):
                root(**inputs)
    finally:
        attrs.restore()
        snap.restore(values=True, grads=True)
    return trace.refs, {id(t) for t in side.flatten(dict(inputs))}, params, trace.returned


def _leave(side: Side, trace: RefTrace, path: str, out: Any) -> None:
    try:
        trace.returns(path, list(side.flatten(out)))
    except Exception:  # noqa: BLE001 - an output padiff cannot walk leaves nothing to compare, not a crash
        pass
    trace.exit(path)

