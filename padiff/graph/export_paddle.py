"""Export a paddle model to ONNX bytes without touching the user's process or model.

Route (measured, see GRAPH_NOTES): a child process is started first (it loads
paddle2onnx's converter while we work), ``paddle.jit.save`` runs here into a temp dir,
then the child converts the saved program (``export_paddle_child``). paddle2onnx can SIGABRT or
``sys.exit`` on unsupported ops and may set environment variables or pip-install, so
it never runs in the user's process; a dead child is a failed export.
``paddle.onnx.export`` is avoided: it renames parameters (destroying attribution), runs
a Polygraphy pass that changes ``os.environ`` and is ~4x slower. The conversion skips
weight values: only structure, names and shapes (taken from the live model) are needed.

Attribution: unfolded paddle2onnx output names each parameter after its dygraph
``param.name`` (global counters such as ``linear_0.w_0``), so we record
``{param.name: (layer_path, attr)}`` from the live model. Parameter-free ops get their
layer from a path stamp: forward hooks, registered only for the duration of
``jit.save``, write ``padiff:<call>:<path>`` into each PIR op's ``struct_name``
attribute; the saved program keeps it and paddle2onnx names op outputs
``p2o.pd_op.<op>.<k>.<j>`` after the k-th PIR op of that type, which lets us map ONNX
nodes back to stamps. The stamp is an undocumented channel, so it is only a secondary
signal: parameter ownership decides first.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from padiff.adapters import PADDLE
from padiff.adapters.attrs import attributes_kept
from padiff.errors import ExportError
from padiff.graph._quiet import quiet
from padiff.graph.export_message import cause_text, with_rest

OPSET = 17
STAMP = "padiff:"


@dataclass
class PaddleExport:
    """ONNX bytes plus what is needed to attribute its ops to layer paths."""

    model: bytes
    owner: dict[str, tuple[str, str]]  # param.name -> (layer path, attribute)
    stamps: dict[tuple[str, int], tuple[str, int]]  # (pir op name, k) -> (layer path, call index)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # param.name -> shape
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class PendingPaddleExport:
    """A ``jit.save`` done in this process and a paddle2onnx child still running."""

    proc: subprocess.Popen[bytes]
    tmpdir: tempfile.TemporaryDirectory[str]
    out_path: str
    owner: dict[str, tuple[str, str]]
    stamps: dict[tuple[str, int], tuple[str, int]]
    shapes: dict[str, tuple[int, ...]]
    started: float
    seconds: dict[str, float]
    job: bytes = b""

    def cancel(self) -> None:
        """Stop the child and remove the temp dir."""
        self._kill()
        self.tmpdir.cleanup()

    def _kill(self) -> None:
        """Kill the child and reap it (no zombie), whatever state it is in."""
        with contextlib.suppress(Exception):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.communicate(timeout=10)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)

    def result(self, timeout: float) -> PaddleExport:
        """Wait for the child; raise :class:`ExportError` (with its message) if it failed."""
        try:
            try:
                out, err = self.proc.communicate(input=self.job, timeout=max(timeout, 0.1))
            except subprocess.TimeoutExpired as exc:
                self.proc.kill()
                self.proc.communicate()
                raise ExportError(f"paddle2onnx did not finish within {timeout:.0f} s") from exc
            except BaseException:
                # Ctrl-C while waiting: a child busy in C++ ignores SIGINT (and Jupyter signals only the
                # kernel), so it is killed and reaped here
                self._kill()
                raise
            code = self.proc.returncode
            if code != 0 or not os.path.exists(self.out_path):
                why = "killed by a signal (abort in paddle2onnx)" if code < 0 else f"exit code {code}"
                raw = (out or b"") + (err or b"")
                output = "\n".join(ln for ln in (_ANSI.sub("", x).rstrip() for x in
                                                  raw.decode("utf-8", "replace").splitlines()) if ln)
                raise ExportError(f"paddle2onnx failed ({why}): {_last_error_line(raw)}"
                                  + (f"\nits output:\n{with_rest(output)}" if output else ""))
            with open(self.out_path, "rb") as f:
                data = f.read()
            self.seconds["paddle2onnx"] = time.perf_counter() - self.started
            return PaddleExport(data, self.owner, self.stamps, self.shapes, self.seconds)
        finally:
            self.tmpdir.cleanup()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _last_error_line(raw: bytes) -> str:
    """The most telling line of paddle2onnx's output (its ``[ERROR]`` lines first)."""
    lines = [_ANSI.sub("", ln).strip() for ln in raw.decode("utf-8", "replace").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("[0")]
    primary = [ln for ln in lines if "[ERROR]" in ln or "Oops" in ln or "not supported" in ln]
    secondary = [ln for ln in lines if ("rror" in ln or "xception" in ln) and "Summary" not in ln
                 and "FatalError" not in ln and "Traceback" not in ln]
    msg = (primary or secondary or lines or ["no message"])[-1]
    return msg.replace("[ERROR][Paddle2ONNX] ", "")[:300]


