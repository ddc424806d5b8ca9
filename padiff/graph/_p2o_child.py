"""Child-process entry point: run ``paddle2onnx.export`` on files saved by ``paddle.jit.save``.

paddle2onnx can abort the whole process (SIGABRT in C++) or call ``sys.exit`` on ops it
does not support, so the parent never calls it directly: it runs
``python -m padiff.graph._p2o_child MODEL_JSON PARAMS OUT_ONNX OPSET`` and treats a
non-zero exit or a missing output file as a failed export. Only this child imports
paddle2onnx, so its side effects (environment variables, run-time installs, logging
setup) never reach the user's process.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    """Convert ``argv = [model_json, params, out_onnx, opset]``; return the exit code."""
    model_json, params, out_path, opset = argv
    os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"  # this child only: never pip-install
    import paddle2onnx

    data = paddle2onnx.export(model_json, params, save_file=None, opset_version=int(opset),
                              enable_optimize=False)
    if not data:
        print("paddle2onnx returned no model", file=sys.stderr)
        return 3
    tmp = out_path + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
