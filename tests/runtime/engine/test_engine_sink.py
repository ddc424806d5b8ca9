"""The record sink: structured sort keys, ranks within (step, stage), warnings."""

from __future__ import annotations

from padiff.report.records import DiffReport, Stats
from padiff.runtime.engine.sink import RecordSink, Section, Site, SortKey

OK = Stats(passed=True, max_abs_diff=0.0, max_rel_diff=0.0, mismatched=0, total=1, paddle_mean=0.0, torch_mean=0.0,
           cosine=1.0, min_atol=0.0, min_rtol=0.0)


def _site(path: str) -> Site:
    return Site(path, path, "L", "L")


def _read(rep: DiffReport, stage: str) -> list[tuple[str, str]]:
    return [(r.paddle_path, r.item) for r in rep.by_stage(stage)]


def test_forward_records_are_read_in_arrival_order_with_the_model_outputs_last():
    rep = DiffReport()
    sink = RecordSink(rep)
    sink.add("forward", _site(""), OK, item="model output", key=SortKey.model(0))
    sink.add("forward", _site("fc1"), OK, item="output")
    sink.add("forward", _site("fc2"), OK, item="output")
    sink.flush()
    assert _read(rep, "forward") == [("fc1", "output"), ("fc2", "output"), ("", "model output")]
    assert [r.order for r in rep.records] == [2, 0, 1]  # the list keeps arrival order; order is the rank


def test_backward_walks_calls_in_reverse_and_outputs_of_one_call_in_order():
    rep = DiffReport()
    sink = RecordSink(rep)
    for index in (0, 1):
        for i in (1, 0):
            sink.add("backward", _site(f"call{index}"), OK, item=f"grad[{i}]", key=SortKey.backward(index, i))
    sink.add("backward", _site(""), OK, item="grad of input", key=SortKey.model(0))
    sink.flush()
    assert _read(rep, "backward") == [("call1", "grad[0]"), ("call1", "grad[1]"), ("call0", "grad[0]"),
                                      ("call0", "grad[1]"), ("", "grad of input")]


def test_a_pair_with_many_parameters_does_not_interleave_with_the_next_pair():
    # a packed number like index * 64 + k put parameter 70 of pair 0 after parameter 5 of pair 1
    rep = DiffReport()
    sink = RecordSink(rep)
    sink.add("weight", _site("b"), OK, item="p5", key=SortKey.pair_param(1, 5, reverse=False))
    sink.add("weight", _site("a"), OK, item="p70", key=SortKey.pair_param(0, 70, reverse=False))
    sink.add("weight", _site("a"), OK, item="p0", key=SortKey.pair_param(0, 0, reverse=False))
    sink.add("weight", _site("w"), OK, item="w <-> w", key=SortKey.param_pair(0))
    sink.flush()
    assert _read(rep, "weight") == [("a", "p0"), ("a", "p70"), ("b", "p5"), ("w", "w <-> w")]


def test_gradients_of_pairs_are_read_last_pair_first():
    rep = DiffReport()
    sink = RecordSink(rep)
    for idx in range(3):
        sink.add("grad", _site(f"pair{idx}"), OK, item="weight", key=SortKey.pair_param(idx, 0, reverse=True))
    sink.flush()
    assert [p for p, _ in _read(rep, "grad")] == ["pair2", "pair1", "pair0"]


def test_sections_order_layers_then_parameter_pairs_then_the_models():
    assert SortKey.arrival(10**12) < SortKey.param_pair(0) < SortKey.model(0)
    assert [s.name for s in sorted(Section)] == ["LAYERS", "PARAM_PAIRS", "MODEL"]


def test_ranks_count_per_step_and_stage_and_ties_keep_arrival_order():
    rep = DiffReport()
    sink = RecordSink(rep)
    for step in (0, 1):
        sink.step = step
        sink.add("forward", _site("x"), OK, item="first", key=SortKey.model(0))
        sink.add("forward", _site("x"), OK, item="second", key=SortKey.model(0))
        sink.add("loss", _site(""), OK, item="loss")
        sink.flush()
    assert [(r.step, r.stage, r.item, r.order) for r in rep.records] == [
        (0, "forward", "first", 0), (0, "forward", "second", 1), (0, "loss", "loss", 0),
        (1, "forward", "first", 0), (1, "forward", "second", 1), (1, "loss", "loss", 0)]


def test_a_site_carries_what_the_record_names():
    rep = DiffReport()
    sink = RecordSink(rep)
    sink.step = 2
    site = Site("fc", "linear", "Linear", "Linear", depth=1, call=3, paddle_stack=(("m.py", 1, "f"),))
    sink.add("forward", site, OK, item="output", dtype="float16")
    assert rep.records == []  # nothing reaches the report before a flush
    sink.flush()
    (r,) = rep.records
    assert (r.step, r.paddle_path, r.torch_path, r.call, r.depth, r.dtype, r.paddle_stack, r.torch_stack) == (
        2, "fc", "linear", 3, 1, "float16", (("m.py", 1, "f"),), ())


def test_warn_once_keeps_one_copy():
    rep = DiffReport()
    sink = RecordSink(rep)
    sink.warn_once("a")
    sink.warn_once("a")
    sink.warn("a")
    assert rep.warnings == ["a", "a"]
