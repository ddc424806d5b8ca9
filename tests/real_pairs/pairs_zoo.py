"""More vision families: paddle.vision against torchvision, paddleclas against timm.

Chosen for structure the other pairs do not have:
- ShuffleNet V2 x0.5: channel split, two branches, channel shuffle (reshape/transpose); paddle's
  blocks hang from the root as ``2_1``, ``2_2``..., torchvision's from ``stage2.0``...
- DenseNet-121: every layer's input is the concatenation of all earlier outputs of its block;
  paddle's ``BatchNorm(act="relu")`` applies the ReLU inside the norm layer, torchvision has a
  ``ReLU`` module after each ``BatchNorm2d`` (and an ``F.relu`` after the last).
- ResNet18-vd (paddleclas / timm ``resnet18d``): a three-conv deep stem, shortcuts that average-pool
  before their 1x1 conv; paddleclas's conv/BN/ReLU units against timm's flat blocks.
- ConvNeXt (paddleclas / timm): depthwise 7x7 conv, channels-last LayerNorm and Linear pointwise
  convs between permutes, a raw layer-scale parameter ``gamma`` on each block, a
  channels-first LayerNorm written out by hand on the paddle side.
- PVT v2 (paddleclas / timm): spatial-reduction attention (a strided conv shortens keys and
  values), a fused ``kv`` Linear on both sides, a depthwise conv inside the MLP between reshapes.

Tried and left out, because the two packages' models are not the same computation as built
(the hand copy leaves them apart; padiff rightly fails them): paddle.vision's SqueezeNet 1.1 and
Inception V3 end with ``Dropout(mode="downscale_in_infer")``, which scales eval outputs by
``1 - p`` (and SqueezeNet's pools do not use torchvision's ``ceil_mode``); paddle.vision's
GoogLeNet has no BatchNorm, torchvision's has. ResNeXt-50 and paddle.vision's own MobileNet V3 small
pass (1.00 / 1.00, True, fault named, both orders) but add time, not structure: a ResNet, and the
torch model of the X2Paddle mobilenet_v3_small pair (``_zoo_pair`` builds either).

The paddle.vision and torchvision models define their parameters in the same order under
different names (checked here by shape, proven by the equivalence test), so their hand copy
joins the two as-built state dicts entry by entry; the paddleclas/timm copies name every
entry. As elsewhere in this folder, model attributes are named on purpose: this is the referee.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from .handcopy import Entry, same, transposed
from .pairs import Built, RealPair, _inputs, _random_bn_stats

# --- paddle.vision against torchvision: the same definition order, other names ------------


def _torchvision(name: str, **kw: Any) -> Any:
    import torchvision

    return getattr(torchvision.models, name)(num_classes=10, **kw)


def _build_zoo(name: str, size: int = 32, **kw: Any) -> Any:
    """Both models of ``name`` (``kw`` for torchvision's), the torch one with lively BatchNorms and heads."""
    def build() -> Built:
        import inspect

        import paddle
        import torch

        pt = _random_bn_stats(_torchvision(name, **kw))
        with torch.no_grad():  # torchvision's classifier inits keep the logits near 0
            for m in pt.modules():
                if isinstance(m, torch.nn.Linear):
                    torch.nn.init.normal_(m.weight, std=0.2)
        pd = getattr(paddle.vision.models, name)(num_classes=10)
        key = next(iter(inspect.signature(pd.forward).parameters))  # paddle's is ``inputs`` in some models
        return (pd, pt, *_inputs((2, 3, size, size), key_pd=key))
    return build


_BN_STATS = {"_mean": "running_mean", "_variance": "running_var"}


def _copy_in_order(torch_model: Callable[[], Any]) -> Any:
    """The k-th paddle state entry from the k-th torch one (torch read from ``torch_model()``, as built).

    Linear weights are transposed (paddle ``[in, out]``); every pair of entries must agree on
    its last name part (BatchNorm statistics renamed) and on its shape, or the copy stops.
    """
    @functools.cache
    def torch_entries() -> tuple[tuple[str, tuple[int, ...]], ...]:
        return tuple((k, tuple(v.shape)) for k, v in torch_model().state_dict().items()
                     if not k.endswith("num_batches_tracked"))

    def copy(layer: Any, module: Any) -> list[Entry]:
        pd = [(k, tuple(v.shape)) for k, v in layer.state_dict().items()]
        pt = torch_entries()
        assert len(pd) == len(pt), (len(pd), len(pt))
        linears = {p for p, m in module.named_modules() if type(m).__name__ == "Linear"}
        out = []
        for (pk, ps), (tk, ts) in zip(pd, pt):
            last = pk.rsplit(".", 1)[-1]
            assert _BN_STATS.get(last, last) == tk.rsplit(".", 1)[-1], (pk, tk)
            lin = tk.endswith(".weight") and tk.rsplit(".", 1)[0] in linears
            assert ps == (ts[::-1] if lin else ts), (pk, ps, tk, ts)
            out.append(Entry(pk, (tk,), transposed if lin else same))
        return out
    return copy


def _free_in_order(paddle_model: Callable[[], Any], torch_model: Callable[[], Any],
                   extra: dict[str, str] | None = None) -> Callable[[str], str]:
    """The true torch path of a paddle parameter-free layer, read off the in-order copy's owners.

    ``A.k`` right after the owner ``A.(k-1)`` (a norm, then its activation, in a Sequential) is
    the torch layer right after that owner's partner; ``A.name`` inside a container is the
    same ``name`` inside the container's partner (the container told by an owner ``A.x`` whose
    partner ends in ``.x`` too); ``extra`` names the rest.
    """
    @functools.cache
    def owners() -> dict[str, str]:
        pd = [k for k in paddle_model().state_dict()]
        pt = [k for k, _ in torch_model().state_dict().items() if not k.endswith("num_batches_tracked")]
        return {a.rsplit(".", 1)[0]: b.rsplit(".", 1)[0] for a, b in zip(pd, pt) if "." in a and "." in b}

    def rename(path: str) -> str:
        if extra and path in extra:
            return extra[path]
        own = owners()
        parent, _, last = path.rpartition(".")
        if last.isdigit() and f"{parent}.{int(last) - 1}" in own:
            head, _, idx = own[f"{parent}.{int(last) - 1}"].rpartition(".")
            if idx.isdigit():
                return f"{head}.{int(idx) + 1}"
        for a, b in own.items():
            a_top, _, a_last = a.rpartition(".")
            if a_top == parent and b.endswith("." + a_last):
                return f"{b[: -len(a_last) - 1]}.{last}"
        return path
    return rename


# --- paddleclas against timm ---------------------------------------------------------------

def _ppcls(module: str) -> Any:
    from . import pairs_vision  # noqa: F401 - puts the installed paddleclas folder on sys.path

    return importlib.import_module(f"ppcls.arch.backbone.{module}")


CONVNEXT = dict(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64))


