"""Down to the operation (SPEC §6): name the first framework op that parts inside a differing pair.

One interface, :func:`op_view`; the recorders, the aligner and the re-run live in this
package and nowhere else.
"""

from padiff.runtime.ops.rerun import op_view

__all__ = ["op_view"]
