"""The comparer: what one paired call's outputs and gradients become, without running a model."""

from __future__ import annotations

import math

import numpy as np

from padiff.layer_map import LayerPair
from padiff.options import DiffOptions
from padiff.report.records import DiffReport
from padiff.runtime.engine.comparisons import Comparer, compares_output, item_name, one_sided
from padiff.runtime.engine.sink import RecordSink
from padiff.runtime.pairing import Event, Role


def _pair(**opts):
    rep = DiffReport()
    sink = RecordSink(rep)
    return rep, sink, Comparer(DiffOptions.from_mapping(opts), sink)


def _events(pair: LayerPair | None = None) -> tuple[Event, Event]:
    pev = Event(4, Role("blk.fc", "Linear", "hard", 2, pair=pair), 0, stack=(("p.py", 3, "forward"),))
    tev = Event(5, Role("block.lin", "Linear", "hard", 2, pair=pair), 1, stack=(("t.py", 7, "forward"),),
                dtype="float32")
    pev.partner, tev.partner = tev, pev
    return pev, tev


def test_outputs_are_compared_position_by_position_at_the_pairs_site():
    rep, sink, cmp = _pair(atol=1e-6)
    pev, tev = _events()
    a = np.ones((2, 3), np.float32)
    cmp.outputs("forward", pev, tev, [a, a], [a, a + 1])
    sink.flush()
    first, second = rep.by_stage("forward")
    assert (first.item, first.passed, second.item, second.passed) == ("output[0]", True, "output[1]", False)
    assert (first.paddle_path, first.torch_path, first.call, first.depth) == ("blk.fc", "block.lin", 1, 2)
    assert first.paddle_stack == (("p.py", 3, "forward"),) and first.torch_stack == (("t.py", 7, "forward"),)


def test_extra_tensors_on_one_side_are_left_out_with_a_warning_and_none_is_a_structure_mismatch():
    rep, sink, cmp = _pair()
    pev, tev = _events()
    a = np.zeros(3, np.float32)
    cmp.outputs("forward", pev, tev, [a], [a, a])
    cmp.outputs("forward", pev, tev, [a], [a, a])
    cmp.outputs("forward", pev, tev, [], [a])
    sink.flush()
    assert [r.passed for r in rep.records] == [True, True, False]
    assert rep.records[-1].note.startswith("structure mismatch")
    assert rep.warnings == ["blk.fc (Linear) returns 1 tensor(s) in paddle and block.lin (Linear) 2 in torch; "
                            "compared (paddle, torch): (0, 0) (by shape and value)"]  # equal values: the leading


def test_a_gradient_that_reached_only_paddle_is_a_difference_unless_it_is_all_zero():
    rep, sink, cmp = _pair()
    pev, tev = _events()
    pev.grads = {0: np.ones(3, np.float32), 1: np.zeros(3, np.float32)}
    cmp.missing_grads([tev])
    sink.flush()
    (r,) = rep.records
    assert (r.stage, r.item, r.passed) == ("backward", "grad of output[0]", False)
    assert r.note == "gradient reached the paddle output but not the torch output"


def test_a_compared_gradient_is_marked_on_the_torch_event_so_it_is_not_reported_missing():
    rep, sink, cmp = _pair()
    pev, tev = _events()
    g = np.ones(3, np.float32)
    pev.grads = {0: g}
    cmp.output_grad(pev, tev, 0, g, g)
    cmp.missing_grads([tev])
    sink.flush()
    assert [(r.item, r.passed) for r in rep.records] == [("grad of output[0]", True)]


def test_weight_only_pairs_compare_no_outputs():
    assert not compares_output(*_events(LayerPair("blk.fc", "block.lin", compare_output=False)))
    assert compares_output(*_events())


def test_helpers():
    assert (item_name("output", 0, 1), item_name("output", 1, 3)) == ("output", "output[1]")
    s = one_sided("grad exists only on the torch side")
    assert not s.passed and s.max_abs_diff == math.inf and s.note == "grad exists only on the torch side"


def test_calibrated_records_after_an_optimizer_step_allow_the_wider_trajectory_spread():
    """After the first step both float32 runs carry their own trajectory (Adam's normalised step on
    gradients whose sign rounding decides); a ratio the first step fails at passes later, up to
    K_AFTER_STEP, and the failure text names the allowed ratio of its step."""
    from padiff.compare.calibrated import K_AFTER_STEP, K
    from padiff.runtime.engine.reference import Ref

    rng = np.random.default_rng(0)
    r = rng.standard_normal(4096)
    eps = float(np.finfo(np.float32).eps)
    t = (r * (1 + eps * rng.standard_normal(4096))).astype(np.float32)
    p = (r * (1 + 20 * eps * rng.standard_normal(4096))).astype(np.float32)  # ~20x torch's own error
    far = (r * (1 + 3 * K_AFTER_STEP * eps * rng.standard_normal(4096))).astype(np.float32)
    _, sink, cmp = _pair(compare_mode="calibrated")
    first = cmp.stats(p, t, ref=Ref(r), dtype="float32")
    assert K < first.noise_ratio < K_AFTER_STEP and not first.passed and f"allowed {K:g}x" in first.note
    sink.step = 1
    assert cmp.stats(p, t, ref=Ref(r), dtype="float32").passed
    later = cmp.stats(far, t, ref=Ref(r), dtype="float32")
    assert not later.passed and f"allowed {K_AFTER_STEP:g}x" in later.note
