"""The fused real pairs' layouts are what pairs_fused.py says: a plain ``[q | k | v]`` copy is not equivalent.

This pins the finding that paddleformers fuses q/k/v interleaved per key-value group (the hand
copy's ``grouped_qkv``), so a padiff that concatenated plainly would be wrong, not the referee.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from .handcopy import Entry, apply_copy
from .pairs import by_name
from .pairs_fused import grouped_qkv
from .score import build, missing_requirements, run_both

pytestmark = pytest.mark.real_pairs


def _plain(entries: list[Entry]) -> list[Entry]:
    out = []
    for e in entries:
        if e.paddle_name.endswith(("qkv_proj.weight", "qkv_proj.bias")):
            e = Entry(e.paddle_name, e.torch_names, grouped_qkv(1, e.paddle_name.endswith("weight")))
        out.append(e)
    return out


@pytest.mark.parametrize("name", ["ernie4_5", "qwen2"])
def test_a_plain_qkv_concatenation_is_not_equivalent(name: str) -> None:
    pair = by_name(name)
    for mod in missing_requirements(pair):
        pytest.skip(f"{mod} not installed (make real-pairs installs it)")
    layer, module, p_inp, t_inp = build(pair)
    apply_copy(layer, module, _plain(pair.copy(layer, module)))
    p_out, t_out = run_both(layer, module, p_inp, t_inp)
    diff: Any = max(float(np.max(np.abs(a - b))) for a, b in zip(p_out, t_out))
    assert diff > 1e-3
