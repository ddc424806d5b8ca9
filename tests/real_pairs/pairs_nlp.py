"""More paddleformers / transformers decoders, each differing in structure from Llama/Qwen2/ERNIE 4.5.

- Qwen3: the Qwen2 fusing (grouped ``qkv_proj``, ``up_gate_proj``, no q/k/v bias) plus per-head
  ``q_norm``/``k_norm`` RMSNorms applied between the projection and the rotary embedding.
- Gemma 3 (text): the same fusing, q/k norms, four RMSNorms per block (a "sandwich" round both the
  attention and the MLP, Gemma's ``(1 + w)`` scale), a scaled word embedding, a tanh-GELU MLP, and
  sliding-window layers next to full-attention ones.
- Phi-3: fused on **both** sides (transformers' Phi-3 has ``qkv_proj`` and ``gate_up_proj`` too), in
  the same ``[q | k | v]`` / ``[gate | up]`` layout: a one-to-one pair with a transposed weight,
  which the aligner must not split.
- GPT-OSS: attention sinks (a raw per-head parameter on the attention layer), q/k/v/o biases, a
  router that is a raw ``weight [E, H]`` + ``bias`` used through ``F.linear``, and experts that are
  raw 3-D tensors on both sides (``gate_up_proj [E, H, 2I]`` interleaved gate/up, ``down_proj
  [E, I, H]`` with per-expert biases), in the same layout: parameter-level pairs, nothing transposed.
  The two routers return different things: paddleformers ``(scores [T, E], indices)`` with the
  top-k weights scattered into a dense table, transformers ``(logits [T, E], top-k weights [T, k],
  indices)``. Only the indices are the same quantity, so the router pairs are ``weights_only``.

- DeepSeek-V3: multi-head latent attention (``q_a_proj`` -> ``q_a_layernorm`` -> ``q_b_proj``, a joint
  ``kv_a_proj_with_mqa`` cut into latent and rope parts, ``kv_b_proj``), a dense first layer, then an
  MoE layer with group-limited routing and a score-correction bias: paddle's experts are a list of
  gate/up/down Linears, transformers' two 3-D tensors (``gate_up_proj [E, 2I, H]`` = ``[gate | up]``
  rows, ``down_proj [E, H, I]``); shared experts are plain MLPs on both sides. paddleformers' MLA
  reads a YaRN ``factor`` whenever ``rope_parameters`` is set and ropes with ``head_dim``, so both
  sides get YaRN with factor 1 and ``head_dim = qk_rope_head_dim``; its import needs ``paddlefleet_ops``
  (stubbed, every probe answering False).

(No BERT, GPT-2 or T5 ships in the installed paddleformers.)
"""

from __future__ import annotations

from typing import Any

from .handcopy import Entry, transposed
from .pairs import Built, RealPair, _import_transformers_first
from .pairs_fused import LAYERS, _decoder_pair, _kw, _stub_paddlefleet, concat_t, grouped_qkv

NEEDS = ("transformers", "paddleformers")


def _build(pd_mod: str, pd_cfg: str, pd_model: str, hf_mod: str, hf_cfg: str, hf_model: str,
           **extra: Any) -> Built:
    import importlib

    _import_transformers_first()
    _stub_paddlefleet()
    import transformers

    pm = importlib.import_module(f"paddleformers.transformers.{pd_mod}")
    hm = importlib.import_module(f"transformers.models.{hf_mod}.modeling_{hf_mod}")
    kw = {**_kw(), **extra}
    # the fused RMSNorm kernel needs a GPU
    return _decoder_pair(getattr(pm, pd_model), getattr(pm, pd_cfg)(fuse_rms_norm=False, **kw),
                         getattr(hm, hf_model), getattr(transformers, hf_cfg)(**kw))


def _build_qwen3() -> Built:
    return _build("qwen3", "Qwen3Config", "Qwen3Model", "qwen3", "Qwen3Config", "Qwen3Model")


GEMMA = dict(sliding_window=4, layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=8,
             hidden_activation="gelu_pytorch_tanh")


def _build_gemma3() -> Built:
    return _build("gemma3_text", "Gemma3TextConfig", "Gemma3TextModel", "gemma3", "Gemma3TextConfig",
                  "Gemma3TextModel", **GEMMA)


def _build_phi3() -> Built:
    # transformers' Phi-3 pads with token 32000 by default, outside the tiny vocabulary
    return _build("phi3", "Phi3Config", "Phi3Model", "phi3", "Phi3Config", "Phi3Model",
                  pad_token_id=0, bos_token_id=1, eos_token_id=2)


