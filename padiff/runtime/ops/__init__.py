"""Down to the operation (SPEC §6): name the first framework op that parts inside a differing pair.

Two interfaces, :func:`op_view` (forward) and :func:`grad_op_view` (backward); the recorders,
the aligners and the re-runs live in this package and nowhere else.
"""

from padiff.runtime.ops.rerun import op_view
from padiff.runtime.ops.rerun_bwd import grad_op_view

__all__ = ["grad_op_view", "op_view"]
