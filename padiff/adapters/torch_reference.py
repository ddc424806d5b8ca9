"""A float64 copy of a torch model, its inputs and its optimizer: the reference of calibrated verdicts.

The copy is separate from the user's model (``copy.deepcopy``), so nothing of theirs changes:
its parameters and buffers are cast to float64, and so are floating tensors held as plain
attributes (a mask kept as ``self.mask``), which ``Module.double()`` leaves alone. The
optimizer is rebuilt on the copy's parameters with the same class, per-group settings and
state; a zero-argument callable cannot be rebuilt (it closes over the user's parameters).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from typing import Any


def float64_copy(module: Any) -> Any:
    """A deep copy of ``module`` computing in float64 (parameters, buffers, tensor attributes)."""
    import torch

    twin = copy.deepcopy(module)
    twin.double()
    for sub in twin.modules():
        for name, value in list(vars(sub).items()):
            plain = isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter)
            if plain and value.is_floating_point():
                setattr(sub, name, value.detach().to(torch.float64))
    return twin


def float64_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The forward's keyword arguments with every floating tensor cast to float64 (grad flags kept)."""
    import torch

    def cast(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            if not obj.is_floating_point():
                return obj
            out = obj.detach().to(torch.float64)
            return out.requires_grad_(True) if obj.requires_grad else out
        if isinstance(obj, Mapping):
            return {k: cast(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            items = [cast(v) for v in obj]
            return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
        return obj

    return {k: cast(v) for k, v in inputs.items()}


def mirror_optimizer(opt: Any, module: Any, twin: Any) -> tuple[Any | None, str]:
    """``(optimizer on twin's parameters, "")``, or ``(None, why)`` when ``opt`` cannot be rebuilt."""
    import torch

    if not isinstance(opt, torch.optim.Optimizer):
        return None, ("the torch optimizer is a callable, which padiff cannot run on the float64 copy; "
                      "pass a torch.optim optimizer to calibrate the 'weight' stage")
    by_id = {id(p): name for name, p in module.named_parameters(remove_duplicate=False)}
    twin_params = dict(twin.named_parameters(remove_duplicate=False))
    groups = []
    for g in opt.param_groups:
        names = [by_id.get(id(p)) for p in g["params"]]
        if any(n is None or n not in twin_params for n in names):
            return None, "the torch optimizer holds tensors that are not parameters of the torch model"
        groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": [twin_params[n] for n in names]})
    try:
        # defaults may hold settings the constructor does not take (AdamW's decoupled_weight_decay);
        # the groups carry every setting anyway
        accepted = inspect.signature(type(opt).__init__).parameters
        twin_opt = type(opt)(groups, **{k: v for k, v in opt.defaults.items() if k in accepted})
        twin_opt.load_state_dict(opt.state_dict())  # state (moments, step counts) cast to float64
    except Exception as e:  # noqa: BLE001 - any failure only means no reference for the weights
        return None, f"the torch optimizer ({type(opt).__name__}) could not be rebuilt on the float64 copy: {e}"
    return twin_opt, ""


# --- following the user's own training loop (``padiff.Recorder(..., reference="float64")``) ----------------
def parameter_pairs(module: Any, twin: Any) -> list[tuple[Any, Any]]:
    """``(user parameter, copy's parameter)`` for every parameter of ``module`` (by name)."""
    twin_params = dict(twin.named_parameters(remove_duplicate=False))
    return [(p, twin_params[n]) for n, p in module.named_parameters(remove_duplicate=False) if n in twin_params]


def follow_cleared_grads(pairs: list[tuple[Any, Any]]) -> None:
    """Clear a copy's gradient where the user's is cleared (``None`` or all zero: ``zero_grad`` ran)."""
    for p, q in pairs:
        if q.grad is not None and (p.grad is None or not bool(p.grad.any())):
            q.grad = None


def follow_modes(module: Any, twin: Any) -> None:
    """Give every layer of the copy its user's layer's train/eval mode (``model.eval()`` after the copy was made)."""
    for (_, m), (_, t) in zip(module.named_modules(remove_duplicate=False), twin.named_modules(remove_duplicate=False)):
        t.training = m.training


def versions(params: list[Any]) -> list[int]:
    """Each tensor's in-place version counter: it moves when anything writes into the tensor."""
    return [int(p._version) for p in params]


def on_optimizer_step(hook: Callable[[Any], None]) -> Any:
    """Call ``hook(optimizer)`` before every ``torch.optim`` optimizer's step, in this process; returns the
    handle (``.remove()``). Observing the step this way leaves the user's optimizer as it is."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    return register_optimizer_step_pre_hook(lambda opt, _args, _kwargs: hook(opt))


def optimizer_params(opt: Any) -> list[Any]:
    """The tensors a torch optimizer updates."""
    return [p for g in getattr(opt, "param_groups", []) for p in g["params"]]


def backward_from(outputs: list[Any], grads: list[Any]) -> None:
    """Backward from ``outputs`` with the given gradients (cast to each output's dtype)."""
    import torch

    torch.autograd.backward(outputs, [g.to(device=o.device, dtype=o.dtype) for o, g in zip(outputs, grads)])


def backward_loss(loss: Any) -> None:
    """Backward from a scalar loss."""
    loss.backward()
