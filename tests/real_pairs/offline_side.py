"""One side of a real pair in its own process, the other framework never imported (:mod:`offline`).

``python -m tests.real_pairs.offline_side paddle|torch PAIR WORK [--reverse] [--steps N] [--fault-step S]``

A pair's builder makes both models (and some pairs read one side's config to build the other), so
the other framework's packages are answered by stand-ins while the pair is built: every attribute,
call, item and operation of a stand-in gives another stand-in, a class derived from one is a plain
object. The stand-ins are dropped as soon as the builder returns, and from then on importing the
other framework raises (the end of the run checks it was never really imported). The weights do
not come from the build: they are read from ``WORK`` (written by the parent process, which holds
both models and the hand copy), so only the build's structure, config and inputs must be the same.

- torch: loads ``WORK/pt_state.npz``, writes ``WORK/weights.safetensors`` (``export_weights``),
  records the run into ``WORK/pt`` and, with a forward hook scaling ``pair.fault_leaf``'s output
  by ``score.FAULT_SCALE`` from step ``S`` on, into ``WORK/pt_fault``.
- paddle: for ``layer_map`` ``"auto"`` and ``WORK/map.yaml``, ``import_weights`` into a fresh build,
  each tensor compared with the hand copy's (``WORK/pd_state.npz``): ``WORK/import.json``; then
  records the run into ``WORK/pd`` from the hand copy's weights.

Each step: the forward on the pair's inputs, padiff's built-in loss (the fixed projection ``compare``
uses), backward, one AdamW step (``score.ADAMW``, as the live run), all inside ``Recorder.step``.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import os
import sys
import types
from typing import Any

import numpy as np

#: the packages standing in for each framework while the pair is built (its own packages are real)
OTHER = {"paddle": ("torch", "torchvision", "timm", "transformers", "torchaudio"),
         "torch": ("paddle", "paddleformers", "paddlefleet", "paddlefleet_ops", "ppcls", "paddleclas", "x2paddle",
                   "paconvert")}


class Anything:
    """A stand-in for any object of the framework this process does not have."""

    def __init__(self, *a: Any, **k: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return Anything()

    def __call__(self, *a: Any, **k: Any) -> Any:
        return Anything()

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (AnyBase,)

    def __getitem__(self, k: Any) -> Any:
        return Anything()

    def __setitem__(self, k: Any, v: Any) -> None:
        pass

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *a: Any) -> bool:
        return False

    def _op(self, *a: Any) -> Any:
        return Anything()

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _op
    __matmul__ = __rmatmul__ = __pow__ = __neg__ = __floordiv__ = __mod__ = _op


class AnyBase:
    """What a class derived from a stand-in derives from: takes any arguments, any missing attribute a stand-in."""

    def __init__(self, *a: Any, **k: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return Anything()


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return Anything()


class OtherFramework(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers the other framework's imports with stand-ins (``standing_in``), later refuses them."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.standing_in = True

    def _ours(self, fullname: str) -> bool:
        return any(fullname == n or fullname.startswith(n + ".") for n in self.names)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not self._ours(fullname):
            return None
        if not self.standing_in:
            raise ImportError(f"{fullname} is blocked in this process")
        spec = importlib.machinery.ModuleSpec(fullname, self, origin="<stand-in>", is_package=True)
        spec.has_location = True
        return spec

    def create_module(self, spec: Any) -> Any:
        return _StandInModule(spec.name)

    def exec_module(self, module: Any) -> None:
        module.__path__ = []

    def drop(self) -> None:
        """Remove every stand-in module and refuse the other framework from now on."""
        self.standing_in = False
        for name in [n for n in sys.modules if self._ours(n)]:
            del sys.modules[name]


def build_side(fw: str, pair_name: str, reverse: bool, seed: int = 0) -> tuple[Any, dict[str, Any], Any]:
    """``(model, inputs, pair)`` of side ``fw`` of the pair called ``pair_name``, built as ``score.build``
    does (same seeds, torch order reversed on request, the pair's mode)."""
    finder = OtherFramework(OTHER[fw])
    sys.meta_path.insert(0, finder)
    from .pairs import PAIRS

    pair = next(p for p in PAIRS if p.name == pair_name)
    np.random.seed(seed)
    if fw == "paddle":
        import paddle

        paddle.seed(seed)
        layer, _, p_inp, _ = pair.build()
        model, inp = layer, p_inp
    else:
        import torch

        torch.manual_seed(seed)
        _, module, _, t_inp = pair.build()
        model, inp = module, t_inp
        if reverse:
            from .handcopy import reverse_definition_order

            reverse_definition_order(model)
    model.train() if pair.train_mode else model.eval()
    finder.drop()
    return model, inp, pair


def _adamw(fw: str, model: Any) -> tuple[Any, Any]:
    from .score import ADAMW

    if fw == "paddle":
        import paddle

        opt = paddle.optimizer.AdamW(learning_rate=ADAMW["lr"], beta1=ADAMW["betas"][0], beta2=ADAMW["betas"][1],
                                     epsilon=ADAMW["eps"], weight_decay=ADAMW["weight_decay"],
                                     parameters=model.parameters())
        return opt, opt.clear_grad
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"],
                            weight_decay=ADAMW["weight_decay"])
    return opt, opt.zero_grad


