"""Child-process entry point: run paddle2onnx on files saved by ``paddle.jit.save``.

paddle2onnx can abort the whole process (SIGABRT in C++) or call ``sys.exit`` on ops it
does not support, so the parent never calls it directly. It starts
``python -m padiff.graph.export_paddle_child`` *before* its own ``jit.save`` (so start-up
overlaps the parent's work), then writes one JSON line
``[model_json, params, out_onnx, opset]`` to the child's stdin; end of input without
a line means "cancelled". A non-zero exit or a missing output file is a failed export.
Only this child loads paddle2onnx, so its side effects (environment variables, run-time
installs, logging setup) never reach the user's process.

Start-up: ``import paddle2onnx`` imports all of paddle (~1.3 s CPU). The converter is
a C++ extension that only needs ``libpaddle.so``, so the fast path loads that library
and the extension directly (~0.3 s CPU, measured byte-identical output on resnet18);
if the layout of either package differs, the child falls back to the public
``paddle2onnx.export``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

Converter = Callable[[str, str, int], bytes]


def _fast_converter() -> Converter | None:
    """The C++ ``export`` loaded without importing the paddle package, or None."""
    try:
        import ctypes
        import glob
        import importlib.util

        paddle_spec = importlib.util.find_spec("paddle")
        p2o_spec = importlib.util.find_spec("paddle2onnx")
        if paddle_spec is None or p2o_spec is None or not paddle_spec.origin or not p2o_spec.origin:
            return None
        ctypes.CDLL(os.path.join(os.path.dirname(paddle_spec.origin), "base", "libpaddle.so"),
                    mode=ctypes.RTLD_GLOBAL)
        found = glob.glob(os.path.join(os.path.dirname(p2o_spec.origin), "paddle2onnx_cpp2py_export*.so"))
        if not found:
            return None
        spec = importlib.util.spec_from_file_location("paddle2onnx.paddle2onnx_cpp2py_export", found[0])
        if spec is None or spec.loader is None:
            return None
        ext: Any = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(ext)
    except (ImportError, OSError, AttributeError):
        return None

    def convert(model_json: str, params: str, opset: int) -> bytes:
        # positional arguments of paddle2onnx 2.x's C++ export, as its Python wrapper passes
        # them: opset, auto_upgrade_opset, verbose, onnx checker, experimental ops,
        # optimize (off: we need the unfolded graph), custom ops, backend, calibration,
        # external file, fp16
        return ext.export(model_json, params if os.path.exists(params) else "", opset, True, False, True, True,
                          False, {}, "onnxruntime", "", "", False)

    return convert


def _public_converter() -> Converter:
    import paddle2onnx

    def convert(model_json: str, params: str, opset: int) -> bytes:
        return paddle2onnx.export(model_json, params, save_file=None, opset_version=opset, enable_optimize=False)

    return convert


def main() -> int:
    """Load the converter, wait for the job line on stdin, convert; return the exit code."""
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"  # this child only: never pip-install
    convert = _fast_converter()
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    model_json, params, out_path, opset = json.loads(line)
    try:
        data = convert(model_json, params, int(opset)) if convert is not None else None
    except TypeError:  # a changed C++ signature: use the public API
        data = None
    if data is None:
        data = _public_converter()(model_json, params, int(opset))
    if not data:
        print("paddle2onnx returned no model", file=sys.stderr)
        return 3
    tmp = out_path + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
