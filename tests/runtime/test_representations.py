"""A difference that does not propagate is a representation (README "Representations, not bugs").

A router returning probabilities (paddle) against one returning logits (torch), each read by a
mixer that expects its own form: the router pair differs, its consumer agrees. The correct port
passes with a note naming the consumer; a fault planted after it fails at the fault; a fault in the
router itself (its consumer then differs too) fails at the router. The rule itself is checked on
hand-made records, including that a difference reaching the loss is never excused.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import paddle
import pytest
import torch

import padiff
from padiff.compare.representations import call_key, excuse_representations
from padiff.report.records import Comparison, Stats

TOL = {"atol": 1e-5, "rtol": 1e-4}
B, D, E = 6, 8, 3


class PdRouter(paddle.nn.Layer):
    """Returns routing probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = self.create_parameter([D, E])

    def forward(self, x):
        return paddle.nn.functional.softmax(x @ self.weight, axis=-1)


class PtRouter(torch.nn.Module):
    """Returns routing logits (the softmax is its consumer's)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(D, E))

    def forward(self, x):
        return x @ self.weight


class PdMix(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.experts = paddle.nn.LayerList([paddle.nn.Linear(D, D) for _ in range(E)])

    def forward(self, x, probs):
        return sum(probs[:, e:e + 1] * self.experts[e](x) for e in range(E))


class PtMix(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.experts = torch.nn.ModuleList([torch.nn.Linear(D, D) for _ in range(E)])

    def forward(self, x, logits):
        probs = torch.softmax(logits, dim=-1)
        return sum(probs[:, e:e + 1] * self.experts[e](x) for e in range(E))


class PdMoE(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.router = PdRouter()
        self.mix = PdMix()
        self.head = paddle.nn.Linear(D, D)
        self.out = paddle.nn.Linear(D, 2)

    def forward(self, x):
        return self.out(self.head(self.mix(x, self.router(x))))


class PtMoE(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.router = PtRouter()
        self.mix = PtMix()
        self.head = torch.nn.Linear(D, D)
        self.out = torch.nn.Linear(D, 2)

    def forward(self, x):
        return self.out(self.head(self.mix(x, self.router(x))))


def _inputs() -> tuple[dict, dict]:
    x = np.random.default_rng(0).standard_normal((B, D)).astype("float32")
    return {"x": paddle.to_tensor(x)}, {"x": torch.tensor(x)}


def _scale(module: torch.nn.Module, factor: float = 1.05) -> None:
    module.register_forward_hook(lambda m, args, out: out * factor)


def test_probabilities_against_logits_pass_as_a_representation():
    rep = padiff.compare(PdMoE(), PtMoE(), _inputs(), auto_weights=True, options=TOL)
    assert rep, rep.first_diff
    router = [r for r in rep.records if r.paddle_path == "router" and r.stage in ("forward", "backward")]
    assert {r.stage for r in router} == {"forward", "backward"}
    assert all(r.stats.note_kind == "representation" and "head <-> head" in r.note for r in router), router
    grads = [r for r in rep.records if r.paddle_path == "router" and r.stage == "grad"]
    assert grads and all(r.passed and r.stats.note_kind != "representation" for r in grads)
    assert "representation: router <-> router" in rep.summary()


def test_a_fault_after_a_representation_fails_at_the_fault():
    module = PtMoE()
    _scale(module.out)
    rep = padiff.compare(PdMoE(), module, _inputs(), auto_weights=True, options=TOL)
    assert not rep and (rep.first_diff.stage, rep.first_diff.paddle_path) == ("forward", "out")


def test_a_fault_in_the_router_itself_fails_at_the_router():
    module = PtMoE()
    _scale(module.router, 1.5)  # scaled logits: other probabilities, so the mixer differs too
    rep = padiff.compare(PdMoE(), module, _inputs(), auto_weights=True, options=TOL)
    assert not rep and (rep.first_diff.stage, rep.first_diff.paddle_path) == ("forward", "router")
    assert rep.first_diff.stats.note_kind != "representation"


# --- the rule on hand-made records ------------------------------------------------------------
def _rec(path: str, order: int, passed: bool, stage: str = "forward", kind: str = "") -> Comparison:
    stats = Stats(passed=passed, max_abs_diff=0.0 if passed else 0.5, max_rel_diff=0.0, mismatched=0, total=4,
                  paddle_mean=0.0, torch_mean=0.0, cosine=1.0, min_atol=0.0, min_rtol=0.0,
                  note_kind=kind)  # type: ignore[arg-type]
    return Comparison(stage=stage, step=0, paddle_path=path, torch_path=path, paddle_class="L", torch_class="L",
                      stats=stats, order=order)  # type: ignore[arg-type]


def _flow(*edges: tuple[str, str]) -> dict:
    out: dict = {}
    for a, b in edges:
        out.setdefault((0, a, a, 0), set()).add((0, b, b, 0))
    return out


def test_the_rule_excuses_only_where_every_consumer_agrees():
    recs = [_rec("r", 0, False), _rec("a", 1, True), _rec("b", 2, False), _rec("", 3, False)]
    out = excuse_representations(recs, _flow(("r", "a"), ("b", "")))
    assert [r.passed for r in out] == [True, True, False, False]  # b's consumer is the model output
    out = excuse_representations(recs, _flow(("r", "a"), ("r", "b")))
    assert not out[0].passed  # one consumer differs: r's difference reaches it


def test_a_chain_of_representations_is_excused_from_the_last():
    recs = [_rec("m", 0, False), _rec("t", 1, False), _rec("a", 2, True)]
    out = excuse_representations(recs, _flow(("m", "t"), ("t", "a")))
    assert all(r.passed for r in out)


@pytest.mark.parametrize("late", [_rec("", 9, False), _rec("", 9, False, stage="loss")])
def test_a_difference_that_reaches_the_outputs_or_the_loss_is_never_excused(late):
    recs = [_rec("r", 0, False), _rec("a", 1, True), late]
    out = excuse_representations(recs, _flow(("r", "a")))
    assert not out[0].passed and call_key(out[0]) == (0, "r", "r", 0)


def test_nan_and_calls_without_consumers_are_never_excused():
    recs = [_rec("r", 0, False, kind="nan"), _rec("a", 1, True), _rec("z", 2, False)]
    out = excuse_representations(recs, _flow(("r", "a")))
    assert [r.passed for r in out] == [False, True, False]


def test_single_step_excuses_nothing_as_its_consumers_are_fed_paddle_inputs():
    rep = padiff.compare(PdMoE(), PtMoE(), _inputs(), auto_weights=True,
                         options={**TOL, "single_step": True, "diff_phase": "forward"})
    assert not rep and not [r for r in rep.records if r.stats.note_kind == "representation"]
    assert (rep.first_diff.stage, rep.first_diff.paddle_path) == ("forward", "router")


def test_an_inf_is_excused_only_when_one_side_is_finite():
    one_sided = Stats(passed=False, max_abs_diff=math.inf, max_rel_diff=math.inf, mismatched=1, total=4,
                      paddle_mean=0.5, torch_mean=-math.inf, cosine=math.nan, min_atol=math.inf, min_rtol=math.inf,
                      note="inf", note_kind="inf")
    both = dataclasses.replace(one_sided, paddle_mean=math.inf, torch_mean=math.inf)
    for stats, excused in ((one_sided, True), (both, False)):
        recs = [dataclasses.replace(_rec("m", 0, False), stats=stats), _rec("a", 1, True)]
        assert excuse_representations(recs, _flow(("m", "a")))[0].passed is excused


@pytest.mark.parametrize("stage", ["grad", "backward", "weight"])
def test_a_difference_that_reaches_the_gradients_is_never_excused(stage):
    recs = [_rec("r", 0, False), _rec("a", 1, True), _rec("up", 2, False, stage=stage)]
    out = excuse_representations(recs, _flow(("r", "a")))
    assert not out[0].passed
    own = [_rec("r", 0, False), _rec("a", 1, True), _rec("r", 2, False, stage="backward")]
    assert all(r.passed for r in excuse_representations(own, _flow(("r", "a"))))  # its own output gradient


def test_a_consumer_that_updated_its_state_vouches_for_nothing():
    recs = [_rec("r", 0, False), _rec("bn", 1, True)]
    assert excuse_representations(recs, _flow(("r", "bn")))[0].passed
    assert not excuse_representations(recs, _flow(("r", "bn")), untrusted={(0, "bn", "bn", 0)})[0].passed


class PdShiftNorm(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc = paddle.nn.Linear(D, D)
        self.bn = paddle.nn.BatchNorm1D(D)
        self.out = paddle.nn.Linear(D, 2)

    def forward(self, x):
        return self.out(self.bn(self.fc(x)))


class PtShiftNorm(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(D, D)
        self.bn = torch.nn.BatchNorm1d(D)
        self.out = torch.nn.Linear(D, 2)

    def forward(self, x):
        return self.out(self.bn(self.fc(x)))


def test_a_shift_before_a_train_mode_batchnorm_fails_where_it_is():
    # the train-mode BatchNorm removes a per-channel shift from its output, so everything compared after
    # it agrees; its running mean keeps the shift, so the difference is real and is named at fc
    module = PtShiftNorm()
    module.fc.register_forward_hook(lambda m, args, out: out + 0.5)
    rep = padiff.compare(PdShiftNorm(), module, _inputs(), auto_weights=True, options=TOL)
    assert not rep and (rep.first_diff.stage, rep.first_diff.paddle_path) == ("forward", "fc"), rep.first_diff
    assert rep.first_diff.stats.note_kind != "representation"
    assert padiff.compare(PdShiftNorm(), PtShiftNorm(), _inputs(), auto_weights=True, options=TOL)


def test_a_consumer_agreeing_only_within_tolerance_vouches_for_nothing():
    # a residual stream can dilute a real difference below the tolerance at the next layer, and a later
    # layer shows it again: only a consumer that agrees to rounding level says the producer's form is harmless
    def consumer(diff: float) -> Comparison:
        rec = _rec("a", 1, True)
        return dataclasses.replace(rec, dtype="float32", stats=dataclasses.replace(
            rec.stats, mode="mean", mean_abs_diff=diff, mean_abs_ref=1.0))

    assert excuse_representations([_rec("r", 0, False), consumer(1e-7)], _flow(("r", "a")))[0].passed
    assert not excuse_representations([_rec("r", 0, False), consumer(5e-5)], _flow(("r", "a")))[0].passed
