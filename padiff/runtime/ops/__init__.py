"""Down to the operation: name the first framework op that parts inside a differing pair.

Two interfaces, :func:`op_view` (forward) and :func:`grad_op_view` (backward); the aligners
and the re-runs live in this package. The recording itself patches a framework, so it is each adapter's ``record_ops``
(:mod:`padiff.adapters.paddle_ops`, :mod:`padiff.adapters.torch_ops`), and the op records it
fills are framework-free data at the bottom (:mod:`padiff.adapters.op_events`).
"""

from padiff.runtime.ops.rerun import op_view
from padiff.runtime.ops.rerun_bwd import grad_op_view

__all__ = ["grad_op_view", "op_view"]
