"""PaConvert conversions of torchvision's own model files, found by enumeration.

At run time (once per process) torchvision's ``models/*.py`` files, and the two helper files they
import model code from (``ops/misc.py``, ``ops/stochastic_depth.py``, ``utils.py``), are copied into a
temporary package and converted by the installed ``paconvert`` CLI (``-i src -o out --log_dir log``);
nothing of either package is committed. The non-model imports the files make (``transforms._presets``,
``_internally_replaced_utils``: weight tables, download helpers) get a stub. Each file that registers a
model builder with torchvision
(``torchvision.models.list_models``) is one architecture; its builder with the fewest parameters (from
torchvision's weight metadata, nothing downloaded) is built on both sides with the same tiny arguments
(``weights=None, num_classes=10``), the torch weights are copied into the converted model by identical
state names (converted code keeps torch's names; BatchNorm statistics are paddle's ``_mean``/``_variance``;
``paddle.compat.nn.Linear`` keeps torch's ``[out, in]``, a plain ``paddle.nn.Linear`` is ``[in, out]``),
and the pair is registered when the outputs agree. Every other file is listed by :func:`enumerated` with
its reason (converter error, import error, build error, not equivalent with the first differing layer).

Measured (PaConvert 3.3.1, paddle 3.3.1, torchvision 0.29.1): 17 model files, 1 proven. PaConvert 3.3.1
writes the torch-style paddle API of a later paddle (``paddle.nn.ReLU(inplace=True)``, ``paddle.nn.MaxPool2d``,
``BatchNorm2d(eps=...)``), which paddle 3.3.1 lacks, so most files fail to build; Swin-T builds and is
equivalent (8.9e-07 at 32x32). padiff on it, both torch orders: leaf P/R 1.00 (94/94), auto_diff True,
fault named, AdamW True, 0 pairs at confidence >= 0.9 wrong. (Before the layout table by class identity
and numbers that must discriminate: P/R 0.94, False at ``features.1.0.attn`` -- the square
``paddle.compat.nn.Linear`` weight ``attn.proj.weight``, used only through ``F.linear``, was copied
transposed -- and 6 ``norm1 <-> norm2`` pairs wrong at confidence 0.9.)

The 16 others, each file's reason: none is "converted but not equivalent" and none a padiff failure; all are
the converter writing an API paddle 3.3.1 lacks or a line it could not convert, or over the size budget:
``ReLU(inplace=True)`` / ``ReLU6(inplace=True)`` (densenet, mnasnet, mobilenetv2, resnet, shufflenetv2,
squeezenet), ``paddle.nn.MaxPool2d`` (googlenet, inception), ``BatchNorm2D(eps=...)`` (mobilenetv3), a
``LayerNorm`` subclass reading ``normalized_shape`` (convnext), ``torchvision.ops.StochasticDepth`` not
converted (efficientnet), ``float ** tensor`` written as ``paddle.pow(float, ...)`` (regnet); alexnet (61M),
maxvit (31M), vgg (133M) and vision_transformer (87M) have no builder under the 30M budget.
"""

from __future__ import annotations

import functools
import importlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .handcopy import Entry, apply_copy, same, transposed
from .pairs import Built, RealPair, _inputs, _random_bn_stats

PACKAGE = "tvpaconv"  # the converted copy's package name (not torchvision: both must import side by side)
MAX_PARAMS = 30_000_000  # bigger builders are listed, not built (2 cores, 24 GiB shared)
SIZES = (32, 64, 96, 128, 224)
NEEDS = ("torchvision", "paconvert")
HELPERS = ("ops/misc.py", "ops/stochastic_depth.py", "utils.py", "_utils.py")
STUB = '''"""Stub: the converted model files name these only in weight tables and download helpers."""


class _Preset:
    def __init__(self, *args, **kwargs):
        pass


class InterpolationMode:
    NEAREST, BILINEAR, BICUBIC = "nearest", "bilinear", "bicubic"


def __getattr__(name):
    return _Preset
'''
STUBS = ("transforms/_presets.py", "_internally_replaced_utils.py")


