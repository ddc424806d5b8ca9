"""Pair a layer holding only a per-feature scale/bias with the same op holding none on the other side.

``torch.nn.LayerNorm(elementwise_affine=False)`` runs the same normalisation as paddle's
default ``LayerNorm``, whose scale of ones and bias of zeros change nothing: a convention,
which the weight copy handles (the left-out tensors are checked to sit at their identity
value, see :mod:`padiff.weights.identity_params`). The alignment cannot pair the two units
(one reads parameters, the other none), so they are paired here among what it left: same
op kind, the parameter side holding only vectors (1-D: a scale, a bias), and placed by
dataflow -- the nearest paired producers and consumers of one map onto those of the other.
Only one-to-one candidates are paired; anything ambiguous stays unpaired. Pure Python.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from padiff.graph.units import Unit, UnitGraph, vectors_only


def _candidate(a: Unit, b: Unit) -> bool:
    if a.kind != b.kind or a.has_params == b.has_params:
        return False
    return vectors_only(a) if a.has_params else vectors_only(b)


def identity_affine_pairs(pairs: list[tuple[int, int]], ps: UnitGraph, ts: UnitGraph,
                          skip_p: frozenset[str], skip_t: frozenset[str],
                          placed: Callable[[int, int, UnitGraph, UnitGraph, Mapping[int, int]], bool]
                          ) -> list[tuple[int, int]]:
    """Unit pairs to add to ``pairs``: one side's vector-only parameter unit against the other's parameter-free
    unit of the same kind, when dataflow places them together (``placed``) and each has one such candidate."""
    added: list[tuple[int, int]] = []
    while True:
        mapping = dict(pairs + added)
        used_t = set(mapping.values())
        free_p = [u for u in ps.units if u.uid not in mapping and u.layer not in skip_p]
        free_t = [u for u in ts.units if u.uid not in used_t and u.layer not in skip_t]
        cands = [(a.uid, b.uid) for a in free_p for b in free_t
                 if _candidate(a, b) and placed(a.uid, b.uid, ps, ts, mapping)]
        n_p: dict[int, int] = {}
        n_t: dict[int, int] = {}
        for a, b in cands:
            n_p[a] = n_p.get(a, 0) + 1
            n_t[b] = n_t.get(b, 0) + 1
        new = [(a, b) for a, b in cands if n_p[a] == 1 and n_t[b] == 1]
        if not new:
            return added
        added += new
