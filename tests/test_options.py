"""``DiffOptions``: parsed once, frozen, every rule with the message that says what to do."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from padiff.errors import OptionsError
from padiff.options import COMPARE_MODES, DIFF_PHASES, DiffOptions, validate_steps


def test_defaults_and_valid_keys():
    opts = DiffOptions.from_mapping(None)
    assert opts == DiffOptions() and (opts.atol, opts.rtol, opts.compare_mode) == (0.0, 1e-7, "mean")
    assert DiffOptions.valid_keys() == ("atol", "rtol", "diff_phase", "compare_mode", "single_step", "mismatch_ratio")
    assert opts.to_dict() == {k: getattr(opts, k) for k in DiffOptions.valid_keys()}


def test_the_users_dict_is_copied_not_kept_or_changed():
    raw = {"atol": np.float32(1e-5), "compare_mode": "strict"}
    opts = DiffOptions.from_mapping(raw)
    assert raw == {"atol": np.float32(1e-5), "compare_mode": "strict"} and type(opts.atol) is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.atol = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(("raw", "match"), [
    ({"atoll": 1}, r"unknown option\(s\) 'atoll'. Valid keys: atol, rtol"),
    ({"atol": -1}, "'atol' must be a finite number >= 0"),
    ({"rtol": float("nan")}, "'rtol' must be a finite number >= 0"),
    ({"atol": True}, "'atol' must be a number"),
    ({"compare_mode": "loose"}, "'compare_mode' must be one of 'mean', 'strict'"),
    ({"diff_phase": "backward"}, "only valid with single_step=True"),
    ({"single_step": 1}, "'single_step' must be True or False"),
    ({"mismatch_ratio": 1}, "must be below 1"),
    ([("atol", 1)], "options must be a dict"),
])
def test_bad_options_name_what_is_wrong(raw, match):
    with pytest.raises(OptionsError, match=match):
        DiffOptions.from_mapping(raw)


def test_choices_are_the_literal_values():
    for phase in DIFF_PHASES:
        opts = DiffOptions.from_mapping({"diff_phase": phase, "single_step": True})
        assert opts.diff_phase == phase
        assert opts.checks_forward == (phase != "backward") and opts.checks_backward == (phase != "forward")
    modes = [DiffOptions.from_mapping({"compare_mode": m}).compare_mode for m in COMPARE_MODES]
    assert modes == ["mean", "strict", "calibrated"]


def test_an_options_object_built_directly_is_validated_too():
    with pytest.raises(OptionsError, match="finite number"):
        DiffOptions.from_mapping(DiffOptions(atol=-1.0))


def test_steps_rules():
    both = DiffOptions()
    assert validate_steps(np.int64(2), both, has_optimizer=True) == 2
    with pytest.raises(OptionsError, match="needs optimizer"):
        validate_steps(2, both, has_optimizer=False)
    with pytest.raises(OptionsError, match="needs diff_phase='both'"):
        validate_steps(2, DiffOptions(diff_phase="forward"), has_optimizer=True)
    with pytest.raises(OptionsError, match="cannot be combined with single_step"):
        validate_steps(2, DiffOptions(single_step=True), has_optimizer=True)
    for bad in (0, True, 1.5):
        with pytest.raises(OptionsError, match="steps must be"):
            validate_steps(bad, both, has_optimizer=True)