@functools.cache
def converted() -> tuple[Path, str]:
    """Convert torchvision's model files once per process: (output directory on ``sys.path``, converter log)."""
    import torchvision

    tv = Path(torchvision.__file__).parent
    root = Path(tempfile.mkdtemp(prefix="padiff-paconvert-"))
    src = root / "src" / PACKAGE
    (src / "models").mkdir(parents=True)
    (src / "ops").mkdir()
    for f in sorted((tv / "models").glob("*.py")):
        shutil.copy(f, src / "models" / f.name)
    for rel in HELPERS:
        shutil.copy(tv / rel, src / rel)
    (src / "__init__.py").write_text("")
    (src / "ops" / "__init__.py").write_text("")
    (src / "models" / "__init__.py").write_text("")  # each file is imported on its own
    exe = shutil.which("paconvert", path=str(Path(sys.executable).parent)) or "paconvert"
    out, log = root / "out", root / "log"
    proc = subprocess.run([exe, "-i", str(root / "src"), "-o", str(out), "--log_dir", str(log)],
                          capture_output=True, text=True, timeout=600)
    text = log.read_text(errors="replace") if log.is_file() else proc.stdout + proc.stderr
    if proc.returncode != 0 or not (out / PACKAGE / "models").is_dir():
        raise RuntimeError(f"paconvert failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-500:]}")
    for f in (out / PACKAGE).rglob("*.py"):
        f.write_text(finish_by_hand(f.read_text(), strict=f.name != "utils.py"))
    (out / PACKAGE / "transforms").mkdir(exist_ok=True)
    (out / PACKAGE / "transforms" / "__init__.py").write_text("")
    for rel in STUBS:
        (out / PACKAGE / rel).write_text(STUB)
    sys.path.insert(0, str(out))
    return out, text


MARK = ">>>>>>"  # PaConvert's prefix for a line it could not convert (left for the user to fix)
FIXES = (  # the fix a user makes to such a line, when the line is a torch scripting/tracing hint
    (re.compile(r"torch\.jit\.is_(scripting|tracing)\(\)"), "False"),
    (re.compile(r"^(\s*)@torch\.jit\.\w+\s*$"), ""),
    (re.compile(r"^(\s*)torch\.fx\.wrap\(.*\)\s*$"), ""),
    (re.compile(r"^(\s*)torch\._C\._log_api_usage_once\(.*\)\s*$"), r"\1pass"),
    # timm's hints: TorchScript constants and annotations, FX wrapping, export checks, feature probes
    (re.compile(r"torch\.jit\.Final\[(.*)\]"), r"\1"),
    (re.compile(r"torch\.jit\.annotations\.(\w+)"), r"\1"),
    (re.compile(r"torch\.compiler\.is_exporting\(\)"), "False"),
    (re.compile(r"^(\s*)@torch\.fx\.wrap\s*$"), ""),
    (re.compile(r"(\w+): torch\.[\w.]+ ="), r"\1 ="),  # a torch type in a default argument's annotation
)
# fixes to any line, marked or not, of what PaConvert wrote wrongly or left as torch without marking it
EVERY_LINE = (
    (re.compile(r"(hasattr|getattr|dir)\(torch\b"), r"\1(paddle"),  # a feature probe: does paddle have it?
    (re.compile(r"\*\*(\w+) or \{\}"), r"**(\1 or {})"),  # its code writer drops the parentheses of **(a or {})
)
# PaConvert turns ``try: from torch import f / except ImportError: <fallback f>`` into ``try: pass``, so the
# fallback is never defined: the user makes the fallback unconditional (or drops the block when the fallback was
# a torch import too, which PaConvert removed, leaving ``except ImportError:`` with no body)
DROPPED_IMPORT = re.compile(r"(?m)^([ \t]*)try:\n[ \t]*pass\n[ \t]*except ImportError:\n(?=(?:[ \t]*\n)*([ \t]*))")


def _dropped_import(m: re.Match) -> str:
    indent, following = m.group(1), m.group(2)
    if len(following) > len(indent):
        return f"{indent}if True:  # the converter dropped the torch import this was the fallback of\n"
    return f"{indent}pass  # the converter dropped a torch import and its torch fallback\n"


def finish_by_hand(text: str, strict: bool = True) -> str:
    """Fix the lines PaConvert marked that are only TorchScript / FX hints, as its user would; a marked line
    that does real work stays marked (the file then fails to import, and that is the reason given).

    ``strict=False`` (torchvision's ``utils.py``, a helper the model files import two small functions from):
    every marked line is unmarked; the unconverted ones are in image-drawing functions no model calls."""
    out = []
    text = DROPPED_IMPORT.sub(_dropped_import, text)
    for line in text.splitlines():
        for pattern, repl in EVERY_LINE:
            line = pattern.sub(repl, line)
        if line.startswith(MARK):
            body = line[len(MARK):]
            fixed = body
            for pattern, repl in FIXES:
                fixed = pattern.sub(repl, fixed)
            if not strict or ("torch." not in fixed and "torchvision." not in fixed):
                # a hint that was a whole statement becomes ``pass`` (it may be a block's only statement)
                line = fixed if fixed.strip() else body[: len(body) - len(body.lstrip())] + "pass"
        out.append(line)
    return "\n".join(out) + "\n"


