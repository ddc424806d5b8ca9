"""The user's ``options`` dict, parsed once into a frozen :class:`DiffOptions`.

Nothing downstream reads the raw dict and the user's dict is never mutated. Cross-field
rules (``diff_phase="backward"`` needs ``single_step``, ``steps > 1`` needs an optimizer
and both phases) live here so every entry point gives the same answer.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, TypeVar

from padiff.errors import OptionsError

DiffPhase = Literal["both", "forward", "backward"]
CompareMode = Literal["mean", "strict", "calibrated"]
DIFF_PHASES: tuple[DiffPhase, ...] = ("both", "forward", "backward")
COMPARE_MODES: tuple[CompareMode, ...] = ("mean", "strict", "calibrated")


@dataclass(frozen=True)
class DiffOptions:
    """Validated comparison options.

    ``compare_mode="mean"`` judges the mean of the element-wise error,
    ``mean(|paddle - torch|) <= atol + rtol * mean(|torch|)``; ``"strict"`` every element,
    ``|paddle - torch| <= atol + rtol * |torch|`` (as ``numpy.isclose``).
    ``mismatch_ratio`` is the largest fraction of *boundary-flip* elements (zero on one
    side, as at a ReLU within rounding of 0) a comparison may hold and still pass; other
    mismatches are never accepted. Off (0) by default.
    """

    atol: float = 0.0
    rtol: float = 1e-7
    diff_phase: DiffPhase = "both"
    compare_mode: CompareMode = "mean"
    single_step: bool = False
    mismatch_ratio: float = 0.0

    @classmethod
    def valid_keys(cls) -> tuple[str, ...]:
        """The option names a user may pass, in documentation order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> DiffOptions:
        """Copy and validate a user's options dict; unknown keys name the valid ones."""
        if options is None:
            return cls()
        if isinstance(options, DiffOptions):  # built directly, so not validated yet
            return cls.from_mapping(options.to_dict())
        if not isinstance(options, Mapping):
            raise OptionsError(
                f"options must be a dict such as {{'atol': 1e-6}}, got {type(options).__name__}. "
                f"Valid keys: {', '.join(cls.valid_keys())}."
            )
        raw = dict(options)
        unknown = sorted(str(k) for k in raw if k not in cls.valid_keys())
        if unknown:
            raise OptionsError(
                f"unknown option(s) {', '.join(repr(k) for k in unknown)}. "
                f"Valid keys: {', '.join(cls.valid_keys())}."
            )
        atol = _tolerance(raw.get("atol", cls.atol), "atol")
        rtol = _tolerance(raw.get("rtol", cls.rtol), "rtol")
        diff_phase = _choice(raw.get("diff_phase", cls.diff_phase), "diff_phase", DIFF_PHASES)
        compare_mode = _choice(raw.get("compare_mode", cls.compare_mode), "compare_mode", COMPARE_MODES)
        single_step = raw.get("single_step", cls.single_step)
        if not isinstance(single_step, bool):
            raise OptionsError(f"option 'single_step' must be True or False, got {single_step!r}.")
        if diff_phase == "backward" and not single_step:
            raise OptionsError(
                "diff_phase='backward' is only valid with single_step=True: without it the "
                "backward pass depends on the forward, so compare both with diff_phase='both'."
            )
        if compare_mode == "calibrated" and single_step:
            raise OptionsError(
                "compare_mode='calibrated' cannot be combined with single_step=True: the float64 reference runs "
                "the torch model on its own inputs, while single_step feeds it paddle's. Use one of them."
            )
        mismatch_ratio = _tolerance(raw.get("mismatch_ratio", cls.mismatch_ratio), "mismatch_ratio")
        if mismatch_ratio >= 1:
            raise OptionsError(
                f"option 'mismatch_ratio' is a fraction of a tensor's elements and must be below 1, got "
                f"{mismatch_ratio!r}; 1e-4 accepts one boundary-flip element in ten thousand."
            )
        return cls(atol=atol, rtol=rtol, diff_phase=diff_phase, compare_mode=compare_mode, single_step=single_step,
                   mismatch_ratio=mismatch_ratio)

    @property
    def checks_forward(self) -> bool:
        """Whether forward outputs (and the loss) are compared."""
        return self.diff_phase in ("both", "forward")

    @property
    def checks_backward(self) -> bool:
        """Whether gradients are compared (and so whether backward runs at all)."""
        return self.diff_phase in ("both", "backward")

    def for_ops(self) -> DiffOptions:
        """The options the op views judge single operations by.

        A calibrated run has a float64 reference for layer records only, so its op views use the
        ``mean`` verdict at the README's float32 port-check rtol (at least 1e-4).
        """
        if self.compare_mode != "calibrated":
            return self
        return replace(self, compare_mode="mean", rtol=max(self.rtol, 1e-4))

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the options, for reports."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def validate_steps(steps: Any, options: DiffOptions, has_optimizer: bool) -> int:
    """Check ``steps`` against the options: several steps need an optimizer and both phases."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):  # np.int64 is fine too
        raise OptionsError(f"steps must be a positive int, got {steps!r}.")
    n = int(steps)
    if n < 1:
        raise OptionsError(f"steps must be at least 1, got {n}.")
    if n > 1:
        if not has_optimizer:
            raise OptionsError(
                f"steps={n} needs optimizer=[paddle_opt, torch_opt]: without an optimizer "
                "every step would repeat the first one. Pass an optimizer or use steps=1."
            )
        if options.diff_phase != "both":
            raise OptionsError(
                f"steps={n} needs diff_phase='both' (got {options.diff_phase!r}): training "
                "steps need the backward pass. Use steps=1 to check one phase only."
            )
        if options.single_step:
            raise OptionsError(
                f"steps={n} cannot be combined with single_step=True: a single-step forward "
                "feeds paddle inputs into torch layers, so it cannot be used for real training."
            )
    return n


def _tolerance(value: Any, name: str) -> float:
    # numbers.Real: also numpy scalars (np.float32(1e-5)) and Fractions; bools are not tolerances
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionsError(f"option {name!r} must be a number, got {value!r}.")
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        number = math.inf
    if math.isnan(number) or number < 0 or math.isinf(number):
        raise OptionsError(f"option {name!r} must be a finite number >= 0, got {value!r}.")
    return number


_C = TypeVar("_C", bound=str)


def _choice(value: Any, name: str, choices: tuple[_C, ...]) -> _C:
    for choice in choices:
        if isinstance(value, str) and value == choice:
            return choice
    raise OptionsError(f"option {name!r} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}.")
