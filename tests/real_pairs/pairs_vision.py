"""Vision real pairs: paddleclas against timm (ViT, Swin) and an X2Paddle conversion of torchvision.

Each builder makes both packages' own models from a tiny config with random init (nothing
downloaded). paddleclas is imported by its backbone modules only (``ppcls.arch.backbone...``
from the installed ``paddleclas`` folder): its package ``__init__`` needs OpenCV, which the
models do not. The X2Paddle pair converts the torch model once per process (trace mode, feedback
off) into a temporary folder and imports the generated paddle code. As in ``pairs.py``, model
attributes are named here on purpose: this is the referee, not padiff.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
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


# --- X2Paddle conversion of torchvision resnet18 -----------------------------------------

def _x2paddle_resnet18_torch() -> Any:
    import torchvision

    return torchvision.models.resnet18(num_classes=10)


@functools.cache
def _x2paddle_resnet18_class() -> Any:
    """The paddle class X2Paddle (trace mode) writes for torchvision's resnet18, converted once."""
    import contextlib
    import io

    import paddle
    import torch
    from x2paddle.convert import pytorch2paddle

    out_dir = tempfile.mkdtemp(prefix="padiff-x2paddle-")
    states = torch.random.get_rng_state(), paddle.get_rng_state()  # the pair's models start from its seeds
    try:
        module = _x2paddle_resnet18_torch().eval()
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            pytorch2paddle(module, save_dir=out_dir, jit_type="trace", input_examples=[torch.randn(2, 3, 32, 32)],
                           disable_feedback=True)
    finally:
        torch.random.set_rng_state(states[0])
        paddle.set_rng_state(states[1])
    spec = importlib.util.spec_from_file_location("padiff_x2paddle_resnet18", os.path.join(out_dir, "x2paddle_code.py"))
    assert spec is not None and spec.loader is not None
    code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(code)
    return code.ResNet


def _build_x2paddle_resnet18() -> Built:
    cls = _x2paddle_resnet18_class()
    return (cls(), _x2paddle_resnet18_torch(), *_inputs((2, 3, 32, 32), key_pd="x0"))


def _resnet18_torch_order() -> list[tuple[str, str]]:
    """(conv, its BatchNorm) of torchvision's resnet18 in the order X2Paddle numbers them."""
    out = [("conv1", "bn1")]
    for s in range(1, 5):
        for b in range(2):
            p = f"layer{s}.{b}"
            out += [(f"{p}.conv1", f"{p}.bn1"), (f"{p}.conv2", f"{p}.bn2")]
            if s > 1 and b == 0:
                out.append((f"{p}.downsample.0", f"{p}.downsample.1"))
    return out


def _copy_x2paddle_resnet18(layer: Any, module: Any) -> list[Entry]:
    """``conv2d<k>``/``batchnorm<k>`` are torch's k-th conv and BN; the head is two raw root parameters.

    X2Paddle keeps torch's ``[out, in]`` layout for the head (``matmul(..., transpose_y=True)``).
    """
    out: list[Entry] = []
    for k, (conv, bn) in enumerate(_resnet18_torch_order()):
        out.append(Entry(f"conv2d{k}.weight", (f"{conv}.weight",)))
        out += [Entry(f"batchnorm{k}.weight", (f"{bn}.weight",)), Entry(f"batchnorm{k}.bias", (f"{bn}.bias",)),
                Entry(f"batchnorm{k}._mean", (f"{bn}.running_mean",)),
                Entry(f"batchnorm{k}._variance", (f"{bn}.running_var",))]
    return [*out, Entry("fc_weight", ("fc.weight",), same), Entry("fc_bias", ("fc.bias",))]


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


def _random_stats(build: Any) -> Any:
    """``build`` with random BatchNorm statistics on the torch side (a fresh BN's eval output is too tame)."""
    from .pairs import _random_bn_stats

    def wrapped() -> Built:
        layer, module, p_inp, t_inp = build()
        return layer, _random_bn_stats(module), p_inp, t_inp
    return wrapped


VISION_PAIRS: list[RealPair] = [
    RealPair("vit", "paddleclas / timm", ("timm", "ppcls"), _build_vit, _copy_vit, "blocks.0.attn.proj",
             free_rename=_vit_free, train_mode=True),
    RealPair("swin", "paddleclas / timm", ("timm", "ppcls"), _build_swin, _copy_swin,
             "layers.1.downsample.reduction", free_rename=_swin_free, train_mode=True),
    RealPair("x2paddle resnet18", "X2Paddle / torchvision", ("torchvision", "x2paddle"),
             _random_stats(_build_x2paddle_resnet18), _copy_x2paddle_resnet18, "layer2.0.conv1",
             free_rename=_x2paddle_free),
]