def builders() -> dict[str, list[tuple[int, str]]]:
    """torchvision model file (``resnet``) -> its registered builders as (parameter count, name), smallest first."""
    import torchvision

    files: dict[str, list[tuple[int, str]]] = {}
    for name in torchvision.models.list_models(module=torchvision.models):
        fn = torchvision.models.get_model_builder(name)
        try:
            n = int(torchvision.models.get_model_weights(name).DEFAULT.meta["num_params"])
        except Exception:  # noqa: BLE001 - a builder without weight metadata sorts last
            n = sys.maxsize
        files.setdefault(fn.__module__.rsplit(".", 1)[-1], []).append((n, name))
    return {f: sorted(v) for f, v in sorted(files.items())}


def _input_size(module: Any, sizes: tuple[int, ...] = SIZES) -> int:
    import torch

    for s in sizes:
        try:
            with torch.no_grad():
                module.eval()(torch.zeros(1, 3, s, s))
            return s
        except Exception:  # noqa: BLE001 - too small for this architecture: try the next size
            continue
    raise RuntimeError(f"torch model runs at none of the sizes {sizes}")


def build_converted(file: str, builder: str) -> Built:
    """torchvision's ``builder`` and the converted file's one, same tiny arguments, BN statistics randomised."""
    import torchvision

    converted()
    kw = dict(weights=None, num_classes=10)
    pt = _random_bn_stats(torchvision.models.get_model_builder(builder)(**kw))
    mod = importlib.import_module(f"{PACKAGE}.models.{file}")
    return converted_pair(getattr(mod, builder)(**kw), pt, builder)


def converted_pair(pd: Any, pt: Any, builder: str, sizes: tuple[int, ...] = SIZES) -> Built:
    """The converted model ``pd`` and the torch one ``pt`` with inputs of the smallest image size in ``sizes``
    torch runs at; a converted builder that returned no paddle Layer is an error."""
    import paddle

    if not isinstance(pd, paddle.nn.Layer):
        raise TypeError(f"the converted {builder} returned {type(pd).__name__}, not a paddle Layer")
    s = _input_size(pt, sizes)
    return (pd, pt, *_inputs((2, 3, s, s)))


BN_STATS = {"running_mean": "_mean", "running_var": "_variance"}


def by_name_copy(layer: Any, module: Any) -> list[Entry]:
    """Identical state names (BatchNorm statistics renamed), each Linear weight in its class's layout."""
    import paddle

    compat_linear = getattr(getattr(getattr(paddle, "compat", None), "nn", None), "Linear", None)
    pd_layers = dict(layer.named_sublayers())
    persistent = set(layer.state_dict())
    out: list[Entry] = []
    for name, t in module.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        head, _, leaf = name.rpartition(".")
        target = f"{head}.{BN_STATS.get(leaf, leaf)}" if head else BN_STATS.get(leaf, leaf)
        if target not in persistent and name in persistent:
            target = name
        owner = pd_layers.get(head)
        plain_linear = isinstance(owner, paddle.nn.Linear) and not (
            compat_linear is not None and isinstance(owner, compat_linear))
        out.append(Entry(target, (name,), transposed if plain_linear and leaf == "weight" and t.ndim == 2 else same))
    return out


def first_differing_layer(layer: Any, module: Any, p_inp: dict, t_inp: dict) -> str:
    """The first torch leaf (in call order) whose output differs from the same-named paddle layer's."""
    import torch

    from .handcopy import as_numpy

    pd_out: dict[str, list] = {}
    pt_out: dict[str, list] = {}
    order: list[str] = []
    handles = []
    for name, m in module.named_modules():
        if name and not list(m.children()):
            handles.append(m.register_forward_hook(
                lambda _m, _i, o, n=name: (order.append(n), pt_out.setdefault(n, as_numpy(o)))))
    pd_layers = dict(layer.named_sublayers())
    for name in list(pt_out) or [n for n, m in module.named_modules() if n and not list(m.children())]:
        if name in pd_layers:
            handles.append(pd_layers[name].register_forward_post_hook(
                lambda _l, _i, o, n=name: pd_out.setdefault(n, as_numpy(o))))
    with torch.no_grad():
        module(**t_inp)
    layer(**p_inp)
    for h in handles:
        h.remove()
    for name in order:
        a, b = pd_out.get(name), pt_out.get(name)
        if a is None or not b:
            continue
        if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
            return f"{name} (shapes {[x.shape for x in a]} vs {[y.shape for y in b]})"
        scale = max(float(np.max(np.abs(y))) for y in b) or 1.0
        diff = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))
        if diff / scale > 1e-4:
            t_cls = type(dict(module.named_modules())[name]).__name__
            return f"{name} ({type(pd_layers[name]).__name__} vs {t_cls}, max abs diff {diff:.2e})"
    return "(no single layer: the difference is in functional code between layers)"


