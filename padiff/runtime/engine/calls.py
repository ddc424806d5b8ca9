"""Running the user's code with error context: model, loss, backward, optimizer.

Whatever the user's model, loss function or optimizer raises becomes a
:class:`~padiff.errors.ModelRunError` that names the side, the stage, the step and, for
a forward, the layer that was running, with the original chained as ``__cause__``. A
:class:`~padiff.errors.PadiffError` raised from inside (a hook's) passes through as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from padiff.adapters import FrameworkSide, nested
from padiff.compare.projection import projection
from padiff.errors import ModelRunError, OptionsError, PadiffError
from padiff.runtime.engine.recording import SideRecorder
from padiff.runtime.rnn_mode import eval_rnn_hint


def call_model(rec: SideRecorder, inputs: Mapping[str, Any], what: str, step: int) -> Any:
    """``rec.root(**inputs)``; the events still open when it raised are closed in any case."""
    name = rec.side.name
    try:
        return rec.root(**inputs)
    except PadiffError:
        raise
    except SystemExit as e:  # a model that calls sys.exit compared nothing: a usage error, not a verdict
        raise ModelRunError(
            f"the {name} model called sys.exit({e.code!r}) during {what} (step {step}); nothing "
            f"was compared. Remove the exit from the {name} model's forward (raise an exception instead)."
        ) from e
    except Exception as e:
        raiser = rec.raising_layer(e)
        where = f" inside layer {raiser[0] or '<root>'} ({raiser[1]})" if raiser is not None else ""
        raise ModelRunError(
            f"the {name} model raised during {what} (step {step}){where}: "
            f"{type(e).__name__}: {e}. Check the {name} half of example_inp "
            "(shapes, dtypes, key names) and that the model runs on its own."
        ) from e
    finally:
        rec.active.clear()


def builtin_loss(side: FrameworkSide, out: Any) -> tuple[Any | None, bool]:
    """padiff's own loss: a fixed random projection of the output's non-empty float tensors.

    ``sum_k <w_k, out_k>`` with ``w_k`` from :func:`padiff.compare.projection.projection`
    (seeded, unit length, the same numbers on both sides), so every output element gets a
    gradient: the mean of the output would give a final LayerNorm's input a zero gradient and
    leave the backward check comparing rounding noise. Half precision is widened to float32
    first (it would lose digits). Returns ``(loss, False)``, or ``(None, all_empty)`` when there
    is nothing to project: ``all_empty`` when the output has float tensors but none holds an
    element. Dicts are walked in key order, so outputs built in another key order (paired by
    key) get the same weights and add up in the same order.
    """
    floats = [t for t in nested.flatten(out, side.is_tensor, by_key=True) if "float" in side.dtype_name(t)]
    tensors = [side.widen(t) for t in floats if side.numel(t) > 0]
    if not tensors:
        return None, bool(floats)
    loss = None
    for k, t in enumerate(tensors):
        w = side.from_numpy(projection(k, tuple(side.shape(t))), like=t)
        term = (t * w).sum()
        loss = term if loss is None else loss + term
    return loss, False


def compute_loss(side: FrameworkSide, out: Any, loss_fn: Callable[[Any], Any] | None, which: int,
                 step: int) -> tuple[Any | None, bool]:
    """The loss of one side (``which``: 0 paddle, 1 torch), checked to be a scalar tensor of that side.

    ``loss_fn`` None uses :func:`builtin_loss`, and returns what it returns.
    """
    try:
        if loss_fn is None:
            loss, empty = builtin_loss(side, out)
            if loss is None:
                return None, empty
        else:
            loss = loss_fn(out)
    except PadiffError:
        raise
    except Exception as e:
        what = (f"loss_fn[{which}] (the {side.name} loss function)" if loss_fn is not None
                else f"padiff's built-in loss (a fixed projection of the {side.name} output)")
        raise ModelRunError(
            f"{what} raised during step {step}: {type(e).__name__}: {e}. loss_fn must be "
            "[paddle_loss, torch_loss], each taking the model output and returning a scalar tensor."
        ) from e
    if not side.is_tensor(loss):
        raise OptionsError(f"loss_fn for {side.name} must return a {side.name} tensor, got {type(loss).__name__}.")
    if side.numel(loss) != 1:
        raise OptionsError(
            f"loss_fn for {side.name} returned a tensor of shape {list(side.shape(loss))}; it must return "
            "a scalar (e.g. end it with .mean() or .sum())."
        )
    return loss, False


def run_backward(side: FrameworkSide, loss: Any, step: int, root: Any = None) -> None:
    """``loss.backward()`` for one side; a loss that cannot reach any parameter or input is a usage error.

    ``root`` (the side's model) lets a known framework limitation be named with its fix
    (:func:`padiff.runtime.rnn_mode.eval_rnn_hint`) instead of the generic advice.
    """
    if not side.requires_grad(loss):
        raise ModelRunError(
            f"the {side.name} loss does not require grad, so backward cannot run: no parameter or "
            "input takes part in it (frozen model, a no_grad region, an int output, or a loss_fn that detaches). "
            "Use options={'diff_phase': 'forward'} to compare the forward pass only."
        )
    try:
        side.backward(loss)
    except PadiffError:
        raise
    except Exception as e:
        hint = eval_rnn_hint(side, root, e) if root is not None else None
        if hint is not None:
            raise ModelRunError(f"the {side.name} model raised during backward (step {step}): {hint}") from e
        raise ModelRunError(
            f"the {side.name} model raised during backward (step {step}): {type(e).__name__}: {e}. "
            f"Check that the {side.name} model's forward and backward run on their own with this input "
            "(custom autograd functions, in-place ops on tensors autograd still needs)."
        ) from e


def skipped_backward_warning(side: FrameworkSide, empty_output: bool) -> str:
    """The warning for a side without a loss, whose backward padiff therefore skips."""
    what = ("every float tensor of the output is empty (no elements)" if empty_output
            else "the output has no float tensor")
    return f"{side.name}: {what}, so backward was skipped."


def step_optimizer(side: FrameworkSide, opt: Any, step: int) -> None:
    """One step of the user's optimizer (then its clear), as the adapter does it."""
    try:
        side.step_optimizer(opt)
    except Exception as e:
        raise ModelRunError(
            f"the {side.name} optimizer raised during step {step}: {type(e).__name__}: {e}. "
            "optimizer must be [paddle_opt, torch_opt] optimizers, or two callables that step and clear."
        ) from e
