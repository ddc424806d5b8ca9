"""Torch's autograd graph as plain nodes: what the engine's dataflow walks to see through functional code.

A tensor made under autograd carries its ``grad_fn``, whose ``next_functions`` lead to the nodes
of the tensors it was computed from. Walking them from a layer call's inputs back to earlier
calls' outputs shows which call's output a later call reads even when functional code
(``softmax``, a sum, a product) stands between them. Only attribute reads: no torch import, and
nothing is changed or kept alive.
"""

from __future__ import annotations

from typing import Any


def torch_grad_node(t: Any) -> Any | None:
    """The autograd node that made tensor ``t`` (None: a leaf, or made without autograd)."""
    return getattr(t, "grad_fn", None)


def torch_node_inputs(node: Any) -> list[Any]:
    """The nodes whose outputs ``node`` was computed from (leaves' accumulators included)."""
    return [n for n, _ in getattr(node, "next_functions", ()) if n is not None]