def input_specs(layer: Any, kwargs: Mapping[str, Any]) -> list[Any]:
    """``InputSpec``s in the order of ``layer.forward``'s parameters, from example tensors."""
    import paddle

    params = [p for p in inspect.signature(layer.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in params]
    unknown = [k for k in kwargs if k not in names]
    if unknown:
        raise ExportError(f"example input keys {unknown} are not positional parameters of forward{tuple(names)}")
    specs = []
    for p in params:
        if p.name not in kwargs:
            if p.default is inspect.Parameter.empty:
                raise ExportError(f"forward parameter {p.name!r} has no example input")
            break
        v = kwargs[p.name]
        if not isinstance(v, paddle.Tensor):
            raise ExportError(f"example input {p.name!r} is a {type(v).__name__}, not a paddle.Tensor")
        specs.append(paddle.static.InputSpec(list(v.shape), v.dtype, p.name))
    if len(specs) != len(kwargs):
        raise ExportError("example inputs must fill forward's leading parameters without gaps")
    return specs


def start_export(layer: Any, kwargs: Mapping[str, Any]) -> PendingPaddleExport:
    """Start the paddle2onnx child, ``jit.save`` the model (eval mode, path stamps), hand it over.

    The model's modes, hooks and ``stop_gradient`` flags are restored before returning,
    also on failure. Raises :class:`ExportError` when ``jit.save`` fails. The ONNX model
    is converted without weight values (only structure and names are needed; shapes
    come from the live model), which keeps a resnet50 export at kilobytes, and ``jit.save``
    does not write them either (:func:`_no_weight_values`).
    """
    import paddle

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    layers = list(layer.named_sublayers(include_self=True))
    owner: dict[str, tuple[str, str]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for path, sub in layers:
        for attr, t in list(sub.named_parameters(include_sublayers=False)) + list(
                sub.named_buffers(include_sublayers=False)):
            if t is not None and t.name not in owner:
                owner[t.name] = (path, attr)
                shapes[t.name] = tuple(int(d) for d in t.shape)
    tmpdir = tempfile.TemporaryDirectory(prefix="padiff-export-")
    prefix = os.path.join(tmpdir.name, "model")
    env = dict(os.environ)
    env["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"
    env.setdefault("GLOG_minloglevel", "2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "padiff.graph.export_paddle_child"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE, cwd=tmpdir.name, env=env,
    )
    modes = [(sub, sub.training) for _, sub in layers]
    flags = [(p, p.stop_gradient) for p in layer.parameters()]
    handles: list[Any] = []
    pending = PendingPaddleExport(proc, tmpdir, prefix + ".onnx", owner, {}, shapes, time.perf_counter(), seconds)
    try:
        specs = input_specs(layer, kwargs)
        handles = _add_stamp_hooks(layer, layers)
        for _, sub in layers:
            sub.training = False
        # the trace runs forward in static mode: attributes it caches would keep static-graph Values
        with quiet(), attributes_kept(PADDLE, layer), _no_weight_values():
            paddle.jit.save(layer, prefix, input_spec=specs)
        pending.stamps = read_stamps(prefix + ".json")
    except ExportError:
        pending.cancel()
        raise
    except Exception as exc:  # jit.save raises many types; all mean "cannot export"
        pending.cancel()
        raise ExportError(f"paddle.jit.save failed: {cause_text(exc)}") from exc
    except BaseException:  # Ctrl-C during the trace: no child, no temp dir and no zombie left behind
        pending.cancel()
        raise
    finally:
        for h in handles:
            h.remove()
        for sub, mode in modes:
            sub.training = mode
        for p, flag in flags:
            p.stop_gradient = flag
    seconds["jit_save"] = time.perf_counter() - t0
    # no weight values: a params path that does not exist makes paddle2onnx skip them
    job = json.dumps([prefix + ".json", prefix + ".no-params", prefix + ".onnx", OPSET]) + "\n"
    pending.job = job.encode()
    pending.started = time.perf_counter()
    return pending


def export_paddle(layer: Any, kwargs: Mapping[str, Any], timeout: float = 120.0) -> PaddleExport:
    """Export ``layer`` called as ``layer(**kwargs)``; raise :class:`ExportError` on failure."""
    return start_export(layer, kwargs).result(timeout)



@contextlib.contextmanager
def _no_weight_values() -> Any:
    """``jit.save`` writes the program only, not the parameter values (no ``.pdiparams``).

    The conversion never reads them (structure, names and shapes suffice), and at real sizes
    writing them cost a model's worth of disk and seconds of CPU (2 GB for a 0.5B model). PIR's
    ``save_inference_model`` writes them through its module's ``save_vars_pir``, which is
    replaced by a no-op for the duration of the call; a paddle without it writes them as before.
    """
    try:
        import paddle.static.pir_io as pir_io
    except ImportError:  # pragma: no cover - another paddle layout: values are written, harmlessly
        yield
        return
    real = getattr(pir_io, "save_vars_pir", None)
    if real is None:  # pragma: no cover
        yield
        return
    pir_io.save_vars_pir = lambda *a, **k: None
    try:
        yield
    finally:
        pir_io.save_vars_pir = real


FLUSH_EVERY = 256  # layer calls between stamping passes over the program's op list


def _add_stamp_hooks(root: Any, layers: list[tuple[str, Any]]) -> list[Any]:
    """Hooks that stamp ``padiff:<call>:<path>`` on the PIR ops each layer call creates.

    Pre/post hooks only record op-count intervals (``num_ops`` is O(1)); the op list
    is fetched and stamped in batches (when the root call ends, or every
    ``FLUSH_EVERY`` calls), innermost calls first, so an op belongs to the innermost
    layer that created it. Fetching the list per call made ``jit.save`` quadratic in
    model depth (68 s for a 1200-layer MLP).
    """
    import paddle

    starts: dict[int, list[int]] = {}
    calls: dict[int, int] = {}
    pending: list[tuple[int, int, str]] = []
    stamped: set[int] = set()

    def block() -> Any:
        return paddle.static.default_main_program().global_block()

    def flush() -> None:
        if not pending:
            return
        ops = list(block().ops)
        for begin, end, stamp in pending:
            for i in range(begin, min(end, len(ops))):
                if i not in stamped:
                    stamped.add(i)
                    with contextlib.suppress(Exception):
                        ops[i].set_str_attr("struct_name", stamp)
        pending.clear()

    def make(path: str, is_root: bool) -> tuple[Any, Any]:
        def pre(lay: Any, inputs: Any) -> None:
            if paddle.in_dynamic_mode():
                return
            if is_root:  # a new trace
                calls.clear()
                pending.clear()
                stamped.clear()
            starts.setdefault(id(lay), []).append(block().num_ops())

        def post(lay: Any, inputs: Any, outputs: Any) -> None:
            if paddle.in_dynamic_mode() or not starts.get(id(lay)):
                return
            begin = starts[id(lay)].pop()
            call = calls.get(id(lay), 0)
            calls[id(lay)] = call + 1
            pending.append((begin, block().num_ops(), f"{STAMP}{call}:{path}"))
            if is_root or len(pending) >= FLUSH_EVERY:
                flush()

        return pre, post

    handles = []
    for path, sub in layers:
        pre, post = make(path, sub is root)
        handles.append(sub.register_forward_pre_hook(pre))
        handles.append(sub.register_forward_post_hook(post))
    return handles


def read_stamps(model_json: str) -> dict[tuple[str, int], tuple[str, int]]:
    """``{(op name, k): (path, call)}`` for the k-th PIR op of each type, from stamps."""
    with open(model_json) as f:
        program = json.load(f)
    counts: dict[str, int] = {}
    out: dict[tuple[str, int], tuple[str, int]] = {}
    for op in _walk_ops(program["program"]):
        name = str(op.get("#", ""))
        if "." not in name:
            continue
        short = name.split(".", 1)[1]
        k = counts.get(short, 0)
        counts[short] = k + 1
        for attr in op.get("A", []) or []:
            if isinstance(attr, dict) and attr.get("N") == "struct_name":
                value = attr.get("AT", {}).get("D", "")
                if isinstance(value, str) and value.startswith(STAMP):
                    call, _, path = value[len(STAMP):].partition(":")
                    out[(short, k)] = (path, int(call))
    return out


def _walk_ops(region_holder: dict[str, Any]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for region in region_holder.get("regions", []):
        for block in region.get("blocks", []):
            for op in block.get("ops", []):
                ops.append(op)
                if isinstance(op, dict) and op.get("regions"):
                    ops.extend(_walk_ops(op))
    return ops