def load_state(fw: str, model: Any, path: str) -> None:
    """Set every state entry of ``model`` from an ``.npz`` of its own state dict (all entries, shapes checked)."""
    data = dict(np.load(path))
    if fw == "paddle":
        import paddle

        sd = model.state_dict()
        assert set(sd) == set(data), (sorted(set(sd) ^ set(data)))[:10]
        for k, t in sd.items():
            assert tuple(t.shape) == data[k].shape, (k, t.shape, data[k].shape)
            t.set_value(paddle.to_tensor(data[k].astype(np.asarray(t.numpy()).dtype)))
    else:
        import torch

        model.load_state_dict({k: torch.from_numpy(v) for k, v in data.items()}, strict=True)


def state_numpy(fw: str, model: Any) -> dict[str, np.ndarray]:
    """The model's state dict as numpy arrays."""
    if fw == "paddle":
        return {k: np.asarray(v.numpy()) for k, v in model.state_dict().items()}
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def record(fw: str, model: Any, inp: dict[str, Any], out: str, steps: int,
           fault: tuple[str, int] | None = None) -> None:
    """``steps`` AdamW steps on ``inp`` recorded into ``out``; ``fault``: (torch leaf, first step) scaled."""
    import padiff
    from padiff.offline.recorder import side_of
    from padiff.runtime.engine.calls import builtin_loss

    from .score import FAULT_SCALE

    side = side_of(model)
    opt, clear = _adamw(fw, model)
    state = {"step": 0}
    handle = None
    if fault is not None:
        leaf, first = fault

        def planted(_m: Any, _i: Any, o: Any) -> Any:
            if state["step"] < first:
                return None
            return (o[0] * FAULT_SCALE, *o[1:]) if isinstance(o, tuple) else o * FAULT_SCALE

        handle = dict(model.named_modules())[leaf].register_forward_hook(planted)
    rec = padiff.Recorder(model, out)
    try:
        for step in range(steps):
            state["step"] = step
            with rec.step(step):
                loss, _ = builtin_loss(side, model(**inp))
                rec.loss(loss)
                loss.backward()
                opt.step()
                clear()
    finally:
        rec.close()
        if handle is not None:
            handle.remove()


def import_check(fw: str, pair_name: str, reverse: bool, work: str) -> dict[str, Any]:
    """For ``"auto"`` and the saved map: ``import_weights`` into a fresh build, compared with the hand copy.

    Per map: ``{"refused": message or "", "wrong": [entries differing from the hand copy], "lines": n}``.
    """
    import padiff
    from padiff.errors import PadiffError

    want = dict(np.load(os.path.join(work, "pd_state.npz")))
    out: dict[str, Any] = {}
    for key, lm in (("auto", "auto"), ("map", os.path.join(work, "map.yaml"))):
        layer, _, _ = build_side(fw, pair_name, reverse)
        before = state_numpy(fw, layer)
        try:
            lines = padiff.import_weights(layer, os.path.join(work, "weights.safetensors"), layer_map=lm)
        except PadiffError as exc:
            after = state_numpy(fw, layer)
            changed = [k for k in before if not np.array_equal(before[k], after[k])]
            out[key] = {"refused": f"{type(exc).__name__}: {exc}", "wrong": [], "changed_on_refusal": changed}
            continue
        got = state_numpy(fw, layer)
        wrong = [k for k in want if got[k].shape != want[k].shape
                 or not np.allclose(got[k], want[k], atol=1e-6, rtol=1e-6)]
        out[key] = {"refused": "", "wrong": wrong, "lines": len(lines)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("fw", choices=("paddle", "torch"))
    ap.add_argument("pair")
    ap.add_argument("work")
    ap.add_argument("--reverse", action="store_true")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--fault-step", type=int, default=1)
    a = ap.parse_args(argv)
    other = OTHER[a.fw][0]
    import padiff

    model, inp, pair = build_side(a.fw, a.pair, a.reverse)
    if a.fw == "torch":
        load_state(a.fw, model, os.path.join(a.work, "pt_state.npz"))
        padiff.export_weights(model, os.path.join(a.work, "weights.safetensors"), overwrite=True)
        record(a.fw, model, inp, os.path.join(a.work, "pt"), a.steps)
        model, inp, pair = build_side(a.fw, a.pair, a.reverse)
        load_state(a.fw, model, os.path.join(a.work, "pt_state.npz"))
        record(a.fw, model, inp, os.path.join(a.work, "pt_fault"), a.steps, (pair.fault_leaf, a.fault_step))
    else:
        with open(os.path.join(a.work, "import.json"), "w") as f:
            json.dump(import_check(a.fw, a.pair, a.reverse, a.work), f)
        model, inp, pair = build_side(a.fw, a.pair, a.reverse)
        load_state(a.fw, model, os.path.join(a.work, "pd_state.npz"))
        record(a.fw, model, inp, os.path.join(a.work, "pd"), a.steps)
    real = [n for n, m in sys.modules.items() if (n == other or n.startswith(other + ".")) and m is not None]
    assert not real, f"{other} was imported while recording {a.fw}: {real[:5]}"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
