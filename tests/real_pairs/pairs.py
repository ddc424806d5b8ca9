"""The real pairs: each builds two packages' own models from a tiny config, random init.

A pair names what it needs (``requires``; a test skips when a package is absent), how
to build both models and their inputs, the hand copy (``copy``: explicit names and
layouts, written for that pair), which torch leaf a planted fault goes into, and the
true pairing of parameter-free layers. Model attributes are named here on purpose: this
is the referee, not padiff.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .handcopy import Entry, rows, same, transposed

Built = tuple[Any, Any, dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class RealPair:
    """One real pair: how to build it, copy it by hand, and where to plant a fault."""

    name: str
    family: str
    requires: tuple[str, ...]
    build: Callable[[], Built]
    copy: Callable[[Any, Any], list[Entry]]
    fault_leaf: str  # torch path of the leaf whose output the planted fault scales
    free_rename: Callable[[str], str] = field(default=lambda p: p)  # paddle path -> its true torch path
    train_mode: bool = False  # models compared in train mode (dropout 0) instead of eval
    # torch paths of pairs whose outputs the two packages define differently (their APIs, not the
    # port): scored again with those pairs marked ``compare_output: false``, as a user edits the proposal
    weights_only: tuple[str, ...] = ()


def _inputs(shape: tuple[int, ...], seed: int = 0, key_pd: str = "x", key_pt: str = "x",
            integers: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    import paddle
    import torch

    rng = np.random.default_rng(seed)
    if integers:
        a = rng.integers(0, integers, size=shape).astype("int64")
    else:
        a = rng.standard_normal(shape).astype("float32")
    return {key_pd: paddle.to_tensor(a)}, {key_pt: torch.from_numpy(a.copy())}


def _linear(pd: str, pt: str) -> list[Entry]:
    return [Entry(f"{pd}.weight", (f"{pt}.weight",), transposed), Entry(f"{pd}.bias", (f"{pt}.bias",))]


def _norm(pd: str, pt: str, bias: bool = True) -> list[Entry]:
    weight = Entry(f"{pd}.weight", (f"{pt}.weight",))
    return [weight, Entry(f"{pd}.bias", (f"{pt}.bias",))] if bias else [weight]


def _mha(pd: str, pt: str, d: int) -> list[Entry]:
    """paddle q/k/v/out_proj Linears from torch's fused ``in_proj`` (rows q, k, v) and ``out_proj``."""
    out: list[Entry] = []
    for i, name in enumerate(("q", "k", "v")):
        out.append(Entry(f"{pd}.{name}_proj.weight", (f"{pt}.in_proj_weight",), rows(i * d, (i + 1) * d, True)))
        out.append(Entry(f"{pd}.{name}_proj.bias", (f"{pt}.in_proj_bias",), rows(i * d, (i + 1) * d)))
    return out + _linear(f"{pd}.out_proj", f"{pt}.out_proj")


def _bn(pd: str, pt: str) -> list[Entry]:
    return [*_norm(pd, pt), Entry(f"{pd}._mean", (f"{pt}.running_mean",)),
            Entry(f"{pd}._variance", (f"{pt}.running_var",))]


# --- paddle.nn against torch.nn built-ins ------------------------------------------------

