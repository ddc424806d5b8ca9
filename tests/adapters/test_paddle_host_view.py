"""``PADDLE.host_view``: a CPU paddle tensor read without a copy (``Tensor.numpy()`` copies).

The Recorder takes statistics of every parameter, gradient and output through it at level
``stats``, and writes parameters from it at level ``full``; it must hold the tensor's values.
"""

from __future__ import annotations

import numpy as np


def test_host_view_shares_a_cpu_tensors_memory_and_holds_its_values() -> None:
    import paddle

    from padiff.adapters import PADDLE

    t = paddle.to_tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    view = PADDLE.host_view(t)
    np.testing.assert_array_equal(view, PADDLE.to_numpy(t))
    assert view.ctypes.data == t.data_ptr()  # no copy
    half = paddle.to_tensor(np.ones((2, 2), np.float32)).astype("bfloat16")
    assert PADDLE.host_view(half).dtype == np.float32  # widened for numpy, as to_numpy does
