"""A torchvision model converted by PaConvert, checked as converted (opt-in: ``pytest -m real_pairs``).

The torch source is read from the installed torchvision at test time and converted by the
installed ``paconvert`` into a temporary folder; nothing of either is kept in this repository.
PaConvert writes ``paddle.compat.nn.Linear`` for every ``nn.Linear`` (torch's ``[out, in]``
layout); AlexNet's classifier holds a square 4096x4096 one, which a shape-based copy transposes.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.real_pairs


def _class_source(path: Path, name: str) -> str:
    """The source of class ``name`` in ``path`` (up to the next top-level statement), as torch code."""
    lines = path.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"class {name}("))
    end = next((i for i, ln in enumerate(lines) if i > start and ln and not ln[0].isspace()), len(lines))
    body = [ln for ln in lines[start:end] if "_log_api_usage_once" not in ln]
    return "\n".join(["import torch", "import torch.nn as nn", "", *body]) + "\n"


def _fit_paddle(src: str) -> tuple[str, list[str]]:
    """Adjust names the installed paddle lacks (PaConvert may target a newer one); the adjustments made."""
    import paddle

    made = []
    for name in sorted(set(re.findall(r"paddle\.nn\.(\w+)", src))):
        if not hasattr(paddle.nn, name) and hasattr(paddle.nn, name[:-1] + name[-1].upper()):
            src = src.replace(f"paddle.nn.{name}", f"paddle.nn.{name[:-1]}{name[-1].upper()}")
            made.append(f"paddle.nn.{name} -> {name[:-1]}{name[-1].upper()}")
    try:
        paddle.nn.ReLU(inplace=True)
    except TypeError:
        src, n = re.subn(r"\binplace=True\b", "", src)
        made += ["inplace=True dropped"] if n else []
    return src, made


def _load(path: Path, module: str) -> object:
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def alexnet_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    tv = pytest.importorskip("torchvision")
    pytest.importorskip("paddle")
    tool = shutil.which("paconvert", path=os.path.dirname(sys.executable))
    if tool is None:
        pytest.skip("paconvert not installed (make real-pairs installs it)")
    folder = tmp_path_factory.mktemp("paconvert")
    torch_file, paddle_file = folder / "alex_torch.py", folder / "alex_paddle.py"
    torch_file.write_text(_class_source(Path(tv.__file__).parent / "models" / "alexnet.py", "AlexNet"))
    subprocess.run([tool, "--in_dir", str(torch_file), "--out_dir", str(paddle_file)], check=True,
                   capture_output=True, timeout=600)
    converted = paddle_file.read_text()
    assert "paddle.compat.nn.Linear(4096, 4096)" in converted  # what PaConvert writes, square
    fitted, _ = _fit_paddle(converted)
    paddle_file.write_text(fitted)
    return _load(torch_file, "padiff_alex_torch"), _load(paddle_file, "padiff_alex_paddle")


@pytest.mark.parametrize("layer_map", [{}, "auto"], ids=["call-order", "auto"])
def test_paconvert_alexnet_passes_as_converted(alexnet_pair, layer_map):
    import paddle
    import torch

    import padiff

    t_mod, p_mod = alexnet_pair
    torch.manual_seed(0)
    module, layer = t_mod.AlexNet(num_classes=10, dropout=0.0), p_mod.AlexNet(num_classes=10, dropout=0.0)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype("float32")
    rep = padiff.compare(layer, module, ({"x": paddle.to_tensor(x)}, {"x": torch.from_numpy(x)}), auto_weights=True,
                         layer_map=layer_map, options={"atol": 1e-4, "rtol": 1e-3})
    assert rep, rep.first_diff
    np.testing.assert_array_equal(layer.classifier[4].weight.numpy(), module.classifier[4].weight.detach().numpy())
