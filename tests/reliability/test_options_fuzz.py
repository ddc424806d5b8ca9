"""Fuzz the options parser: any mapping gives a valid DiffOptions or an OptionsError, nothing else."""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from padiff import DiffOptions, OptionsError
from padiff.options import validate_steps

VALID_KEYS = DiffOptions.valid_keys()

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.fractions(),
    st.sampled_from(["both", "forward", "backward", "mean", "strict", "", "BOTH", "Both "]),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=3),
    st.builds(np.float32, st.floats(width=32, allow_nan=True)),
    st.builds(np.int64, st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1)),
    st.builds(np.bool_, st.booleans()),
    st.builds(lambda xs: np.array(xs), st.lists(st.sampled_from(["both", "mean"]), min_size=1, max_size=3)),
    st.builds(lambda xs: np.array(xs, dtype="float64"), st.lists(st.floats(0, 1), max_size=3)),
    st.builds(object),
)
keys = st.one_of(st.sampled_from(VALID_KEYS), st.text(max_size=12), st.integers(), st.none(), st.tuples(st.text()))
option_dicts = st.dictionaries(keys, values, max_size=6)


@settings(max_examples=400, deadline=None)
@given(option_dicts)
def test_from_mapping_gives_a_valid_object_or_an_options_error(raw):
    snapshot = copy.deepcopy(raw)
    try:
        opts = DiffOptions.from_mapping(raw)
    except OptionsError as e:
        msg = str(e)
        # no traceback dump in the message (a fuzzed key may itself be the word "Traceback")
        assert msg and "Traceback (most recent call last)" not in msg
        if any(k not in VALID_KEYS for k in raw):
            assert "Valid keys: atol, rtol, diff_phase, compare_mode, single_step" in msg
        return
    finally:
        assert _same(raw, snapshot)  # the user's dict is never mutated
    # accepted: every key is known and every value valid
    assert set(raw) <= set(VALID_KEYS)
    assert isinstance(opts.atol, float) and math.isfinite(opts.atol) and opts.atol >= 0
    assert isinstance(opts.rtol, float) and math.isfinite(opts.rtol) and opts.rtol >= 0
    assert opts.diff_phase in ("both", "forward", "backward")
    assert opts.compare_mode in ("mean", "strict")
    assert isinstance(opts.single_step, bool)
    assert opts.diff_phase != "backward" or opts.single_step
    assert DiffOptions.from_mapping(opts.to_dict()) == opts  # round trip


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional={k: values for k in VALID_KEYS}))
def test_only_valid_keys_still_never_escape_as_another_error(raw):
    try:
        DiffOptions.from_mapping(raw)
    except OptionsError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.booleans()),
       st.sampled_from(["both", "forward"]), st.booleans(), st.booleans())
def test_validate_steps_never_escapes(steps, phase, single_step, has_optimizer):
    opts = DiffOptions(diff_phase=phase, single_step=single_step)
    try:
        n = validate_steps(steps, opts, has_optimizer)
    except OptionsError:
        return
    assert isinstance(n, int) and n >= 1
    assert n == 1 or (has_optimizer and phase == "both" and not single_step)


def test_numpy_integers_are_valid_steps():
    n = validate_steps(np.int64(3), DiffOptions(), has_optimizer=True)
    assert n == 3 and type(n) is int


def test_non_mappings_are_options_errors():
    for bad in ([("atol", 1)], "atol=1", 1e-5, {"atol"}, b"x"):
        try:
            DiffOptions.from_mapping(bad)
        except OptionsError as e:
            assert "options must be a dict" in str(e)
        else:
            raise AssertionError(f"{bad!r} accepted")


def test_known_good_values_are_accepted_as_numbers():
    opts = DiffOptions.from_mapping({"atol": np.float32(0.5), "rtol": Fraction(1, 4), "single_step": True,
                                     "diff_phase": "backward"})
    assert (opts.atol, opts.rtol, opts.diff_phase) == (0.5, 0.25, "backward")


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, np.floating) and np.isnan(a):
        return np.isnan(b)
    if type(a) is object:
        return type(b) is object
    if isinstance(a, list):
        return a == b
    return a == b or a is b


def test_a_diff_options_object_is_validated_too():
    for bad in (DiffOptions(diff_phase="backward"), DiffOptions(atol=-1.0), DiffOptions(compare_mode="max")):
        try:
            DiffOptions.from_mapping(bad)
        except OptionsError:
            continue
        raise AssertionError(f"{bad!r} accepted")
    good = DiffOptions(atol=1e-5, single_step=True, diff_phase="backward")
    assert DiffOptions.from_mapping(good) == good
