"""Model pairs whose forward agrees and whose first difference is a gradient (backward op view tests).

The line the backward op view must name carries a ``# op:<case>:<side>`` marker (looked up with
:func:`models.op_pairs.marked_line` on this file's path).
"""

from __future__ import annotations

import paddle
import torch


def marked_line(case: str, side: str) -> int:
    """Line number in this file of the ``# op:<case>:<side>`` marker."""
    with open(__file__, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.rstrip().endswith(f"# op:{case}:{side}"):
                return n
    raise LookupError(case + side)


# --- a custom tanh whose hand-written backward is wrong on the paddle side -----------------------
class PaddleTanh(paddle.autograd.PyLayer):
    @staticmethod
    def forward(ctx, x):
        y = paddle.tanh(x)  # op:pylayer:paddle
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensor()
        return g * (1 - y)  # should be 1 - y * y


class TorchTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)  # op:pylayer:torch
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class PaddleCustomAct(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = paddle.nn.Linear(8, 16), paddle.nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(PaddleTanh.apply(self.fc1(x)))


class TorchCustomAct(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(TorchTanh.apply(self.fc1(x)))


# --- a gradient hook scaling what flows back into fc1, paddle side only --------------------------
class PaddleGradHook(paddle.nn.Layer):
    def __init__(self, factor: float = 1.05) -> None:
        super().__init__()
        self.fc1, self.fc2 = paddle.nn.Linear(8, 16), paddle.nn.Linear(16, 4)
        self.factor = factor

    def forward(self, x):
        h = self.fc1(x)  # op:hook:paddle
        if self.factor != 1.0:
            h.register_hook(lambda g: g * self.factor)
        return self.fc2(paddle.tanh(h))


class TorchGradHook(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)

    def forward(self, x):
        h = self.fc1(x)  # op:hook:torch
        return self.fc2(torch.tanh(h))


# --- a scale the paddle port detaches (stop_gradient) and torch does not --------------------------
class PaddleDetachedScale(paddle.nn.Layer):
    def __init__(self, detach: bool = True) -> None:
        super().__init__()
        self.fc1, self.fc2 = paddle.nn.Linear(8, 16), paddle.nn.Linear(16, 4)
        self.detach = detach

    def forward(self, x):
        h = self.fc1(x)
        s = h.abs().mean(axis=-1, keepdim=True)
        if self.detach:
            s = s.detach()
        return self.fc2(h / s)  # op:detach:paddle


class TorchDetachedScale(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)

    def forward(self, x):
        h = self.fc1(x)
        s = h.abs().mean(dim=-1, keepdim=True)
        return self.fc2(h / s)  # op:detach:torch


# --- the same wrong custom backward on a residual branch: ``h + f(h)`` ----------------------------
class PaddleResidualAct(PaddleCustomAct):
    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h + PaddleTanh.apply(h))


class TorchResidualAct(TorchCustomAct):
    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h + TorchTanh.apply(h))


# --- a squared ReLU written as a custom function of two ops, its backward missing the factor 2 -----
class PaddleSquaredReLU(paddle.autograd.PyLayer):
    @staticmethod
    def forward(ctx, x):
        r = paddle.nn.functional.relu(x)
        ctx.save_for_backward(r)
        return r * r  # op:squared:paddle

    @staticmethod
    def backward(ctx, g):
        (r,) = ctx.saved_tensor()
        return g * r  # should be 2 * r


class TorchSquaredReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        r = torch.relu(x)
        ctx.save_for_backward(r)
        return r * r  # op:squared:torch

    @staticmethod
    def backward(ctx, g):
        (r,) = ctx.saved_tensors
        return g * 2 * r


class PaddleSquaredAct(PaddleCustomAct):
    def forward(self, x):
        return self.fc2(PaddleSquaredReLU.apply(self.fc1(x)))


class TorchSquaredAct(TorchCustomAct):
    def forward(self, x):
        return self.fc2(TorchSquaredReLU.apply(self.fc1(x)))


# --- the gradient hook again, with torch's ReLU changing fc1's output in place ---------------------
class PaddleHookRelu(PaddleGradHook):
    def forward(self, x):
        h = self.fc1(x)  # op:inplace:paddle
        h.register_hook(lambda g: g * self.factor)
        return self.fc2(paddle.nn.functional.relu(h))


class TorchHookInplaceRelu(TorchGradHook):
    def forward(self, x):
        h = self.fc1(x)  # op:inplace:torch
        return self.fc2(torch.nn.functional.relu(h, inplace=True))


# --- a paddle gradient hook on fc1, then code the two sides write differently (same values) --------
class _HookedPaddle(paddle.nn.Layer):
    """fc1's output gets a gradient hook scaling it by 1.05; ``rest`` is the port's own way on from there."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc3, self.fc2 = paddle.nn.Linear(8, 16), paddle.nn.Linear(8, 16), paddle.nn.Linear(16, 4)

    def forward(self, x):
        h = self.fc1(x)  # op:hooked:paddle
        h.register_hook(lambda g: g * 1.05)
        return self.fc2(self.rest(h, x))


class _HookedTorch(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc3, self.fc2 = torch.nn.Linear(8, 16), torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)

    def forward(self, x):
        h = self.fc1(x)  # op:hooked:torch
        return self.fc2(self.rest(h, x))


class PaddleSwappedMul(_HookedPaddle):
    def rest(self, h, x):
        return paddle.tanh(h) * self.fc3(x)


class TorchSwappedMul(_HookedTorch):
    """The operands of the product in the other order: input 0 is not paddle's input 0."""

    def rest(self, h, x):
        return self.fc3(x) * torch.tanh(h)


class PaddleOtherLayout(_HookedPaddle):
    def rest(self, h, x):
        return (paddle.tanh(h).reshape([-1, 4, 4]) * 2.0).transpose([0, 2, 1]).reshape([-1, 16])


class TorchOtherLayout(_HookedTorch):
    """The scale applied after the transpose: the product's gradient is laid out the other way."""

    def rest(self, h, x):
        return (torch.tanh(h).reshape(-1, 4, 4).transpose(1, 2) * 2.0).reshape(-1, 16)


class PaddleFullSlice(_HookedPaddle):
    """``h[..., :16]`` of a 16-wide tensor: paddle hands back a second object sharing h's gradient."""

    def rest(self, h, x):
        return paddle.tanh(h[..., :16]) * self.fc3(x)


class TorchFullSlice(_HookedTorch):
    def rest(self, h, x):
        return torch.tanh(h[..., :16]) * self.fc3(x)


class PaddleSharedReshape(_HookedPaddle):
    """One reshaped tensor read twice."""

    def rest(self, h, x):
        r = h.reshape([-1, 16, 1])
        return (paddle.tanh(r) + r * 2.0).reshape([-1, 16])


class TorchSharedReshape(_HookedTorch):
    """The same values reshaped once per reader: each reshape's output gets only its reader's gradient."""

    def rest(self, h, x):
        return (torch.tanh(h.reshape(-1, 16, 1)) + h.reshape(-1, 16, 1) * 2.0).reshape(-1, 16)
