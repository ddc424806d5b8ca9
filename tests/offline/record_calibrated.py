"""Record one side of :mod:`calibrated_side` in its own process, the other framework blocked.

``python record_calibrated.py paddle|torch OUT [--steps N] [--opt sgd|adamw] [--scale S] [--eps E]
[--reference 0|1] [--loss-fn 0|1] [--level full|stats]``: optimizer steps on one numpy-seeded batch,
recorded by ``padiff.Recorder`` (the torch side with ``reference="float64"`` unless ``--reference 0``).
``python record_calibrated.py live OUT.json [...]``: the same training compared live by ``padiff.compare``
with ``compare_mode="calibrated"``, its report written as JSON (in a process whose thread count is the
recordings', so rounding-level figures are comparable).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from record_side import _Block


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("fw")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--opt", default="sgd")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--reference", type=int, default=1)
    ap.add_argument("--loss-fn", type=int, default=1)
    ap.add_argument("--level", default="full")
    a = ap.parse_args()
    if a.fw == "live":
        live(a)
        return
    sys.meta_path.insert(0, _Block("torch" if a.fw == "paddle" else "paddle"))
    from calibrated_side import batch, build, loss_of, optimizer

    import padiff

    model = build(a.fw, a.scale, a.eps)
    opt = optimizer(a.fw, model, a.opt, a.lr)
    if a.fw == "paddle":
        import paddle

        to_t, clear = paddle.to_tensor, opt.clear_grad
    else:
        import torch

        to_t, clear = torch.from_numpy, opt.zero_grad
    ref = "float64" if a.fw == "torch" and a.reference else None
    rec = padiff.Recorder(model, a.out, level=a.level, graph=False, reference=ref)
    for step in range(a.steps):
        with rec.step(step):
            loss = loss_of(model(to_t(batch())))
            rec.loss(loss, fn=loss_of if a.loss_fn and ref else None)
            loss.backward()
            opt.step()  # inside the step: its "weight" records are the values after the step, as live
            clear()
    rec.close()
    other = "torch" if a.fw == "paddle" else "paddle"
    assert other not in sys.modules, f"{other} was imported while recording {a.fw}"


def live(a: argparse.Namespace) -> None:
    """The live calibrated comparison of the same training, written to ``a.out`` as JSON."""
    import paddle
    import torch
    from calibrated_side import batch, build, loss_of, optimizer

    import padiff
    from padiff.report.json_report import write_json

    pm, tm = build("paddle"), build("torch", a.scale, a.eps)
    x = batch()
    opts = (optimizer("paddle", pm, a.opt, a.lr), optimizer("torch", tm, a.opt, a.lr))
    rep = padiff.compare(pm, tm, ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)}), steps=a.steps,
                         optimizer=opts, options={"compare_mode": "calibrated"}, loss_fn=(loss_of, loss_of))
    write_json(rep, a.out)


if __name__ == "__main__":
    main()
