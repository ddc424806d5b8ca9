"""PaConvert conversions of timm's own model files, found by enumeration.

At run time timm's ``layers/``, ``models/`` and ``data/`` folders are copied from site-packages into a
temporary package ``timmpc`` (its ``import timm...`` lines renamed, so PaConvert converts timm's torch
code as the user's own instead of treating ``timm`` as a torch library) and converted by the installed
``paconvert`` CLI; nothing of timm is committed. The raw conversion is cached per timm / PaConvert
version in the temporary folder (converting timm takes minutes of CPU). The lines PaConvert marked are
finished as a user would (:func:`pairs_convert.finish_by_hand`): TorchScript / FX / export hints in every
file; in the helper files (``layers/``, ``models/_*.py``, ``data/``) every marked line is unmarked (a torch
call left there fails when a model runs it, naming the line), while in a model file a marked line that
does real work stays marked, so the file fails to import with that line as its reason.

Each file timm registers models from (``timm.models._registry``) is one architecture; its builder with
the fewest parameters (counted on the meta device among the names that sound smallest) is built on
both sides with ``num_classes=10`` (and a small ``img_size`` where the builder takes one); the torch
weights are copied by identical state names (:func:`pairs_convert.by_name_copy`) and the pair is
registered when the outputs agree. Every other file is listed by :func:`enumerated` with its reason.

Measured (timm 1.0.31, PaConvert 3.3.1, paddle 3.3.1): 98 model files enumerated, 0 import and build, so
none is registered (the mechanism registers them as ``timm:<builder>`` once a converter and paddle agree).
Why, per file (``python -c "from tests.real_pairs import pairs_timm; print(pairs_timm.enumerated()[1])"``):
- 48: ``NameError: FrozenBatchNorm2d`` -- ``layers/norm_act.py`` (imported by nearly every model through
  ``create_norm_act``) reads ``torchvision.ops.misc.FrozenBatchNorm2d``, which PaConvert drops;
- 39: a model-file line PaConvert could not convert and marked, nearly all ``nn.BatchNorm2d(c, **dd)`` /
  ``nn.LayerNorm(d, **dd)`` (timm passes ``device``/``dtype`` keyword dicts), the others ``ConvTranspose2d``,
  ``nn.LSTM``, ``torch.jit.annotate``, ``fuse_conv_bn_eval``, ``isinstance(m, torch.nn.Linear)``;
- 7 build and fail in paddle 3.3.1, whose API PaConvert 3.3 writes ahead of: ``BatchNorm2D(device=..)``,
  ``BatchNorm2D(eps=..)``, ``Tensor.mul_(float)``, a module called as a class;
- 2: ``Attention2d`` missing from the converted ``layers`` (its module fails to import); 2 with no builder
  under 30M parameters among those tried.
Before the finishing steps above (hints, the dropped ``try: from torch import f`` fallback, PaConvert's
``**(a or {})`` written as ``**a or {}``, ``F``/``nn`` that came by star import, the lazy ``layers``), every
file failed on ``paddle.nn.MaxPool2d`` (paddle 3.3.1 has ``MaxPool2D``), subclassed at import in
``layers/pool2d_same.py``.
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

from .pairs import Built, RealPair, _random_bn_stats
from .pairs_convert import MARK, by_name_copy, converted_pair, finish_by_hand, prove_built

PACKAGE = "timmpc"
FOLDERS = ("layers", "models", "data")
NEEDS = ("timm", "paconvert")
MAX_PARAMS = 30_000_000
SIZES = (32, 64, 96, 128, 160, 224)
IMPORT_TIMM = re.compile(r"(^|\s)(from|import) timm(\.|\s)", re.M)
SMALL = ("atto", "femto", "pico", "nano", "tiny", "xxs", "xs", "small", "mini", "micro", "s", "18", "26", "050",
         "0_5", "b0", "a1", "t")


def _versions() -> str:
    from importlib.metadata import version

    return f"timm{version('timm')}-paconvert{version('paconvert')}"


def _raw_conversion() -> Path:
    """PaConvert's output for timm's folders (cached per timm / PaConvert version)."""
    import timm

    cache = Path(tempfile.gettempdir()) / f"padiff-timm-paconvert-{_versions()}"
    if (cache / "out" / PACKAGE / "models").is_dir():
        return cache / "out"
    work = Path(tempfile.mkdtemp(prefix="padiff-timm-"))
    src = work / "src" / PACKAGE
    src.mkdir(parents=True)
    root = Path(timm.__file__).parent
    for folder in FOLDERS:
        shutil.copytree(root / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "__init__.py").write_text("")
    for f in src.rglob("*.py"):
        f.write_text(IMPORT_TIMM.sub(rf"\1\2 {PACKAGE}\3", f.read_text()))
    exe = shutil.which("paconvert", path=str(Path(sys.executable).parent)) or "paconvert"
    proc = subprocess.run([exe, "-i", str(work / "src"), "-o", str(work / "out"), "--log_dir", str(work / "log")],
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0 or not (work / "out" / PACKAGE / "models").is_dir():
        raise RuntimeError(f"paconvert failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-500:]}")
    shutil.rmtree(cache, ignore_errors=True)
    shutil.move(str(work), str(cache))
    return cache / "out"


@functools.cache
def converted() -> Path:
    """The finished conversion, importable as ``timmpc`` (each model file imported on its own)."""
    raw = _raw_conversion()
    out = Path(tempfile.mkdtemp(prefix="padiff-timmpc-"))
    shutil.copytree(raw / PACKAGE, out / PACKAGE)
    for f in (out / PACKAGE).rglob("*.py"):
        model_file = f.parent.name == "models" and not f.name.startswith("_")
        f.write_text(star_aliases(finish_by_hand(f.read_text(), strict=model_file)))
    from importlib.metadata import version

    (out / PACKAGE / "__init__.py").write_text(f"__version__ = {version('timm')!r}\n")
    (out / PACKAGE / "models" / "__init__.py").write_text("")
    data = out / PACKAGE / "data"
    (data / "__init__.py").write_text("from .constants import *  # noqa: F403 - the models need only these\n")
    layers = out / PACKAGE / "layers" / "__init__.py"
    layers.write_text(lazy_init(layers.read_text()))
    sys.path.insert(0, str(out))
    return out


def star_aliases(text: str) -> str:
    """Give a file the ``F`` / ``nn`` aliases it used from a star import (``from .activations import *``).

    timm's ``create_act.py`` calls ``F.silu`` with ``F`` imported by ``activations.py``; PaConvert drops that
    import there and does not follow the name into the importing file, so the user imports paddle's module
    under the alias (the functions used that way keep their names in paddle)."""
    star = re.search(r"(?m)^from \.\w+ import \*", text)
    add = []
    if star and re.search(r"(?m)^[^#\n]*\bF\.\w", text) and not re.search(r"(?m)^import .* as F$", text):
        add.append("import paddle.nn.functional as F")
    if star and re.search(r"(?m)^[^#\n]*\bnn\.\w", text) and not re.search(r"(?m)^from \w+ import nn$", text):
        add.append("from paddle import nn")
    return "\n".join([*add, text]) if add else text


def lazy_init(text: str) -> str:
    """A package ``__init__`` re-exporting its modules' names on first use instead of importing them all.

    timm's ``layers/__init__.py`` imports every layer module; one that uses a paddle API this paddle lacks
    (``paddle.nn.MaxPool2d`` in PaConvert 3.3's output) then fails every model, used or not. A user porting
    one model imports what it uses: the same names, each module imported when a name from it is asked for.
    """
    import ast

    table: dict[str, tuple[str, str]] = {}
    stars: list[str] = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for a in node.names:
                if a.name == "*":
                    stars.append(node.module)
                else:
                    table[a.asname or a.name] = (node.module, a.name)
    return ("import importlib\n\n_TABLE = " + repr(table) + "\n_STARS = " + repr(stars) + "\n\n\n"
            "def __getattr__(name):\n"
            "    if name in _TABLE:\n"
            "        mod, attr = _TABLE[name]\n"
            "        return getattr(importlib.import_module('.' + mod, __name__), attr)\n"
            "    for mod in _STARS:\n"
            "        m = importlib.import_module('.' + mod, __name__)\n"
            "        if hasattr(m, name):\n"
            "            return getattr(m, name)\n"
            "    raise AttributeError(name)\n")


def _size_rank(name: str) -> tuple[int, int]:
    parts = re.split(r"[_.]", name)
    ranks = [SMALL.index(p) for p in parts if p in SMALL]
    return (min(ranks) if ranks else len(SMALL), len(name))


def _count(name: str) -> int:
    import timm
    import torch

    with torch.device("meta"):
        m = timm.create_model(name, pretrained=False, num_classes=10)
    return sum(p.numel() for p in m.parameters())


def files() -> dict[str, list[str]]:
    """timm model file -> its registered model names, the ones that sound smallest first."""
    import timm  # noqa: F401 - registers the models
    from timm.models import _registry

    return {mod: sorted(names, key=_size_rank) for mod, names in sorted(_registry._module_to_models.items())}


def smallest(names: list[str], tries: int = 6) -> tuple[int, str]:
    """(parameter count, name) of the smallest of the first ``tries`` names (counted on the meta device)."""
    found = []
    for name in names[:tries]:
        try:
            found.append((_count(name), name))
        except Exception:  # noqa: BLE001 - a builder that cannot build on meta sorts last
            found.append((sys.maxsize, name))
    return min(found)


def _kwargs(builder: str) -> dict[str, Any]:
    """``num_classes=10``, and ``img_size=64`` when the builder accepts it (small inputs, fast)."""
    import timm
    import torch

    for kw in (dict(num_classes=10, img_size=64), dict(num_classes=10)):
        try:
            with torch.device("meta"):
                timm.create_model(builder, pretrained=False, **kw)
            return kw
        except TypeError:
            continue
    return dict(num_classes=10)


def build_converted(file: str, builder: str) -> Built:
    """timm's ``builder`` and the converted file's one, same arguments, BatchNorm statistics randomised."""
    import timm

    converted()
    kw = _kwargs(builder)
    pt = _random_bn_stats(timm.create_model(builder, pretrained=False, **kw))
    mod = importlib.import_module(f"{PACKAGE}.models.{file}")
    return converted_pair(getattr(mod, builder)(pretrained=False, **kw), pt, builder, SIZES)


def prove(file: str, builder: str) -> float:
    """Build, copy by name, compare; the relative max diff, or an exception with the reason."""
    import paddle
    import torch

    paddle.seed(0)
    torch.manual_seed(0)
    return prove_built(*build_converted(file, builder))


def _fault_leaf(module: Any) -> str:
    """A torch leaf in the middle of the model's convolutions and Linears."""
    import torch

    leaves = [n for n, m in module.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    return leaves[len(leaves) // 2]


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.text and exc.text.lstrip().startswith(MARK):
        return (f"PaConvert could not convert {Path(exc.filename or '').name} line {exc.lineno}: "
                f"{exc.text.strip()[len(MARK):].strip()[:160]}")
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__} in {Path(exc.filename or '').name} line {exc.lineno}: {exc.msg}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


@functools.cache
def enumerated() -> tuple[tuple[RealPair, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(registered pairs, (file, reason) for each file left out, every enumerated file)."""
    pairs: list[RealPair] = []
    left: list[tuple[str, str]] = []
    found = files()
    try:
        converted()
    except Exception as exc:  # noqa: BLE001 - no converter: every file is listed with that reason
        return (), tuple((f, _first_line(exc)) for f in found), tuple(found)
    for file, names in found.items():
        try:
            importlib.import_module(f"{PACKAGE}.models.{file}")
        except Exception as exc:  # noqa: BLE001 - listed with its reason
            left.append((file, f"import: {_first_line(exc)}"))
            continue
        n, builder = smallest(names)
        if n > MAX_PARAMS:
            left.append((file, f"smallest builder tried, {builder}, has {n / 1e6:.0f}M parameters (> "
                               f"{MAX_PARAMS / 1e6:.0f}M budget)"))
            continue
        try:
            rel = prove(file, builder)
        except Exception as exc:  # noqa: BLE001 - listed with its reason
            left.append((file, f"{builder}: {_first_line(exc)}"))
            continue
        _, module, _, _ = build_converted(file, builder)
        pairs.append(RealPair(f"timm:{builder}", f"PaConvert / timm (rel diff {rel:.1e})", NEEDS,
                              functools.partial(build_converted, file, builder), by_name_copy, _fault_leaf(module)))
        print(f"converted timm {file}.{builder}: proven, relative diff {rel:.1e}", file=sys.stderr)
    return tuple(pairs), tuple(left), tuple(found)


def timm_pairs() -> list[RealPair]:
    """The registered conversions, or none outside the real-pairs suite."""
    from .pairs_enum import wanted

    return list(enumerated()[0]) if wanted() else []
