"""Real pairs where one side fuses what the other splits (README "The structural aligner").

- ERNIE 4.5: paddleformers ``ernie4_5`` (fused ``qkv_proj``, fused ``up_gate_proj``) against
  transformers' Ernie 4.5 (``q_proj``/``k_proj``/``v_proj``, ``gate_proj``/``up_proj``).
- Qwen2: paddleformers ``qwen2`` (the same fusing, with q/k/v biases) against transformers' Qwen2.
- Qwen2-MoE: paddleformers ``qwen2_moe`` (a ``LayerList`` of expert MLPs, each with a fused
  ``up_gate_proj``) against transformers' Qwen2-MoE, whose experts are two 3-D tensors
  ``gate_up_proj [E, 2 * I, H]`` and ``down_proj [E, H, I]`` (torch Linear layout per expert) and
  whose router is a raw ``weight [E, H]``: the expert-stacked case, stacked on the torch side.
  (No paddle GPT-2 is in the installed packages: paddleformers has none, nor have paddleclas or
  x2paddle, so GPT-2's ``Conv1D`` is covered by the synthetic pairs only.)

What the fused weights are, read from paddleformers' forward (not from its conversion table,
whose ``fused_qkv, num_heads, num_key_value_groups`` only names the layout): ``qkv_proj``'s output
is reshaped to ``[B, S, kv_heads, (groups + 2) * head_dim]`` and split on the last axis into
``groups * head_dim`` query, ``head_dim`` key and ``head_dim`` value columns. So the fused weight
is **interleaved per KV group** ``[q_g0, k_g0, v_g0, q_g1, k_g1, v_g1, ...]`` (``groups = heads //
kv_heads`` query heads per group), not ``[q | k | v]``. ``up_gate_proj``'s output is chunked in two:
a plain ``[gate | up]`` concatenation.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from typing import Any

import numpy as np

from .handcopy import Entry, transposed
from .pairs import Built, RealPair, _import_transformers_first, _inputs

LAYERS, HEADS, KV_HEADS, HEAD_DIM, HIDDEN, INTER, VOCAB = 2, 4, 2, 8, 32, 48, 100


def grouped_qkv(groups: int, transpose: bool) -> Any:
    """torch q, k, v tensors into paddle's fused one, interleaved per KV group ``[q_g, k_g, v_g]...``.

    ``transpose``: Linear weights (torch ``[out, in]`` -> paddle ``[in, out]``); else biases.
    The output axis (last in paddle's layout) is cut into ``groups`` blocks per tensor.
    """

    def conv(xs: Sequence[np.ndarray]) -> np.ndarray:
        parts = [x.T if transpose else x for x in xs]
        lead = parts[0].shape[:-1]
        blocks = [p.reshape(*lead, groups, p.shape[-1] // groups) for p in parts]
        return np.concatenate(blocks, axis=-1).reshape(*lead, -1)

    return conv


def concat_t(xs: Sequence[np.ndarray]) -> np.ndarray:
    """torch gate and up Linear weights into paddle's ``[in, gate | up]``."""
    return np.concatenate([x.T for x in xs], axis=-1)


def _decoder_pair(pd_cls: Any, pd_config: Any, pt_cls: Any, pt_config: Any) -> Built:
    import paddle
    import torch

    class PdTop(paddle.nn.Layer):  # the hidden states, not the model-output record
        def __init__(self) -> None:
            super().__init__()
            self.m = pd_cls(pd_config)

        def forward(self, input_ids: Any) -> Any:
            return self.m(input_ids=input_ids, use_cache=False)[0]

    class PtTop(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = pt_cls(pt_config)

        def forward(self, input_ids: Any) -> Any:
            return self.m(input_ids=input_ids, use_cache=False)[0]

    return (PdTop(), PtTop(), *_inputs((2, 8), key_pd="input_ids", key_pt="input_ids", integers=VOCAB))


def _kw() -> dict[str, Any]:
    return dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, intermediate_size=INTER,
                max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0)  # the packages' defaults differ


def _build_ernie() -> Built:
    _import_transformers_first()
    import transformers.models.ernie4_5.modeling_ernie4_5 as hf
    from paddleformers.transformers.ernie4_5 import Ernie4_5Config as PdConfig
    from paddleformers.transformers.ernie4_5 import Ernie4_5Model as PdModel
    from transformers import Ernie4_5Config

    # the fused RMSNorm kernel needs a GPU; the tiny vocab needs no tied head
    return _decoder_pair(PdModel, PdConfig(fuse_rms_norm=False, **_kw()), hf.Ernie4_5Model, Ernie4_5Config(**_kw()))


def _stub_paddlefleet() -> None:
    """paddleformers' qwen2 imports ``paddlefleet`` (a distributed-training package) for its model
    provider only; stub modules answering every name let the model itself import. Test code, not padiff."""
    import importlib.abc
    import importlib.machinery
    import importlib.util

    if "paddlefleet" in sys.modules or importlib.util.find_spec("paddlefleet") is not None:
        return

    class _Anything(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return _Anything(f"{self.__name__}.{name}")

        def __call__(self, *a: Any, **k: Any) -> Any:
            return self

        def __mro_entries__(self, bases: tuple) -> tuple:
            return ()  # a stub base class drops out of the class it is a base of

        def __or__(self, other: Any) -> Any:  # a stub type in an annotation union (``X | None``)
            return Any

        __ror__ = __or__

    class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
            if name == "paddlefleet" or name.startswith("paddlefleet."):
                spec = importlib.machinery.ModuleSpec(name, self, origin="<stub>", is_package=True)
                spec.has_location = True  # paddleformers asks for an installed package, not just a module
                return spec
            return None

        def create_module(self, spec: Any) -> Any:
            return _Anything(spec.name)

        def exec_module(self, module: Any) -> None:
            module.__path__ = []

    sys.meta_path.append(_Finder())


def _build_qwen2() -> Built:
    _import_transformers_first()
    import transformers.models.qwen2.modeling_qwen2 as hf
    from transformers import Qwen2Config

    _stub_paddlefleet()
    from paddleformers.transformers.qwen2 import Qwen2Config as PdConfig
    from paddleformers.transformers.qwen2 import Qwen2Model as PdModel

    return _decoder_pair(PdModel, PdConfig(fuse_rms_norm=False, **_kw()), hf.Qwen2Model, Qwen2Config(**_kw()))


MOE = dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=12, shared_expert_intermediate_size=24,
           decoder_sparse_step=1, norm_topk_prob=True)


def _build_qwen2_moe() -> Built:
    _import_transformers_first()
    import transformers.models.qwen2_moe.modeling_qwen2_moe as hf
    from transformers import Qwen2MoeConfig

    _stub_paddlefleet()
    from paddleformers.transformers.qwen2_moe import Qwen2MoeConfig as PdConfig
    from paddleformers.transformers.qwen2_moe import Qwen2MoeModel as PdModel

    kw = {**_kw(), **MOE}
    return _decoder_pair(PdModel, PdConfig(fuse_rms_norm=False, **kw), hf.Qwen2MoeModel, Qwen2MoeConfig(**kw))


def unstack(e: int, transpose: bool = True) -> Any:
    """Expert ``e`` of a torch 3-D expert tensor ``[E, out, in]`` as paddle's Linear weight ``[in, out]``."""

    def conv(xs: Sequence[np.ndarray]) -> np.ndarray:
        return xs[0][e].T if transpose else xs[0][e]

    return conv


def _copy_qwen2_moe(layer: Any, module: Any) -> list[Entry]:
    out = _copy_decoder(layer, module, qkv_bias=True, mlp=False)
    for i in range(LAYERS):
        m = f"m.layers.{i}.mlp"
        out.append(Entry(f"{m}.gate.weight", (f"{m}.gate.weight",), transposed))  # router [E, H] -> [H, E]
        for e in range(MOE["num_experts"]):
            out.append(Entry(f"{m}.experts.{e}.up_gate_proj.weight", (f"{m}.experts.gate_up_proj",), unstack(e)))
            out.append(Entry(f"{m}.experts.{e}.down_proj.weight", (f"{m}.experts.down_proj",), unstack(e)))
        s = f"{m}.shared_expert"
        out.append(Entry(f"{s}.up_gate_proj.weight", (f"{s}.gate_proj.weight", f"{s}.up_proj.weight"), concat_t))
        out.append(Entry(f"{s}.down_proj.weight", (f"{s}.down_proj.weight",), transposed))
        out.append(Entry(f"{m}.shared_expert_gate.weight", (f"{m}.shared_expert_gate.weight",), transposed))
    return out


def _copy_decoder(layer: Any, module: Any, qkv_bias: bool, mlp: bool = True) -> list[Entry]:
    groups = KV_HEADS  # the fused output is cut per KV head
    out = [Entry("m.embed_tokens.weight", ("m.embed_tokens.weight",)), Entry("m.norm.weight", ("m.norm.weight",))]
    for i in range(LAYERS):
        p = f"m.layers.{i}"
        a = f"{p}.self_attn"
        qkv = tuple(f"{a}.{n}_proj" for n in "qkv")
        out.append(Entry(f"{a}.qkv_proj.weight", tuple(f"{x}.weight" for x in qkv), grouped_qkv(groups, True)))
        if qkv_bias:
            out.append(Entry(f"{a}.qkv_proj.bias", tuple(f"{x}.bias" for x in qkv), grouped_qkv(groups, False)))
        out.append(Entry(f"{a}.o_proj.weight", (f"{a}.o_proj.weight",), transposed))
        if mlp:
            out.append(Entry(f"{p}.mlp.up_gate_proj.weight",
                             (f"{p}.mlp.gate_proj.weight", f"{p}.mlp.up_proj.weight"), concat_t))
            out.append(Entry(f"{p}.mlp.down_proj.weight", (f"{p}.mlp.down_proj.weight",), transposed))
        out += [Entry(f"{p}.{n}.weight", (f"{p}.{n}.weight",)) for n in ("input_layernorm", "post_attention_layernorm")]
    return out


def _copy_ernie(layer: Any, module: Any) -> list[Entry]:
    return _copy_decoder(layer, module, qkv_bias=False)


def _copy_qwen2(layer: Any, module: Any) -> list[Entry]:
    return _copy_decoder(layer, module, qkv_bias=True)


FUSED_PAIRS: list[RealPair] = [
    RealPair("ernie4_5", "paddleformers / transformers (fused qkv, up_gate)", ("transformers", "paddleformers"),
             _build_ernie, _copy_ernie, "m.layers.0.self_attn.k_proj", train_mode=True),
    RealPair("qwen2", "paddleformers / transformers (fused qkv with bias, up_gate)", ("transformers", "paddleformers"),
             _build_qwen2, _copy_qwen2, "m.layers.1.self_attn.k_proj", train_mode=True),
    RealPair("qwen2_moe", "paddleformers / transformers (expert list vs 3-D expert tensors)",
             ("transformers", "paddleformers"), _build_qwen2_moe, _copy_qwen2_moe, "m.layers.1.mlp.experts",
             train_mode=True),
]
