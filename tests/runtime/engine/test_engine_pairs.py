"""Pairs seen in a run, and what is said about calls that found no partner."""

from __future__ import annotations

import pytest

from padiff.errors import MappingError
from padiff.layer_map import LayerPair
from padiff.report.records import DiffReport
from padiff.runtime.engine.pairs import PairsSeen, check_pairing, unpaired_reason
from padiff.runtime.engine.sink import RecordSink
from padiff.runtime.pairing import Event, OnlinePairer, Role


def _ev(index: int, path: str, kind: str = "hard", call: int = 0, pair: LayerPair | None = None,
        stateful: bool = True) -> Event:
    return Event(index, Role(path, "Linear", kind, 1, pair=pair, stateful=stateful), call)


def test_each_pair_is_kept_once_in_the_order_first_seen():
    seen = PairsSeen()
    seen.note(_ev(0, "fc2"), _ev(0, "b"))
    seen.note(_ev(1, "fc1"), _ev(1, "a"))
    seen.note(_ev(2, "fc2", call=1), _ev(2, "b", call=1))
    assert [(p.paddle.path, p.torch.path, p.index) for p in seen.pairs()] == [("fc2", "b", 0), ("fc1", "a", 1)]


def test_a_fused_pair_counts_once_under_its_map_entry():
    fused = LayerPair("qkv", "q", torch_parts=("q", "k", "v"))
    seen = PairsSeen()
    for i, part in enumerate(("q", "k", "v")):
        seen.note(_ev(0, "qkv", kind="explicit", pair=fused), _ev(i, part, kind="explicit", pair=fused))
    (key, pair), = seen.items()
    assert key == ("qkv", "q") and pair.torch.path == "q"


def _unmatched(p_paths, t_paths):
    p_events = [_ev(i, p) for i, p in enumerate(p_paths)]
    pairer = OnlinePairer(p_events)
    t_events = [_ev(i, t) for i, t in enumerate(t_paths)]
    for tev in t_events:
        pairer.match(tev)
    pairer.finish()
    return pairer, p_events, t_events


def test_default_pairing_refuses_a_stateful_layer_left_without_partner():
    pairer, p_events, t_events = _unmatched(["fc1", "fc2", "fc3"], ["a", "b"])
    rep = DiffReport()
    with pytest.raises(MappingError, match=r"paddle model called 3 layers that hold parameters, the torch model 2"
                                           r"\. Unpaired:\n  paddle: fc3 \(Linear\), call 0"):
        check_pairing(pairer, p_events, t_events, RecordSink(rep), strict=True)


def test_a_map_reports_the_unpaired_stateful_layer_as_skipped_and_warns():
    pairer, p_events, t_events = _unmatched(["fc1", "fc2"], ["a"])
    rep = DiffReport()
    check_pairing(pairer, p_events, t_events, RecordSink(rep), strict=False)
    assert [(s.side, s.path, s.reason) for s in rep.skipped] == [
        ("paddle", "fc2", "no counterpart found in call order")]
    assert rep.warnings == ["fc2 (Linear) holds parameters but was not paired; it is not compared."]


def test_unpaired_reasons_follow_the_role():
    assert "functional call there" in unpaired_reason(_ev(0, "relu", kind="soft", stateful=False))
    assert "called more often than its mapped partner" in unpaired_reason(
        _ev(0, "drop", kind="explicit", call=2, stateful=False))
    assert unpaired_reason(_ev(0, "fc", kind="explicit", call=1)) == "call 1 has no partner call in the mapped layer"
