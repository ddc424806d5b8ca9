"""Down to the operation (SPEC §6): name the first framework op that parts inside a differing pair.

One interface, :func:`op_view`; the aligner and the re-run live in this package. The
recording itself patches a framework, so it is each adapter's ``record_ops``
(:mod:`padiff.adapters.paddle_ops`, :mod:`padiff.adapters.torch_ops`), and the op records it
fills are framework-free data at the bottom (:mod:`padiff.adapters.op_events`).
"""

from padiff.runtime.ops.rerun import op_view

__all__ = ["op_view"]