def _random_affine(module: Any, names: tuple[str, ...] = ("gamma",)) -> Any:
    """Random layer scales and norm affine terms (their inits, 1e-6 and ones/zeros, hide the blocks)."""
    import torch

    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for n, p in module.named_parameters():
            if n.rsplit(".", 1)[-1] in names or (p.dim() == 1 and "norm" in n):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5 if not n.endswith("bias")
                        else torch.randn(p.shape, generator=g) * 0.1)
    return module


def _build_convnext() -> Built:
    from timm.models.convnext import ConvNeXt as TimmConvNeXt

    pd = _ppcls("model_zoo.convnext").ConvNeXt(class_num=10, depths=list(CONVNEXT["depths"]),
                                                 dims=list(CONVNEXT["dims"]))
    pt = _random_affine(TimmConvNeXt(num_classes=10, **CONVNEXT))
    return (pd, pt, *_inputs((2, 3, 32, 32)))


def _conv(pd: str, pt: str) -> list[Entry]:
    return [Entry(f"{pd}.weight", (f"{pt}.weight",)), Entry(f"{pd}.bias", (f"{pt}.bias",))]


def _lin(pd: str, pt: str) -> list[Entry]:
    return [Entry(f"{pd}.weight", (f"{pt}.weight",), transposed), Entry(f"{pd}.bias", (f"{pt}.bias",))]


