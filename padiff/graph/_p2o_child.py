"""Child-process entry point: run ``paddle2onnx.export`` on files saved by ``paddle.jit.save``.

paddle2onnx can abort the whole process (SIGABRT in C++) or call ``sys.exit`` on ops it
does not support, so the parent never calls it directly. It starts
``python -m padiff.graph._p2o_child`` *before* its own ``jit.save`` (importing
paddle2onnx, and with it paddle, takes ~1.8 s and overlaps the parent's work), then
writes one JSON line ``[model_json, params, out_onnx, opset]`` to the child's stdin.
End of input without a line means "cancelled". A non-zero exit or a missing output
file is a failed export. Only this child imports paddle2onnx, so its side effects
(environment variables, run-time installs, logging setup) never reach the user's process.
"""

from __future__ import annotations

import json
import os
import sys


def convert(model_json: str, params: str, out_path: str, opset: int) -> int:
    """Convert one saved program; return the exit code."""
    import paddle2onnx

    data = paddle2onnx.export(model_json, params, save_file=None, opset_version=int(opset), enable_optimize=False)
    if not data:
        print("paddle2onnx returned no model", file=sys.stderr)
        return 3
    tmp = out_path + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, out_path)
    return 0


def main() -> int:
    """Import paddle2onnx, wait for the job line on stdin, convert."""
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"  # this child only: never pip-install
    import paddle2onnx  # noqa: F401 - warm up while the parent runs jit.save

    line = sys.stdin.readline()
    if not line.strip():
        return 0
    model_json, params, out_path, opset = json.loads(line)
    return convert(model_json, params, out_path, int(opset))


if __name__ == "__main__":
    sys.exit(main())
