"""Vision real pairs: paddleclas against timm (ViT, Swin) and an X2Paddle conversion of torchvision.

Each builder makes both packages' own models from a tiny config with random init (nothing
downloaded). paddleclas is imported by its backbone modules only (``ppcls.arch.backbone...``
from the installed ``paddleclas`` folder): its package ``__init__`` needs OpenCV, which the
models do not. The X2Paddle pair converts the torch model once per process (trace mode, feedback
off) into a temporary folder and imports the generated paddle code. As in ``pairs.py``, model
attributes are named here on purpose: this is the referee, not padiff.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
from typing import Any

from .handcopy import Entry, same, transposed
from .pairs import Built, RealPair, _inputs, _linear, _norm


def _add_ppcls_to_path() -> None:
    """Put the installed paddleclas folder on ``sys.path`` so ``ppcls`` imports without OpenCV.

    ``import paddleclas`` runs its command-line tool's imports (cv2); the backbones need only
    paddle. ``find_spec`` locates the folder without importing the package.
    """
    spec = importlib.util.find_spec("paddleclas")
    if spec is not None and spec.submodule_search_locations:
        root = next(iter(spec.submodule_search_locations))
        if root not in sys.path:
            sys.path.append(root)


_add_ppcls_to_path()


# --- ViT ---------------------------------------------------------------------------------

VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, mlp_ratio=2)


def _build_vit() -> Built:
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    vit = importlib.import_module("ppcls.arch.backbone.model_zoo.vision_transformer")
    pd = vit.VisionTransformer(class_num=10, qkv_bias=True, epsilon=1e-6, **VIT)
    pt = TimmViT(num_classes=10, qkv_bias=True, **VIT)
    return (pd, pt, *_inputs((2, 3, 32, 32)))


def _copy_vit(layer: Any, module: Any) -> list[Entry]:
    out = [Entry("patch_embed.proj.weight", ("patch_embed.proj.weight",)),
           Entry("patch_embed.proj.bias", ("patch_embed.proj.bias",)),
           Entry("pos_embed", ("pos_embed",)), Entry("cls_token", ("cls_token",))]
    for i in range(VIT["depth"]):
        p = f"blocks.{i}"
        out += _norm(f"{p}.norm1", f"{p}.norm1") + _linear(f"{p}.attn.qkv", f"{p}.attn.qkv")
        out += _linear(f"{p}.attn.proj", f"{p}.attn.proj") + _norm(f"{p}.norm2", f"{p}.norm2")
        out += _linear(f"{p}.mlp.fc1", f"{p}.mlp.fc1") + _linear(f"{p}.mlp.fc2", f"{p}.mlp.fc2")
    return out + _norm("norm", "norm") + _linear("head", "head")


def _vit_free(path: str) -> str:
    """paddleclas ViT's parameter-free layers named as timm's (one dropout/drop-path called twice)."""
    return path.replace("mlp.drop", "mlp.drop1").replace("drop_path", "drop_path1")


# --- Swin --------------------------------------------------------------------------------

SWIN = dict(img_size=64, patch_size=4, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=4,
            mlp_ratio=2.0, drop_path_rate=0.0)


def _build_swin() -> Built:
    from timm.models.swin_transformer import SwinTransformer as TimmSwin

    swin = importlib.import_module("ppcls.arch.backbone.legendary_models.swin_transformer")
    kw = {**SWIN, "depths": list(SWIN["depths"]), "num_heads": list(SWIN["num_heads"])}
    pd = swin.SwinTransformer(class_num=10, **kw)
    pt = TimmSwin(num_classes=10, **SWIN)
    return (pd, pt, *_inputs((2, 3, 64, 64)))


def _swin_block(pd: str, pt: str) -> list[Entry]:
    out = _norm(f"{pd}.norm1", f"{pt}.norm1")
    out.append(Entry(f"{pd}.attn.relative_position_bias_table", (f"{pt}.attn.relative_position_bias_table",)))
    out += _linear(f"{pd}.attn.qkv", f"{pt}.attn.qkv") + _linear(f"{pd}.attn.proj", f"{pt}.attn.proj")
    return out + _norm(f"{pd}.norm2", f"{pt}.norm2") + _linear(f"{pd}.mlp.fc1", f"{pt}.mlp.fc1") + \
        _linear(f"{pd}.mlp.fc2", f"{pt}.mlp.fc2")


def _copy_swin(layer: Any, module: Any) -> list[Entry]:
    """Same names except the patch merging: paddleclas ends stage i with it, timm starts stage i+1.

    paddleclas keeps each window attention's relative position index as a persistent buffer,
    timm as a non-persistent one (not in its state dict): it is copied from timm's module.
    """
    out = [Entry("patch_embed.proj.weight", ("patch_embed.proj.weight",)),
           Entry("patch_embed.proj.bias", ("patch_embed.proj.bias",)), *_norm("patch_embed.norm", "patch_embed.norm")]
    mods = dict(module.named_modules())
    for s, depth in enumerate(SWIN["depths"]):
        for b in range(depth):
            p = f"layers.{s}.blocks.{b}"
            out += _swin_block(p, p)
            index = mods[f"{p}.attn"].relative_position_index.detach().cpu().numpy()
            out.append(Entry(f"{p}.attn.relative_position_index", (), functools.partial(lambda a, _xs: a, index)))
        if s + 1 < len(SWIN["depths"]):
            pd, pt = f"layers.{s}.downsample", f"layers.{s + 1}.downsample"
            out += [*_norm(f"{pd}.norm", f"{pt}.norm"),
                    Entry(f"{pd}.reduction.weight", (f"{pt}.reduction.weight",), transposed)]
    return out + _norm("norm", "norm") + _linear("head", "head.fc")


def _swin_free(path: str) -> str:
    """paddleclas Swin's parameter-free layers named as timm's."""
    return path.replace("mlp.drop", "mlp.drop1").replace("drop_path", "drop_path1")


# --- X2Paddle conversions of torchvision models ------------------------------------------

def _torchvision(name: str) -> Any:
    import torchvision

    return getattr(torchvision.models, name)(num_classes=10)


@functools.cache
def _converted_class(name: str) -> Any:
    """The paddle class X2Paddle (trace mode, feedback off) writes for torchvision's ``name``, converted once.

    Both frameworks' random state is put back afterwards, so the pair's models start from its seeds.
    """
    import contextlib
    import io

    import paddle
    import torch
    from x2paddle.convert import pytorch2paddle

    out_dir = tempfile.mkdtemp(prefix="padiff-x2paddle-")
    states = torch.random.get_rng_state(), paddle.get_rng_state()
    try:
        module = _torchvision(name).eval()
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            pytorch2paddle(module, save_dir=out_dir, jit_type="trace", input_examples=[torch.randn(2, 3, 32, 32)],
                           disable_feedback=True)
    finally:
        torch.random.set_rng_state(states[0])
        paddle.set_rng_state(states[1])
    spec = importlib.util.spec_from_file_location(f"padiff_x2paddle_{name}", os.path.join(out_dir, "x2paddle_code.py"))
    assert spec is not None and spec.loader is not None
    code = importlib.util.module_from_spec(spec)
    # the generated source stays until the process ends: paddle's jit.save (the aligner's export)
    # reads the forward's source file again
    atexit.register(shutil.rmtree, out_dir, True)
    spec.loader.exec_module(code)
    classes = [v for v in vars(code).values() if isinstance(v, type) and issubclass(v, paddle.nn.Layer)
               and v.__module__ == code.__name__]
    assert len(classes) == 1, classes
    return classes[0]


def _build_converted(name: str) -> Any:
    def build() -> Built:
        import torch

        from .pairs import _random_bn_stats

        layer, module = _converted_class(name)(), _random_bn_stats(_torchvision(name))
        with torch.no_grad():  # torchvision's classifier init (std 0.01, bias 0) keeps logits near 0
            for m in module.modules():
                if isinstance(m, torch.nn.Linear):
                    torch.nn.init.normal_(m.weight, std=0.1)
        return layer, module, *_inputs((2, 3, 32, 32), key_pd="x0")
    return build


@functools.cache
def _definition_order(name: str, cls_name: str) -> tuple[str, ...]:
    """Paths of torchvision ``name``'s modules of class ``cls_name``, as built (definition order)."""
    return tuple(p for p, m in _torchvision(name).named_modules() if type(m).__name__ == cls_name)


