"""Record one side of the fused decoder block (:mod:`fused_side`) in its own process, the other framework blocked.

``python record_fused.py paddle|torch OUT [--steps N] [--fault F --fault-step S] [--graph 0|1] [--level L]
[--reference]``:
SGD steps on the numpy-seeded batches of :func:`fused_side.batch`, recorded by ``padiff.Recorder``.
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
    ap.add_argument("--fault", type=float, default=1.0)
    ap.add_argument("--fault-step", type=int, default=0)
    ap.add_argument("--graph", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--fault-rank", type=int, default=-1)
    ap.add_argument("--reference", action="store_true", help="torch: record the float64 reference too")
    ap.add_argument("--level", default="full")
    ap.add_argument("--tp", action="store_true", help="torch: heads split over 2 ranks (q/k/v column-, out_proj "
                                                      "row-parallel, DTensor under torchrun)")
    a = ap.parse_args()
    sys.meta_path.insert(0, _Block("torch" if a.fw == "paddle" else "paddle"))
    from fused_side import batch, build

    import padiff

    model, state = build(a.fw, a.fault, a.fault_step, a.fault_rank)
    if a.fw == "paddle":
        import paddle

        opt = paddle.optimizer.SGD(learning_rate=a.lr, parameters=model.parameters())
        to_t, step_opt = paddle.to_tensor, lambda: (opt.step(), opt.clear_grad())
    else:
        import torch

        if a.tp:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

            mesh = init_device_mesh("cpu", (2,))
            parallelize_module(model, mesh, {"attn.q_proj": ColwiseParallel(), "attn.k_proj": ColwiseParallel(),
                                             "attn.v_proj": ColwiseParallel(), "attn.out_proj": RowwiseParallel()})
        opt = torch.optim.SGD(model.parameters(), lr=a.lr)
        to_t, step_opt = torch.from_numpy, lambda: (opt.step(), opt.zero_grad())
    reference = "float64" if a.reference and a.fw == "torch" else None
    rec = padiff.Recorder(model, a.out, graph=bool(a.graph), level=a.level, reference=reference)
    for step in range(a.steps):
        state["step"] = step
        with rec.step(step):
            loss = (model(to_t(batch(0))) ** 2).mean()  # the live engine feeds one input every step
            rec.loss(loss, fn=(lambda out: (out ** 2).mean()) if reference else None)
            loss.backward()
            step_opt()  # inside the step: its "weight" records are the values after the step, as live
    rec.close()
    other = "torch" if a.fw == "paddle" else "paddle"
    assert other not in sys.modules, f"{other} was imported while recording {a.fw}"


if __name__ == "__main__":
    main()
