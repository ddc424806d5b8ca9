"""The eager comparison run: paddle records, torch compares as it goes.

One job per module:

- :mod:`.run`: pass orchestration (:class:`Engine`, :class:`RunSpec`, :class:`RunResult`);
  :mod:`.passes`: which passes a step has and which stages a run compares;
- :mod:`.recording`: per-side event recording (hooks turning each layer call into an event);
  :mod:`.paddle_forward`: paddle's outputs kept by reference, the in-place re-run, paddle's
  gradients handed over; :mod:`.torch_forward`: torch's calls paired and compared as they run;
- :mod:`.calls`: model, loss, backward and optimizer calls with error context;
- :mod:`.backward_mode`: whether the two backward passes overlap (a pure choice);
- :mod:`.sink`: where records go, in which order; :mod:`.comparisons`, :mod:`.params`,
  :mod:`.fused_calls`: the comparisons of outputs, gradients, parameters and fused pairs;
  :mod:`.pairs`: the pairs seen and the calls left unpaired.

The engine consumes a :class:`~padiff.layer_map.ResolvedMap` and never guesses pairs beyond
the call-order rules of :mod:`padiff.runtime.pairing`.
"""

from __future__ import annotations

from padiff.runtime.engine.pairs import SeenPair
from padiff.runtime.engine.run import Engine, RunResult, RunSpec

__all__ = ["Engine", "RunResult", "RunSpec", "SeenPair"]