def _copy_converted(name: str) -> Any:
    """X2Paddle's ``conv2d<k>``/``batchnorm<k>`` are torch's k-th Conv2d / BatchNorm2d in call order.

    In these torchvision models definition order is call order, so the k-th is read from a model
    as built (the suite may have reversed the one it scores). Every ``Linear`` ``a.b`` becomes two
    raw root parameters ``a_b_weight``/``a_b_bias``, kept in torch's ``[out, in]`` layout
    (``matmul(..., transpose_y=True)``).
    """
    def copy(layer: Any, module: Any) -> list[Entry]:
        out: list[Entry] = []
        mods = dict(module.named_modules())
        for k, conv in enumerate(_definition_order(name, "Conv2d")):
            out.append(Entry(f"conv2d{k}.weight", (f"{conv}.weight",)))
            if mods[conv].bias is not None:
                out.append(Entry(f"conv2d{k}.bias", (f"{conv}.bias",)))
        for k, bn in enumerate(_definition_order(name, "BatchNorm2d")):
            out += [Entry(f"batchnorm{k}.weight", (f"{bn}.weight",)), Entry(f"batchnorm{k}.bias", (f"{bn}.bias",)),
                    Entry(f"batchnorm{k}._mean", (f"{bn}.running_mean",)),
                    Entry(f"batchnorm{k}._variance", (f"{bn}.running_var",))]
        for lin in _definition_order(name, "Linear"):
            raw = lin.replace(".", "_")
            out += [Entry(f"{raw}_weight", (f"{lin}.weight",), same), Entry(f"{raw}_bias", (f"{lin}.bias",))]
        return out
    return copy