def prove(file: str, builder: str) -> float:
    """Build, copy by name, compare; the relative max diff, or an exception with the reason."""
    import paddle
    import torch

    paddle.seed(0)
    torch.manual_seed(0)
    return prove_built(*build_converted(file, builder))


def prove_built(layer: Any, module: Any, p_inp: Any, t_inp: Any) -> float:
    """Copy a converted pair's weights by name and compare in eval mode: the relative max diff, or an
    exception with the reason (:class:`NotEquivalent` names the first differing layer)."""
    from .score import run_both

    layer.eval()
    module.eval()
    apply_copy(layer, module, by_name_copy(layer, module))
    p_out, t_out = run_both(layer, module, p_inp, t_inp)
    if not p_out or len(p_out) != len(t_out) or any(a.shape != b.shape for a, b in zip(p_out, t_out)):
        raise AssertionError(f"outputs differ in count or shape: paddle {[a.shape for a in p_out]}, "
                             f"torch {[b.shape for b in t_out]}")
    scale = max(float(np.max(np.abs(b))) for b in t_out)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(p_out, t_out))
    if scale < 1e-3:
        raise AssertionError(f"torch output ~0 (max {scale:.1e}): nothing proven")
    if diff / scale >= 1e-4:
        at = first_differing_layer(layer, module, p_inp, t_inp)
        raise NotEquivalent(f"not equivalent: max abs diff {diff:.2e} (relative {diff / scale:.1e}); "
                            f"first differing layer {at}", at)
    return diff / scale


class NotEquivalent(AssertionError):
    """The converted model computes something else; ``layer`` is the first differing one."""

    def __init__(self, message: str, layer: str) -> None:
        super().__init__(message)
        self.layer = layer


def _fault_leaf(module: Any) -> str:
    """A torch leaf in the middle of the model's parameter-holding leaves (convolutions and Linears)."""
    import torch

    leaves = [n for n, m in module.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    return leaves[len(leaves) // 2]


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.text and exc.text.startswith(MARK):
        return (f"PaConvert could not convert {Path(exc.filename or '').name} line {exc.lineno}: "
                f"{exc.text[len(MARK):].strip()[:200]}")
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


@functools.cache
def enumerated() -> tuple[tuple[RealPair, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(registered pairs, (file, reason) for each file left out, every enumerated file)."""
    pairs: list[RealPair] = []
    left: list[tuple[str, str]] = []
    files = builders()
    try:
        converted()
    except Exception as exc:  # noqa: BLE001 - no converter: every file is listed with that reason
        return (), tuple((f, _first_line(exc)) for f in files), tuple(files)
    for file, found in files.items():
        n, builder = found[0]
        if n > MAX_PARAMS:
            left.append((file, f"smallest builder {builder} has {n / 1e6:.0f}M parameters (> {MAX_PARAMS / 1e6:.0f}M "
                               "budget)"))
            continue
        try:
            rel = prove(file, builder)
        except Exception as exc:  # noqa: BLE001 - listed with its reason
            left.append((file, f"{builder}: {_first_line(exc)}"))
            continue
        _, module, _, _ = build_converted(file, builder)
        pairs.append(RealPair(f"paconvert:{builder}", f"PaConvert / torchvision (rel diff {rel:.1e})", NEEDS,
                              functools.partial(build_converted, file, builder), by_name_copy, _fault_leaf(module)))
        print(f"converted {file}.{builder}: proven, relative diff {rel:.1e}", file=sys.stderr)
    return tuple(pairs), tuple(left), tuple(files)


def convert_pairs() -> list[RealPair]:
    """The registered conversions, or none outside the real-pairs suite."""
    from .pairs_enum import wanted

    return list(enumerated()[0]) if wanted() else []