def _build_lstm() -> Built:
    import paddle
    import torch

    class PdLSTM(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = paddle.nn.LSTM(8, 16, num_layers=2)
            self.head = paddle.nn.Linear(16, 4)

        def forward(self, x: Any) -> Any:
            return self.head(self.rnn(x)[0])

    class PtLSTM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.LSTM(8, 16, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(16, 4)

        def forward(self, x: Any) -> Any:
            return self.head(self.rnn(x)[0])

    return (PdLSTM(), PtLSTM(), *_inputs((2, 5, 8)))


def _copy_lstm(layer: Any, module: Any) -> list[Entry]:
    out = [Entry(f"rnn.{k}_l{i}", (f"rnn.{k}_l{i}",))
           for i in range(2) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    return out + _linear("head", "head")


def _build_mha() -> Built:
    import paddle
    import torch

    class PdAttn(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.proj_in = paddle.nn.Linear(8, 32)
            self.attn = paddle.nn.MultiHeadAttention(32, 4)
            self.head = paddle.nn.Linear(32, 4)

        def forward(self, x: Any) -> Any:
            h = self.proj_in(x)
            return self.head(self.attn(h, h, h))

    class PtAttn(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj_in = torch.nn.Linear(8, 32)
            self.attn = torch.nn.MultiheadAttention(32, 4, batch_first=True)
            self.head = torch.nn.Linear(32, 4)

        def forward(self, x: Any) -> Any:
            h = self.proj_in(x)
            return self.head(self.attn(h, h, h, need_weights=False)[0])

    return (PdAttn(), PtAttn(), *_inputs((2, 6, 8)))


def _copy_mha(layer: Any, module: Any) -> list[Entry]:
    return _linear("proj_in", "proj_in") + _mha("attn", "attn", 32) + _linear("head", "head")


def _build_encoder() -> Built:
    import paddle
    import torch

    pd = paddle.nn.TransformerEncoder(
        paddle.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu"), 2)
    pt = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", batch_first=True), 2,
        enable_nested_tensor=False)
    return (pd, pt, *_inputs((2, 6, 32), key_pd="src", key_pt="src"))


def _copy_encoder(layer: Any, module: Any) -> list[Entry]:
    out: list[Entry] = []
    for i in range(2):
        p = f"layers.{i}"
        out += _mha(f"{p}.self_attn", f"{p}.self_attn", 32) + _linear(f"{p}.linear1", f"{p}.linear1")
        out += _linear(f"{p}.linear2", f"{p}.linear2") + _norm(f"{p}.norm1", f"{p}.norm1")
        out += _norm(f"{p}.norm2", f"{p}.norm2")
    return out


# --- paddle.vision against torchvision ---------------------------------------------------

def _build_resnet18() -> Built:
    import paddle
    import torchvision

    return (paddle.vision.models.resnet18(num_classes=10), torchvision.models.resnet18(num_classes=10),
            *_inputs((2, 3, 32, 32)))


def _copy_vision(layer: Any, module: Any) -> list[Entry]:
    """paddle.vision and torchvision name their layers alike: the same path, BN stats renamed."""
    import torch

    out: list[Entry] = []
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            out += _bn(name, name)
        elif isinstance(m, torch.nn.Linear):
            out += _linear(name, name)
        elif isinstance(m, torch.nn.Conv2d):
            out.append(Entry(f"{name}.weight", (f"{name}.weight",), same))
            if m.bias is not None:
                out.append(Entry(f"{name}.bias", (f"{name}.bias",), same))
    return out


def _random_bn_stats(module: Any) -> Any:
    """Give every torch BatchNorm random statistics and affine terms (copied to paddle by the hand copy).

    At their init (mean 0, variance 1, weight 1, bias 0) a deep net's eval-mode output can vanish
    (mobilenet_v2's is ~1e-16), which makes any equivalence and any planted fault invisible.
    """
    import torch

    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return module


def _build_mobilenet_v2() -> Built:
    import paddle
    import torch
    import torchvision

    pt = _random_bn_stats(torchvision.models.mobilenet_v2(num_classes=10))
    with torch.no_grad():  # torchvision's classifier init (std 0.01, bias 0) keeps logits near 0
        torch.nn.init.normal_(pt.classifier[1].weight, std=0.2)
    return (paddle.vision.models.mobilenet_v2(num_classes=10), pt, *_inputs((2, 3, 32, 32)))


# --- paddleformers against transformers --------------------------------------------------

def _import_transformers_first() -> None:
    """transformers' torch models must be imported before paddleformers (which then hides torch from it).

    paddlecodec installs a ``torchcodec`` package without torchcodec's metadata, on which
    transformers' audio utilities fail at import; no audio is used here.
    """
    import transformers.utils as tu
    import transformers.utils.import_utils as iu

    iu.is_torchcodec_available = tu.is_torchcodec_available = lambda: False
    import transformers.models.llama.modeling_llama  # noqa: F401


def _build_llama() -> Built:
    _import_transformers_first()
    import paddle
    import torch
    from paddleformers.transformers.llama import LlamaConfig as PdLlamaConfig
    from paddleformers.transformers.llama import LlamaModel as PdLlamaModel
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaModel

    kw = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=64, max_position_embeddings=64)

    class PdTop(paddle.nn.Layer):  # the hidden states, not the model-output record
        def __init__(self) -> None:
            super().__init__()
            self.m = PdLlamaModel(PdLlamaConfig(fuse_rms_norm=False, **kw))  # the fused kernel needs a GPU

        def forward(self, input_ids: Any) -> Any:
            return self.m(input_ids=input_ids, use_cache=False)[0]

    class PtTop(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = LlamaModel(LlamaConfig(**kw))

        def forward(self, input_ids: Any) -> Any:
            return self.m(input_ids=input_ids, use_cache=False)[0]

    return (PdTop(), PtTop(), *_inputs((2, 8), key_pd="input_ids", key_pt="input_ids", integers=100))


def _copy_llama(layer: Any, module: Any) -> list[Entry]:
    out = [Entry("m.embed_tokens.weight", ("m.embed_tokens.weight",)), Entry("m.norm.weight", ("m.norm.weight",))]
    for i in range(2):
        p = f"m.layers.{i}"
        for lin in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
            out.append(Entry(f"{p}.{lin}.weight", (f"{p}.{lin}.weight",), transposed))
        out += [Entry(f"{p}.{n}.weight", (f"{p}.{n}.weight",)) for n in ("input_layernorm", "post_attention_layernorm")]
    return out


PAIRS: list[RealPair] = [
    RealPair("nn.LSTM", "paddle.nn / torch.nn", (), _build_lstm, _copy_lstm, "head", train_mode=True),
    RealPair("nn.MultiHeadAttention", "paddle.nn / torch.nn", (), _build_mha, _copy_mha, "attn", train_mode=True),
    RealPair("nn.TransformerEncoder", "paddle.nn / torch.nn", (), _build_encoder, _copy_encoder,
             "layers.0.linear1", train_mode=True),
    RealPair("resnet18", "paddle.vision / torchvision", ("torchvision",), _build_resnet18, _copy_vision,
             "layer2.0.conv1"),
    RealPair("mobilenet_v2", "paddle.vision / torchvision", ("torchvision",), _build_mobilenet_v2, _copy_vision,
             "features.5.conv.2"),
    RealPair("llama", "paddleformers / transformers", ("transformers", "paddleformers"), _build_llama, _copy_llama,
             "m.layers.0.mlp.up_proj", train_mode=True),
]

from .pairs_vision import VISION_PAIRS  # noqa: E402  - the vision pairs' builders live in their own file

PAIRS += VISION_PAIRS


def by_name(name: str) -> RealPair:
    """The pair called ``name``."""
    for p in PAIRS:
        if p.name == name:
            return p
    raise KeyError(name)


from .pairs_fused import FUSED_PAIRS  # noqa: E402 - fused/split pairs, in their own file

PAIRS += FUSED_PAIRS

from .pairs_zoo import ZOO_PAIRS  # noqa: E402 - more vision families, in their own file

PAIRS += ZOO_PAIRS

from .pairs_nlp import NLP_PAIRS  # noqa: E402 - more paddleformers / transformers decoders, in their own file

PAIRS += NLP_PAIRS


def all_pairs() -> list[RealPair]:
    """The hand-written pairs and, when the real-pairs suite asked for them (``pairs_enum.wanted``), the
    enumerated ones: every paddleformers / transformers architecture and PaConvert conversion proven equivalent."""
    from .pairs_convert import convert_pairs
    from .pairs_enum import enum_pairs
    from .pairs_timm import timm_pairs

    return PAIRS + enum_pairs() + convert_pairs() + timm_pairs()


def new_pairs() -> list[RealPair]:
    """The enumerated pairs only, for scoring what the hand-written 23 do not cover."""
    return [p for p in all_pairs() if p not in PAIRS]
