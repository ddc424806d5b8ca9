"""export_weights / import_weights: assign_weight across processes through a safetensors file."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import padiff
from tests.offline.conftest import env

TORCH_EXPORT = """
import sys
class B:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'paddle':
            raise ImportError(name)
sys.meta_path.insert(0, B())
import torch, padiff
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Linear(6, 2))
m[1].running_mean.fill_(0.5)
padiff.export_weights(m, sys.argv[1])
import numpy as np
np.save(sys.argv[1] + '.w0.npy', m[0].weight.detach().numpy())
"""


def test_torch_weights_reach_paddle_in_another_process(tmp_path: object) -> None:
    import paddle

    path = os.path.join(str(tmp_path), "w.safetensors")
    out = subprocess.run([sys.executable, "-c", TORCH_EXPORT, path], env=env(), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr

    class Net(paddle.nn.Layer):  # other names, same structure
        def __init__(self) -> None:
            super().__init__()
            self.inp, self.norm, self.out = paddle.nn.Linear(4, 6), paddle.nn.BatchNorm1D(6), paddle.nn.Linear(6, 2)

    net = Net()
    lines = padiff.import_weights(net, path)
    assert len(lines) == 3 and "transpose" in lines[0]
    np.testing.assert_array_equal(net.inp.weight.numpy(), np.load(path + ".w0.npy").T)
    np.testing.assert_array_equal(net.norm._mean.numpy(), np.full(6, 0.5, "float32"))
    with pytest.raises(padiff.RunFolderError, match="does not overwrite"):
        padiff.export_weights(net, path)


def test_shapes_that_do_not_correspond_name_the_pair(tmp_path: object) -> None:
    import paddle
    import torch

    path = os.path.join(str(tmp_path), "w.safetensors")
    padiff.export_weights(torch.nn.Linear(4, 6), path)
    with pytest.raises(padiff.WeightAssignError, match="cannot copy weights"):
        padiff.import_weights(paddle.nn.Linear(4, 5), path)
    with pytest.raises(padiff.WeightAssignError, match="exported from a torch model"):
        padiff.import_weights(torch.nn.Linear(4, 6), path)


def test_export_weights_creates_missing_folders(tmp_path: object) -> None:
    import torch

    path = os.path.join(str(tmp_path), "runs", "deeper", "w.safetensors")
    assert padiff.export_weights(torch.nn.Linear(4, 3), path) == path
    assert os.path.getsize(path) > 0 and os.listdir(os.path.dirname(path)) == ["w.safetensors"]


def test_export_weights_under_a_file_is_an_output_path_error(tmp_path: object) -> None:
    import torch

    afile = os.path.join(str(tmp_path), "afile")
    with open(afile, "w") as f:
        f.write("mine\n")
    with pytest.raises(padiff.OutputPathError, match="afile is a file, not a directory"):
        padiff.export_weights(torch.nn.Linear(4, 3), os.path.join(afile, "w.safetensors"))
    with pytest.raises(padiff.OutputPathError, match="is a directory; give a file name"):
        padiff.export_weights(torch.nn.Linear(4, 3), str(tmp_path))