def _copy_convnext(layer: Any, module: Any) -> list[Entry]:
    """paddleclas keeps the downsampling layers in their own list, timm at the head of each stage."""
    out = _conv("downsample_layers.0.0", "stem.0") + _conv("downsample_layers.0.1", "stem.1")
    for i, depth in enumerate(CONVNEXT["depths"]):
        if i:
            out += _conv(f"downsample_layers.{i}.0", f"stages.{i}.downsample.0")
            out += _conv(f"downsample_layers.{i}.1", f"stages.{i}.downsample.1")
        for j in range(depth):
            pd, pt = f"stages.{i}.{j}", f"stages.{i}.blocks.{j}"
            out += [Entry(f"{pd}.gamma", (f"{pt}.gamma",)), *_conv(f"{pd}.dwconv", f"{pt}.conv_dw"),
                    *_conv(f"{pd}.norm", f"{pt}.norm"), *_lin(f"{pd}.pwconv1", f"{pt}.mlp.fc1"),
                    *_lin(f"{pd}.pwconv2", f"{pt}.mlp.fc2")]
    return out + _conv("norm", "head.norm") + _lin("head", "head.fc")


def _timm_resnet18d() -> Any:
    import timm

    return timm.create_model("resnet18d", num_classes=10)


def _build_resnet_vd() -> Built:
    """paddleclas ResNet18-vd against timm's resnet18d (deep stem, average-pool downsampling shortcuts).

    paddleclas gives the first block a 1x1 shortcut conv by default (``use_first_short_conv``),
    timm an identity: the paddle model is built without it, as the two architectures then agree.
    """
    import torch

    _ppcls("base.theseus_layer")  # puts ppcls on the path
    importlib.import_module("ppcls.utils.logger").init_logger()  # paddleclas logs a deprecation at build
    pd = _ppcls("legendary_models.resnet").ResNet18_vd(class_num=10, use_first_short_conv=False)
    pt = _random_bn_stats(_timm_resnet18d())
    with torch.no_grad():
        torch.nn.init.normal_(pt.fc.weight, std=0.2)
    return (pd, pt, *_inputs((2, 3, 32, 32)))


def _resnet_vd_free(path: str) -> str:
    """paddleclas ResNet-vd's parameter-free layers named as timm's resnet18d.

    The stem's ``stem.k.relu`` follows ``conv1.(3k+1)`` (its norm) in timm's stem Sequential,
    the last one is ``act1``; a block's ``conv0.relu`` is ``act1``, its closing ``relu`` is
    ``act2``; the shortcut's ``avg_pool`` is ``downsample.0``.
    """
    import re

    if path in ("max_pool", "avg_pool"):
        return {"max_pool": "maxpool", "avg_pool": "global_pool.pool"}[path]
    m = re.fullmatch(r"stem\.(\d)\.relu", path)
    if m:
        k = int(m.group(1))
        return "act1" if k == 2 else f"conv1.{3 * k + 2}"
    m = re.fullmatch(r"blocks\.(\d+)\.(conv0\.relu|relu|short\.avg_pool)", path)
    if not m:
        return path
    i = int(m.group(1))
    block = f"layer{i // 2 + 1}.{i % 2}"  # two basic blocks per stage in ResNet-18
    return f"{block}." + {"conv0.relu": "act1", "relu": "act2", "short.avg_pool": "downsample.0"}[m.group(2)]


PVT = dict(depths=(1, 1, 1, 1), embed_dims=(8, 16, 32, 64), num_heads=(1, 2, 4, 8), mlp_ratios=(2, 2, 2, 2))


def _build_pvt() -> Built:
    from timm.models.pvt_v2 import PyramidVisionTransformerV2 as TimmPVT

    pd = _ppcls("model_zoo.pvt_v2").PyramidVisionTransformerV2(
        img_size=64, class_num=10, qkv_bias=True, **{k: list(v) for k, v in PVT.items()})
    pt = _random_affine(TimmPVT(num_classes=10, qkv_bias=True, **PVT))
    return (pd, pt, *_inputs((2, 3, 64, 64)))


