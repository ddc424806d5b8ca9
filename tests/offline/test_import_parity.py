"""import_weights = the live weight copy, or a refusal naming the layers: never a silent guess.

Torch weights are exported in a process that cannot import paddle; the paddle model takes
them by file. With the map ``suggest_layer_map`` saved (a fused qkv pair, parameter pairs)
the result equals the live ``assign_weight``; what the importing side cannot be sure of alone
(a pair ``"auto"`` proposes from the module trees with low confidence, a square weight whose
orientation no layer convention gives) is refused before anything is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import padiff
from tests.offline.conftest import env

EXPORT = """
import sys
sys.path.insert(0, sys.argv[2])
from record_side import _Block
sys.meta_path.insert(0, _Block('paddle'))
import padiff
from fused_side import build
model, _ = build('torch')
padiff.export_weights(model, sys.argv[1])
assert 'paddle' not in sys.modules
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("import_parity") / "w.safetensors")
    out = subprocess.run([sys.executable, "-c", EXPORT, path, os.path.dirname(__file__)], env=env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return path


def _scrambled_paddle() -> Any:
    """The paddle block with every weight replaced by other numbers (so a copy is visible)."""
    from tests.offline.fused_side import build

    model, _ = build("paddle")
    rng = np.random.default_rng(7)
    for p in model.parameters():
        p.set_value(rng.standard_normal(p.shape).astype("float32"))
    return model


def _state(model: Any) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_import_with_the_saved_map_equals_the_live_copy(exported: str, tmp_path: Any) -> None:
    import paddle
    import torch

    from tests.offline.fused_side import batch, build

    tm, _ = build("torch")
    live = _scrambled_paddle()
    x = batch(0)
    lm = padiff.suggest_layer_map(live, tm, ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)}))
    assert any(p.torch_parts for p in lm.pairs) and lm.params
    path = os.path.join(str(tmp_path), "map.yaml")
    lm.save(path)
    assert padiff.assign_weight(live, tm, layer_map=padiff.LayerMap.load(path))
    by_file = _scrambled_paddle()
    lines = padiff.import_weights(by_file, exported, layer_map=path)
    assert any("attn.q_proj+attn.k_proj+attn.v_proj" in line for line in lines)
    want, got = _state(live), _state(by_file)
    assert want.keys() == got.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_auto_import_refuses_what_the_trees_cannot_be_sure_of(exported: str) -> None:
    model = _scrambled_paddle()
    before = _state(model)
    with pytest.raises(padiff.WeightAssignError) as info:
        padiff.import_weights(model, exported, layer_map="auto")
    msg = str(info.value)
    assert "copied nothing" in msg and "suggest_layer_map" in msg
    assert "attn.qkv_proj" in msg or "attn.out_proj" in msg  # the layers are named
    after = _state(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)  # nothing written


SQUARE_EXPORT = """
import sys
class B:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'paddle':
            raise ImportError(name)
sys.meta_path.insert(0, B())
import torch, padiff

class Mixer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.arange(16.0).reshape(4, 4))

    def forward(self, x):
        return x @ self.w.T

padiff.export_weights(Mixer(), sys.argv[1])
"""


def test_a_square_weight_of_unknown_orientation_is_refused(tmp_path: Any) -> None:
    import paddle

    class Mix(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.w = self.create_parameter([4, 4])

        def forward(self, x: Any) -> Any:
            return paddle.matmul(x, self.w)

    path = os.path.join(str(tmp_path), "sq.safetensors")
    out = subprocess.run([sys.executable, "-c", SQUARE_EXPORT, path], env=env(), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    model = Mix()
    before = model.w.numpy().copy()
    with pytest.raises(padiff.WeightAssignError, match=r"w \[4, 4\] is square.*Mix and Mixer"):
        padiff.import_weights(model, path, layer_map={"": ""})
    np.testing.assert_array_equal(model.w.numpy(), before)
    # the map says how: a parameter pair with its conversion is copied as it says
    from padiff.layer_map import ParamPair

    lm = padiff.LayerMap()
    lm.params = [ParamPair("w", "w", "transpose")]
    padiff.import_weights(model, path, layer_map=lm)
    np.testing.assert_array_equal(model.w.numpy(), np.arange(16.0, dtype="float32").reshape(4, 4).T)
