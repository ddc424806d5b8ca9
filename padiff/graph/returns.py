"""Pairs whose calls hand back different quantities: proposed weights-only, with the reason.

A port may return more than its original (a router adding its logits, an attention
adding its weights); the runtime then compares the tensors both return
(:mod:`padiff.compare.items`). That only works when the extra tensors are *extra*: the
shorter side's results must be among the longer side's. When a paddle router returns
``(softmax of the top-k, indices)`` and the torch one ``(logits, scores scattered over all
experts, indices)``, no subsequence means the same thing, and comparing them would fail a
correct port. Such a pair keeps its weight copy but not its output comparison, and its
evidence says why. Judged from what computed each returned tensor (the graph attribute
``returns`` of the eager dataflow graphs, :func:`padiff.graph.eager.build_eager_graph`);
the ONNX route has no such attribute and is left as it is. Pure Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

from padiff.graph.proposal import MatchResult, ProposedPair

Returns = Mapping[str, Sequence[str]]


def weights_only_by_returns(result: MatchResult, p_returns: Returns | None,
                            t_returns: Returns | None) -> MatchResult:
    """``result`` with the pairs whose returned tensors cannot correspond marked ``compare_output=False``."""
    if not p_returns or not t_returns:
        return result
    pairs = [_judged(pr, p_returns, t_returns) for pr in result.pairs]
    return replace(result, pairs=pairs)


def _judged(pr: ProposedPair, p_returns: Returns, t_returns: Returns) -> ProposedPair:
    if not pr.compare_output or pr.opaque or pr.paddle_parts or pr.torch_parts:
        return pr
    a, b = p_returns.get(pr.paddle_path), t_returns.get(pr.torch_path)
    if a is None or b is None or len(a) == len(b) or not a or not b:
        return pr
    short, long = (a, b) if len(a) < len(b) else (b, a)
    if not Counter(short) - Counter(long):
        return pr  # the shorter side's results are among the longer side's: compared item by item
    why = (f"weights only: the paddle call returns {len(a)} tensor(s) ({', '.join(a)}) and the torch call "
           f"{len(b)} ({', '.join(b)}); the shorter side's are not among the longer side's, so they are not the "
           "same quantities and the outputs are not compared (the weights are still copied)")
    return replace(pr, compare_output=False, evidence=(*pr.evidence, why))
