"""Known framework conventions that differ between paddle and torch, and how padiff reconciles them.

A correct port must not fail on a convention of its framework, and a wrong port must still
fail. Each convention here has a test in ``tests/runtime/test_conventions.py`` that shows the
two frameworks differing on their own and padiff not blaming the port.

**BatchNorm running variance.** In training mode both frameworks update the running
variance with the batch variance, but paddle uses the *biased* one (divided by ``n``) and
torch the *unbiased* one (divided by ``n - 1``), ``n`` being the elements per channel. With
paddle's momentum ``m`` (torch's ``1 - momentum``):

    paddle:  P <- m * P + (1 - m) * v
    torch:   T <- m * T + (1 - m) * v * n / (n - 1)

so after the same updates ``T = P + d`` with ``d <- m * d + (1 - m) * v / (n - 1)``, from
the same starting values (``d = 0`` after the weight copy). :class:`BatchNormVariance`
accumulates ``d`` from the batch variance each paddle call saw, and the weight comparison
adds it to paddle's running variance. A wrong momentum still fails: the running mean, which
has no such difference, and the variance both move differently.

Torch's ``momentum=None`` (a cumulative average) has no paddle counterpart and is left alone.

**Momentum.** Paddle's normalisation momentum ``m`` weighs the running value
(``running = m * running + (1 - m) * batch``), torch's weighs the batch: paddle's 0.9 is
torch's 0.1. :func:`momentum_as_torch` reads a paddle momentum the torch way, and
:func:`paddle_settings_as_torch` applies it to a recorded paddle op, so the op view does not
report 0.9 against 0.1 as a differing setting (the recorders record what paddle was given).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the adapters report it; only its fields are read here
    from padiff.adapters.state import BatchNormUpdate

BATCHNORM_VARIANCE_NOTE = ("paddle's BatchNorm updates the running variance with the biased batch variance, "
                           "torch's with the unbiased one: compared with that correction")


@dataclass
class BatchNormVariance:
    """The correction ``d`` per paddle BatchNorm path, accumulated over the paddle calls of a run."""

    deltas: dict[str, np.ndarray] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # path -> variance entry name
    _saved: dict[str, np.ndarray] = field(default_factory=dict)

    def observe(self, path: str, update: BatchNormUpdate, x: np.ndarray) -> None:
        """Account for one training-mode call of the BatchNorm at ``path`` on input ``x``."""
        axis = update.channel_axis % x.ndim
        axes = tuple(i for i in range(x.ndim) if i != axis)
        n = x.size // max(1, x.shape[axis])
        self.observe_variance(path, update, np.var(x.astype(np.float64), axis=axes), n)

    def observe_variance(self, path: str, update: BatchNormUpdate, v: np.ndarray, n: int) -> None:
        """Account for one call whose biased batch variance per channel was ``v``, over ``n`` elements each."""
        if n < 2:
            return  # torch refuses a batch of one element per channel; nothing to reconcile
        v = np.asarray(v, dtype=np.float64)
        m = update.momentum
        d = self.deltas.get(path, np.zeros_like(v))
        self.deltas[path] = m * d + (1.0 - m) * v / (n - 1)
        self.names[path] = update.variance_name

    def begin_pass(self) -> None:
        """Remember the corrections, so a forward that is run again can be taken back."""
        self._saved = {k: v.copy() for k, v in self.deltas.items()}

    def restart_pass(self) -> None:
        """Forget what the calls since :meth:`begin_pass` added (that forward runs again)."""
        self.deltas = {k: v.copy() for k, v in self._saved.items()}

    def corrected(self, path: str, name: str, value: np.ndarray) -> np.ndarray | None:
        """Paddle's ``value`` of entry ``name`` at ``path`` as torch's convention gives it, or None."""
        if self.names.get(path) != name or path not in self.deltas:
            return None
        d = self.deltas[path]
        if d.shape != value.shape:
            return None
        fixed: np.ndarray = (value.astype(np.float64) + d).astype(value.dtype)
        return fixed


def momentum_as_torch(momentum: float) -> float:
    """Paddle's normalisation momentum as torch's argument for the same update (``1 - m``)."""
    return round(1.0 - float(momentum), 12)


def paddle_settings_as_torch(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded paddle op's settings as torch's arguments read them (a normalisation's momentum)."""
    out = dict(params)
    momentum = out.get("momentum")
    if "norm" in kind and isinstance(momentum, int | float) and not isinstance(momentum, bool):
        out["momentum"] = momentum_as_torch(momentum)
    return out