# the default rope: with GPT-OSS's YaRN defaults the two packages' tables differ (2.6e-3 at this size);
# train mode: paddleformers' eval-mode expert path weighs experts with ``routing_weights.transpose([0, 1])``
# (a no-op), so only its training loop computes what transformers' does (1.05 apart in eval)
OSS = dict(num_local_experts=4, num_experts_per_tok=2, sliding_window=4,
           layer_types=["sliding_attention", "full_attention"],
           rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, rope_scaling=None)


def _build_gpt_oss() -> Built:
    return _build("gpt_oss", "GptOssConfig", "GptOssModel", "gpt_oss", "GptOssConfig", "GptOssModel", **OSS)


def _fused_attn_mlp(p: str, norms: tuple[str, ...]) -> list[Entry]:
    from .pairs_fused import KV_HEADS

    a = f"{p}.self_attn"
    out = [Entry(f"{a}.qkv_proj.weight", tuple(f"{a}.{n}_proj.weight" for n in "qkv"), grouped_qkv(KV_HEADS, True)),
           Entry(f"{a}.o_proj.weight", (f"{a}.o_proj.weight",), transposed),
           Entry(f"{p}.mlp.up_gate_proj.weight", (f"{p}.mlp.gate_proj.weight", f"{p}.mlp.up_proj.weight"), concat_t),
           Entry(f"{p}.mlp.down_proj.weight", (f"{p}.mlp.down_proj.weight",), transposed)]
    return out + [Entry(f"{p}.{n}.weight", (f"{p}.{n}.weight",)) for n in norms]


def _ends() -> list[Entry]:
    return [Entry("m.embed_tokens.weight", ("m.embed_tokens.weight",)), Entry("m.norm.weight", ("m.norm.weight",))]


QK_NORMS = ("self_attn.q_norm", "self_attn.k_norm")


def _copy_qwen3(layer: Any, module: Any) -> list[Entry]:
    norms = ("input_layernorm", "post_attention_layernorm", *QK_NORMS)
    return _ends() + [e for i in range(LAYERS) for e in _fused_attn_mlp(f"m.layers.{i}", norms)]


def _copy_gemma3(layer: Any, module: Any) -> list[Entry]:
    norms = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
             "post_feedforward_layernorm", *QK_NORMS)
    return _ends() + [e for i in range(LAYERS) for e in _fused_attn_mlp(f"m.layers.{i}", norms)]


def _copy_phi3(layer: Any, module: Any) -> list[Entry]:
    out = _ends()
    for i in range(LAYERS):
        p = f"m.layers.{i}"
        for lin in ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"):
            out.append(Entry(f"{p}.{lin}.weight", (f"{p}.{lin}.weight",), transposed))
        out += [Entry(f"{p}.{n}.weight", (f"{p}.{n}.weight",)) for n in ("input_layernorm", "post_attention_layernorm")]
    return out


def _copy_gpt_oss(layer: Any, module: Any) -> list[Entry]:
    out = _ends()
    for i in range(LAYERS):
        p = f"m.layers.{i}"
        a = f"{p}.self_attn"
        out.append(Entry(f"{a}.sinks", (f"{a}.sinks",)))
        for n in "qkvo":
            out += [Entry(f"{a}.{n}_proj.weight", (f"{a}.{n}_proj.weight",), transposed),
                    Entry(f"{a}.{n}_proj.bias", (f"{a}.{n}_proj.bias",))]
        # router and experts: raw tensors in the same layout on both sides
        names = ("router.weight", "router.bias", "experts.gate_up_proj", "experts.gate_up_proj_bias",
                 "experts.down_proj", "experts.down_proj_bias")
        out += [Entry(f"{p}.mlp.{n}", (f"{p}.mlp.{n}",)) for n in names]
        out += [Entry(f"{p}.{n}.weight", (f"{p}.{n}.weight",)) for n in ("input_layernorm", "post_attention_layernorm")]
    return out


def _stub_fleet_ops() -> None:
    """paddleformers' MoE layers import ``paddlefleet_ops`` (fused all-to-all kernels) only to ask whether
    DeepEP is available: a stub module whose every function answers False. Test code, not padiff."""
    import importlib.abc
    import importlib.machinery
    import sys
    import types

    if "paddlefleet_ops" in sys.modules:
        return

    class _No(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return lambda *a, **k: False

    class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
            if name == "paddlefleet_ops" or name.startswith("paddlefleet_ops."):
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec: Any) -> Any:
            return _No(spec.name)

        def exec_module(self, module: Any) -> None:
            module.__path__ = []

    sys.meta_path.append(_Finder())


