"""Fuzz ``example_inp`` validation: any value gives two dicts or an InputError, nothing else."""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability._helpers import PNet, TNet, net_pair

import padiff
from padiff import InputError
from padiff.checks import check_example_inp

small = st.lists(st.floats(-2, 2, width=32), min_size=1, max_size=4).map(lambda xs: np.array(xs, dtype="float32"))
leaves = st.one_of(
    st.none(), st.integers(), st.text(max_size=4), st.floats(allow_nan=True), st.booleans(),
    small,
    small.map(paddle.to_tensor),
    small.map(torch.from_numpy),
)
values = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.tuples(inner, inner),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), inner, max_size=3)), max_leaves=8)
halves = st.dictionaries(st.one_of(st.sampled_from(["x", "y", "mask"]), st.integers()), values, max_size=3)
example_inps = st.one_of(values, st.tuples(halves, halves), st.lists(halves, min_size=0, max_size=3))

_MODELS = (PNet(), TNet())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(example_inps)
def test_check_example_inp_gives_two_dicts_or_an_input_error(example_inp):
    layer, module = _MODELS
    try:
        p_inp, t_inp = check_example_inp(example_inp, layer, module)
    except InputError as e:
        assert str(e)
        return
    assert set(p_inp) == {"x"} and set(t_inp) == {"x"}  # both forwards take exactly x


class _TakesAnything(TNet):
    def forward(self, x, **extra):
        return super().forward(x)


def test_non_string_keys_are_named():
    layer, _, (p, t) = net_pair()
    with pytest.raises(InputError, match="must be the torch forward's argument names"):
        padiff.compare(layer, _TakesAnything(), (p, {"x": t["x"], 3: 1}))


@pytest.mark.parametrize("side", ["paddle", "torch"])
def test_numpy_arrays_instead_of_tensors_say_how_to_convert(side):
    layer, module, (p, t) = net_pair()
    arr = np.zeros((3, 4), dtype="float32")
    inp = ({"x": arr}, t) if side == "paddle" else (p, {"x": [arr]})
    with pytest.raises(InputError, match=f"holds numpy arrays but no {side} tensor; convert them with"):
        padiff.compare(layer, module, inp)
