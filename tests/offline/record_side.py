"""Record one side of a small training run in its own process, the other framework unimportable.

``python record_side.py paddle|torch OUT [options]``: an MLP with weights drawn from a numpy
seed (the same on both sides), trained for ``--steps`` steps with SGD on numpy-seeded batches,
recorded by ``padiff.Recorder``. Options plant faults so tests can check where they are named.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time


class _Block:
    """A sys.meta_path finder refusing one framework: proves the recording side never imports it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == self.name or fullname.startswith(self.name + "."):
            raise ImportError(f"{fullname} is blocked in this process")
        return None


def main() -> None:  # noqa: C901, PLR0915  # a subprocess script: one flat sequence of recording steps
    ap = argparse.ArgumentParser()
    ap.add_argument("fw")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--level", default="full")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--accum", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0, help="scale fc2's output by this")
    ap.add_argument("--fault-step", type=int, default=0, help="first step the scale applies at")
    ap.add_argument("--fault-micro", type=int, default=-1, help="only this micro-step (-1: all)")
    ap.add_argument("--fault-rank", type=int, default=-1, help="only this rank (-1: all)")
    ap.add_argument("--kill-at-step", type=int, default=-1, help="SIGKILL itself in this step, after a backward")
    ap.add_argument("--kill-rank", type=int, default=-1, help="only this rank kills itself (-1: all)")
    ap.add_argument("--pause-at-step", type=int, default=-1,
                    help="in this step, after a backward: create OUT.paused, wait until OUT.go exists")
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--ddp", action="store_true")
    ap.add_argument("--freeze-fc1", action="store_true", help="torch: fc1's parameters do not train")
    ap.add_argument("--rename", action="store_true", help="torch: other attribute names, defined in another order")
    a = ap.parse_args()
    sys.meta_path.insert(0, _Block("torch" if a.fw == "paddle" else "paddle"))
    import numpy as np

    import padiff

    rank = int(os.environ.get("RANK", os.environ.get("PADDLE_TRAINER_ID", "0")))
    rng = np.random.default_rng(0)
    h = a.hidden
    w1, b1 = rng.standard_normal((h, 4)).astype("float32") * 0.5, rng.standard_normal(h).astype("float32") * 0.1
    w2, b2 = rng.standard_normal((3, h)).astype("float32") * 0.5, rng.standard_normal(3).astype("float32") * 0.1
    state = {"scale": 1.0}
    if a.fw == "paddle":
        import paddle

        if a.ddp:
            paddle.distributed.init_parallel_env()

        class Net(paddle.nn.Layer):
            def __init__(self) -> None:
                super().__init__()
                self.fc1, self.act, self.fc2 = paddle.nn.Linear(4, h), paddle.nn.ReLU(), paddle.nn.Linear(h, 3)

            def forward(self, x):
                return self.fc2(self.act(self.fc1(x)) * state["scale"])

        net = Net()
        for p, v in ((net.fc1.weight, w1.T), (net.fc1.bias, b1), (net.fc2.weight, w2.T), (net.fc2.bias, b2)):
            p.set_value(np.ascontiguousarray(v))
        model = paddle.DataParallel(net) if a.ddp else net
        opt = paddle.optimizer.SGD(learning_rate=a.lr, parameters=net.parameters())
        to_t, step_opt = paddle.to_tensor, lambda: (opt.step(), opt.clear_grad())
    else:
        import torch

        if a.ddp:
            torch.distributed.init_process_group("gloo")

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc1, self.act, self.fc2 = torch.nn.Linear(4, h), torch.nn.ReLU(), torch.nn.Linear(h, 3)

            def forward(self, x):
                return self.fc2(self.act(self.fc1(x)) * state["scale"])

        class Renamed(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.second, self.relu, self.first = torch.nn.Linear(h, 3), torch.nn.ReLU(), torch.nn.Linear(4, h)

            def forward(self, x):
                return self.second(self.relu(self.first(x)) * state["scale"])

        net = Renamed() if a.rename else Net()
        l1, l2 = (net.first, net.second) if a.rename else (net.fc1, net.fc2)
        with torch.no_grad():
            for p, v in ((l1.weight, w1), (l1.bias, b1), (l2.weight, w2), (l2.bias, b2)):
                p.copy_(torch.from_numpy(v))
        if a.freeze_fc1:
            l1.requires_grad_(False)
        model = torch.nn.parallel.DistributedDataParallel(net) if a.ddp else net
        opt = torch.optim.SGD(net.parameters(), lr=a.lr)
        to_t, step_opt = torch.from_numpy, lambda: (opt.step(), opt.zero_grad())
    rec = padiff.Recorder(net, a.out, level=a.level)
    data = np.random.default_rng(1 + rank)
    for step in range(a.steps):
        with rec.step(step):
            for micro in range(a.accum):
                faulty = (step >= a.fault_step and a.fault_micro in (-1, micro) and a.fault_rank in (-1, rank))
                state["scale"] = a.scale if faulty else 1.0
                x = to_t(data.standard_normal((5, 4)).astype("float32"))
                loss = (model(x) ** 2).mean() / a.accum
                rec.loss(loss)
                loss.backward()
                if step == a.kill_at_step and a.kill_rank in (-1, rank):
                    os.kill(os.getpid(), signal.SIGKILL)
                if step == a.pause_at_step:
                    open(a.out + ".paused", "w").close()
                    while not os.path.exists(a.out + ".go"):
                        time.sleep(0.05)
            step_opt()
    rec.close()
    assert a.fw not in ("paddle",) or "torch" not in sys.modules
    assert a.fw not in ("torch",) or "paddle" not in sys.modules


if __name__ == "__main__":
    main()