DS_ROPE = {"rope_type": "yarn", "factor": 1.0, "original_max_position_embeddings": 64, "mscale_all_dim": 0,
           "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "rope_theta": 10000.0}
DS = dict(n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=12, n_shared_experts=1,
          first_k_dense_replace=1, q_lora_rank=16, kv_lora_rank=16, qk_rope_head_dim=4, qk_nope_head_dim=8,
          v_head_dim=8, head_dim=4, n_group=2, topk_group=1, rope_scaling=DS_ROPE, rope_parameters=DS_ROPE,
          routed_scaling_factor=1.0, norm_topk_prob=True)  # the two packages default these differently


def _build_deepseek_v3() -> Built:
    _stub_fleet_ops()
    return _build("deepseek_v3", "DeepseekV3Config", "DeepseekV3Model", "deepseek_v3", "DeepseekV3Config",
                  "DeepseekV3Model", **DS)


def _copy_deepseek_v3(layer: Any, module: Any) -> list[Entry]:
    import numpy as np

    inter = int(DS["moe_intermediate_size"])  # type: ignore[call-overload]

    def expert(e: int, rows: slice) -> Any:
        return lambda xs: np.ascontiguousarray(xs[0][e][rows].T)

    out = _ends()
    for i in range(LAYERS):
        p = f"m.layers.{i}"
        a = f"{p}.self_attn"
        for lin in ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"):
            out.append(Entry(f"{a}.{lin}.weight", (f"{a}.{lin}.weight",), transposed))
        out += [Entry(f"{a}.{n}.weight", (f"{a}.{n}.weight",)) for n in ("q_a_layernorm", "kv_a_layernorm")]
        out += [Entry(f"{p}.{n}.weight", (f"{p}.{n}.weight",)) for n in ("input_layernorm", "post_attention_layernorm")]
        m = f"{p}.mlp"
        mlps = [m] if i < int(DS["first_k_dense_replace"]) else [f"{m}.shared_experts"]  # type: ignore[call-overload]
        for mlp in mlps:
            out += [Entry(f"{mlp}.{n}.weight", (f"{mlp}.{n}.weight",), transposed)
                    for n in ("gate_proj", "up_proj", "down_proj")]
        if i < int(DS["first_k_dense_replace"]):  # type: ignore[call-overload]
            continue
        out += [Entry(f"{m}.gate.weight", (f"{m}.gate.weight",), transposed),
                Entry(f"{m}.gate.e_score_correction_bias", (f"{m}.gate.e_score_correction_bias",))]
        for e in range(int(DS["n_routed_experts"])):  # type: ignore[call-overload]
            x = f"{m}.experts.{e}"
            out += [Entry(f"{x}.gate_proj.weight", (f"{m}.experts.gate_up_proj",), expert(e, slice(0, inter))),
                    Entry(f"{x}.up_proj.weight", (f"{m}.experts.gate_up_proj",), expert(e, slice(inter, None))),
                    Entry(f"{x}.down_proj.weight", (f"{m}.experts.down_proj",), expert(e, slice(None)))]
    return out


NLP_PAIRS: list[RealPair] = [
    RealPair("qwen3", "paddleformers / transformers (q/k norm, fused qkv, up_gate)", NEEDS, _build_qwen3,
             _copy_qwen3, "m.layers.0.self_attn.k_norm", train_mode=True),
    RealPair("gemma3", "paddleformers / transformers (sandwich norms, scaled embedding, sliding window)", NEEDS,
             _build_gemma3, _copy_gemma3, "m.layers.1.pre_feedforward_layernorm", train_mode=True),
    RealPair("phi3", "paddleformers / transformers (fused on both sides)", NEEDS, _build_phi3, _copy_phi3,
             "m.layers.0.mlp.gate_up_proj", train_mode=True),
    RealPair("gpt_oss", "paddleformers / transformers (attention sinks, raw router and 3-D experts)", NEEDS,
             _build_gpt_oss, _copy_gpt_oss, "m.layers.0.mlp.experts", train_mode=True,
             weights_only=tuple(f"m.layers.{i}.mlp.router" for i in range(LAYERS))),
    RealPair("deepseek_v3", "paddleformers / transformers (latent attention, grouped routing, expert list vs 3-D)",
             NEEDS, _build_deepseek_v3, _copy_deepseek_v3, "m.layers.1.self_attn.kv_b_proj", train_mode=True),
]