_X2PADDLE_FREE = {"relu": "ReLU", "hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid",
                  "pool2d": "AdaptiveAvgPool2d", "dropout": "Dropout"}


def _free_by_count(name: str) -> Any:
    """X2Paddle's ``<kind><k>`` parameter-free layers as the k-th torch module of that class (none reused)."""
    import re

    def rename(path: str) -> str:
        m = re.fullmatch(r"(.+?)(\d+)", path)
        if not m or m.group(1) not in _X2PADDLE_FREE:
            return path
        order = _definition_order(name, _X2PADDLE_FREE[m.group(1)])
        k = int(m.group(2))
        return order[k] if k < len(order) else path
    return rename


def _x2paddle_free(path: str) -> str:
    """X2Paddle's parameter-free layers, numbered in call order, as torchvision's.

    ``relu0`` is the stem's ReLU; then each basic block calls its one ``relu`` twice, which
    X2Paddle writes as two layers (``relu<2j+1>``, ``relu<2j+2>`` for block j).
    """
    if path == "pool2d0":
        return "maxpool"
    if path == "pool2d1":
        return "avgpool"
    if path == "relu0":
        return "relu"
    if path.startswith("relu"):
        j = (int(path[4:]) - 1) // 2
        return f"layer{j // 2 + 1}.{j % 2}.relu"
    return path


VISION_PAIRS: list[RealPair] = [
    RealPair("vit", "paddleclas / timm", ("timm", "ppcls"), _build_vit, _copy_vit, "blocks.0.attn.proj",
             free_rename=_vit_free, train_mode=True),
    RealPair("swin", "paddleclas / timm", ("timm", "ppcls"), _build_swin, _copy_swin,
             "layers.1.downsample.reduction", free_rename=_swin_free, train_mode=True),
    RealPair("x2paddle resnet18", "X2Paddle / torchvision", ("torchvision", "x2paddle"),
             _build_converted("resnet18"), _copy_converted("resnet18"), "layer2.0.conv1",
             free_rename=_x2paddle_free),
    RealPair("x2paddle mobilenet_v3_small", "X2Paddle / torchvision", ("torchvision", "x2paddle"),
             _build_converted("mobilenet_v3_small"), _copy_converted("mobilenet_v3_small"), "features.4.block.0.0",
             free_rename=_free_by_count("mobilenet_v3_small")),
]
