"""Gradients at rounding level: a backward check there compares noise, and the report says where it began.

A loss that does not depend on the model's output (the mean of a LayerNorm's output does not
depend on its input), or a layer that cuts the dependence, leaves every gradient before it at
rounding level on both sides: such comparisons pass or fail by chance. In one backward pass the
output gradients arrive in reverse call order; a gradient is at rounding level when both sides'
mean magnitude is below ``NOISE_TAU`` times the dtype's resolution times the pass's gradient
scale: the largest gradient seen so far, and at least ``1 / n`` for an output of ``n`` elements
(what a mean over the output gives). Measured on a LayerNorm-ended block with the mean as loss:
such gradients are ~2e-7 of the scale, real ones above 1e-2; the threshold sits at 1.2e-5 (float32).
"""

from __future__ import annotations

import math
from dataclasses import replace

from padiff.compare.calibrated import NOISE_TAU, resolution
from padiff.report.records import Stats


class VanishingGradients:
    """Watches one backward pass's output gradients, in arrival order."""

    def __init__(self) -> None:
        self.scale = 0.0
        self.floor = 0.0
        self.last_real: tuple[str, str] | None = None  # (torch path, class) of the last real gradient seen
        self.warned = False

    def begin(self, output_elements: int) -> None:
        """A new backward pass of a model whose float outputs hold ``output_elements`` elements."""
        self.scale, self.last_real, self.warned = 0.0, None, False
        self.floor = 1.0 / output_elements if output_elements > 0 else 0.0

    def judge(self, stats: Stats, dtype: str, path: str, cls: str) -> tuple[Stats, str]:
        """``stats`` with a note when its gradients are rounding noise, and the warning to give ("" for none)."""
        if stats.note_kind not in ("", "noise", "fallback") or math.isnan(stats.mean_abs_ref):
            return stats, ""
        scale = max(self.scale, self.floor)
        size = stats.mean_abs_ref + stats.mean_abs_diff  # bounds both sides' mean |grad|
        if size == 0:  # exactly zero on both sides: an output the loss does not use, not noise
            return stats, ""
        noise = stats.note_kind == "noise" or (scale > 0 and size <= NOISE_TAU * resolution(dtype) * scale)
        if not noise:
            self.scale = max(self.scale, stats.mean_abs_ref)
            self.last_real = (path, cls)
            return stats, ""
        if stats.note_kind != "noise":
            text = (f"gradient at rounding level on both sides (mean |grad| <= {size:.2g}, the pass's gradients "
                    f"reach {scale:.2g}): this compares noise")
            stats = replace(stats, note=text + (f"; {stats.note}" if stats.note else ""), note_kind="noise")
        warning = "" if self.warned else self._warning(path, cls)
        self.warned = True
        return stats, warning

    def _warning(self, path: str, cls: str) -> str:
        here = f"{path or '<root>'} ({cls})"
        if self.last_real is None:
            return (f"the gradient reaching the model is at rounding level on both sides (first seen at {here}): "
                    "the loss hardly depends on the output (e.g. the mean of a LayerNorm's output), so the backward "
                    "check compares noise. Use a loss that depends on every output element, or padiff's built-in "
                    "loss (loss_fn=None).")
        p, c = self.last_real
        return (f"the gradient vanishes at {p or '<root>'} ({c}): the gradient reaching its output is real, the one "
                f"reaching {here} and every layer before it is at rounding level on both sides, so the backward "
                "check there compares noise.")