def _copy_pvt(layer: Any, module: Any) -> list[Entry]:
    """paddleclas names stage i's parts ``patch_embed{i+1}``/``block{i+1}``/``norm{i+1}`` on the root."""
    out: list[Entry] = []
    for i, depth in enumerate(PVT["depths"]):
        embed = f"stages.{i}.downsample" if i else "patch_embed"  # timm's first embedding is on the root
        out += _conv(f"patch_embed{i + 1}.proj", f"{embed}.proj") + _conv(f"patch_embed{i + 1}.norm", f"{embed}.norm")
        for j in range(depth):
            pd, pt = f"block{i + 1}.{j}", f"stages.{i}.blocks.{j}"
            out += _conv(f"{pd}.norm1", f"{pt}.norm1")
            out += _lin(f"{pd}.attn.q", f"{pt}.attn.q") + _lin(f"{pd}.attn.kv", f"{pt}.attn.kv")
            out += _lin(f"{pd}.attn.proj", f"{pt}.attn.proj")
            if i + 1 < len(PVT["depths"]):  # spatial reduction (sr_ratio > 1) in all stages but the last
                out += _conv(f"{pd}.attn.sr", f"{pt}.attn.sr") + _conv(f"{pd}.attn.norm", f"{pt}.attn.norm")
            out += _conv(f"{pd}.norm2", f"{pt}.norm2") + _lin(f"{pd}.mlp.fc1", f"{pt}.mlp.fc1")
            out += _conv(f"{pd}.mlp.dwconv.dwconv", f"{pt}.mlp.dwconv") + _lin(f"{pd}.mlp.fc2", f"{pt}.mlp.fc2")
        out += _conv(f"norm{i + 1}", f"stages.{i}.norm")
    return out + _lin("head", "head")


def _zoo_pair(name: str, fault_leaf: str, extra: dict[str, str] | None = None) -> RealPair:
    torch_model = functools.partial(_torchvision, name)
    return RealPair(name, "paddle.vision / torchvision", ("torchvision",), _build_zoo(name),
                    _copy_in_order(torch_model), fault_leaf,
                    free_rename=_free_in_order(functools.partial(_paddle_vision, name), torch_model, extra))


def _paddle_vision(name: str) -> Any:
    import paddle

    return getattr(paddle.vision.models, name)(num_classes=10)


def _free_stage(path: str) -> str:
    """paddleclas ConvNeXt's / PVT's block activations named as timm's (inside the block's ``mlp``)."""
    import re

    path = re.sub(r"^block(\d)\.(\d+)\.", lambda m: f"stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.", path)
    return re.sub(r"^stages\.(\d)\.(\d+)\.act$", r"stages.\1.blocks.\2.mlp.act", path)


ZOO_PAIRS: list[RealPair] = [
    _zoo_pair("shufflenet_v2_x0_5", "stage3.0.branch1.2", {"_max_pool": "maxpool"}),
    _zoo_pair("densenet121", "features.denseblock2.denselayer3.conv2",
              {"pool2d_max": "features.pool0", **{f"tr_conv{k + 1}_blk.pool2d_avg": f"features.transition{k}.pool"
                                                  for k in (1, 2, 3)}}),
    RealPair("resnet18_vd", "paddleclas / timm", ("timm", "ppcls"), _build_resnet_vd,
             _copy_in_order(_timm_resnet18d), "layer3.0.downsample.1", free_rename=_resnet_vd_free),
    RealPair("convnext", "paddleclas / timm", ("timm", "ppcls"), _build_convnext, _copy_convnext,
             "stages.2.blocks.1.mlp.fc1", free_rename=_free_stage),
    # (the fault goes into attn.proj: scaling attn.sr's output, as before, is undone by the LayerNorm after it,
    # so that fault changed nothing and there was nothing to name)
    RealPair("pvt_v2", "paddleclas / timm", ("timm", "ppcls"), _build_pvt, _copy_pvt, "stages.1.blocks.0.attn.proj",
             free_rename=_free_stage),
]
