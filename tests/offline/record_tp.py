"""Record a small MLP trained 2 steps, optionally tensor-parallel over 2 ranks (CPU, gloo).

``python record_tp.py paddle|torch OUT [--tp] [--scale S --fault-rank R]``: ``fc1`` column-parallel,
``fc2`` row-parallel (torch: ``parallelize_module`` with DTensor; paddle: auto-parallel
``dist.shard_tensor``). The fault scales ``fc1``'s output on one rank only, at step 1, so one
shard of the activation differs. Weights and batches come from numpy seeds (the same on every
rank and both frameworks).
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("fw")
    ap.add_argument("out")
    ap.add_argument("--tp", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--fault-rank", type=int, default=-1)
    a = ap.parse_args()
    import numpy as np

    import padiff

    rank = int(os.environ.get("RANK", os.environ.get("PADDLE_TRAINER_ID", "0")))
    rng = np.random.default_rng(0)
    w1, b1 = rng.standard_normal((8, 4)).astype("float32") * 0.5, rng.standard_normal(8).astype("float32") * 0.1
    w2, b2 = rng.standard_normal((3, 8)).astype("float32") * 0.5, rng.standard_normal(3).astype("float32") * 0.1
    state = {"scale": 1.0}
    if a.fw == "paddle":
        import paddle
        import paddle.distributed as dist

        class PNet(paddle.nn.Layer):
            def __init__(self) -> None:
                super().__init__()
                self.fc1, self.act, self.fc2 = paddle.nn.Linear(4, 8), paddle.nn.ReLU(), paddle.nn.Linear(8, 3)

            def forward(self, x):
                return self.fc2(self.act(self.fc1(x) * state["scale"]))

        net = PNet()
        for p, v in ((net.fc1.weight, w1.T), (net.fc1.bias, b1), (net.fc2.weight, w2.T), (net.fc2.bias, b2)):
            p.set_value(np.ascontiguousarray(v))
        if a.tp:
            mesh = dist.ProcessMesh([0, 1], dim_names=["tp"])
            net.fc1.weight = dist.shard_tensor(net.fc1.weight, mesh, [dist.Shard(1)])
            net.fc1.bias = dist.shard_tensor(net.fc1.bias, mesh, [dist.Shard(0)])
            net.fc2.weight = dist.shard_tensor(net.fc2.weight, mesh, [dist.Shard(0)])
        opt = paddle.optimizer.SGD(learning_rate=0.1, parameters=net.parameters())
        to_t, step_opt = paddle.to_tensor, lambda: (opt.step(), opt.clear_grad())
    else:
        import torch

        class TNet(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc1, self.act, self.fc2 = torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)

            def forward(self, x):
                return self.fc2(self.act(self.fc1(x) * state["scale"]))

        net = TNet()
        with torch.no_grad():
            for p, v in ((net.fc1.weight, w1), (net.fc1.bias, b1), (net.fc2.weight, w2), (net.fc2.bias, b2)):
                p.copy_(torch.from_numpy(v))
        if a.tp:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

            mesh = init_device_mesh("cpu", (2,))
            parallelize_module(net, mesh, {"fc1": ColwiseParallel(), "fc2": RowwiseParallel()})
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        to_t, step_opt = torch.from_numpy, lambda: (opt.step(), opt.zero_grad())
    rec = padiff.Recorder(net, a.out)
    data = np.random.default_rng(1)
    for step in range(2):
        state["scale"] = a.scale if step == 1 and rank == a.fault_rank else 1.0
        with rec.step(step):
            loss = (net(to_t(data.standard_normal((5, 4)).astype("float32"))) ** 2).mean()
            rec.loss(loss)
            loss.backward()
            step_opt()
    rec.close()


if __name__ == "__main__":
    main()
