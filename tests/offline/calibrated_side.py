"""A small training model per framework for calibrated verdicts, built so each side imports only its own.

``fc1 -> BatchNorm1D -> ReLU -> fc2 -> LayerNorm -> head``: fc1's bias sits before a BatchNorm that
removes it, so its true gradient is zero (rounding noise on both sides, which AdamW turns into
full-size updates); the LayerNorm's ``eps`` and a scale on its output are the planted faults.
Weights and batches come from numpy seeds, the same numbers on both sides.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IN, HID, OUT, BATCH = 6, 16, 4, 8


def weights() -> dict[str, np.ndarray]:
    """The shared numbers, in torch's layout (Linear weights ``[out, in]``)."""
    rng = np.random.default_rng(0)
    return {"fc1.weight": (rng.standard_normal((HID, IN)) * 0.4).astype("float32"),
            "fc1.bias": (rng.standard_normal(HID) * 0.1).astype("float32"),
            "fc2.weight": (rng.standard_normal((HID, HID)) * 0.3).astype("float32"),
            "fc2.bias": (rng.standard_normal(HID) * 0.1).astype("float32"),
            "head.weight": (rng.standard_normal((OUT, HID)) * 0.3).astype("float32"),
            "head.bias": (rng.standard_normal(OUT) * 0.1).astype("float32")}


def batch() -> np.ndarray:
    """The input of every step (the live engine feeds one input every step)."""
    return np.random.default_rng(7).standard_normal((BATCH, IN)).astype("float32")


def loss_of(out: Any) -> Any:
    """The loss both sides train on (any framework: only ``**`` and ``mean``)."""
    return (out ** 2).mean()


def build(fw: str, scale: float = 1.0, eps: float = 1e-5) -> Any:
    """The model for ``fw``; ``scale`` multiplies the LayerNorm's output, ``eps`` is the LayerNorm's."""
    w = weights()
    if fw == "paddle":
        import paddle

        class PNet(paddle.nn.Layer):
            def __init__(self) -> None:
                super().__init__()
                self.fc1, self.bn = paddle.nn.Linear(IN, HID), paddle.nn.BatchNorm1D(HID)
                self.fc2, self.ln = paddle.nn.Linear(HID, HID), paddle.nn.LayerNorm(HID, epsilon=eps)
                self.head = paddle.nn.Linear(HID, OUT)

            def forward(self, x: Any) -> Any:
                return self.head(self.ln(self.fc2(paddle.nn.functional.relu(self.bn(self.fc1(x))))) * scale)

        pm = PNet()
        for name, p in pm.named_parameters():
            if name in w:
                p.set_value(np.ascontiguousarray(w[name].T if name.endswith("weight") and p.ndim == 2 else w[name]))
        return pm
    import torch

    class TNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.bn = torch.nn.Linear(IN, HID), torch.nn.BatchNorm1d(HID)
            self.fc2, self.ln = torch.nn.Linear(HID, HID), torch.nn.LayerNorm(HID, eps=eps)
            self.head = torch.nn.Linear(HID, OUT)

        def forward(self, x: Any) -> Any:
            return self.head(self.ln(self.fc2(torch.relu(self.bn(self.fc1(x))))) * scale)

    tm = TNet()
    with torch.no_grad():
        for name, p in tm.named_parameters():
            if name in w:
                p.copy_(torch.from_numpy(w[name]))
    return tm


def optimizer(fw: str, model: Any, kind: str, lr: float) -> Any:
    """SGD or AdamW with the same settings on both sides."""
    if fw == "paddle":
        import paddle

        if kind == "adamw":
            return paddle.optimizer.AdamW(learning_rate=lr, parameters=model.parameters(), weight_decay=0.01)
        return paddle.optimizer.SGD(learning_rate=lr, parameters=model.parameters())
    import torch

    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    return torch.optim.SGD(model.parameters(), lr=lr)
