"""Every architecture paddleformers and transformers both ship, found by enumeration.

The model types are read from the installed packages at run time: paddleformers' auto mapping
(``CONFIG_MAPPING_NAMES``) and its ``transformers`` subpackages, intersected with transformers'
``CONFIG_MAPPING_NAMES``. For each type both base models (``*Model``) are built from one tiny
config (hidden 64, 2 layers, 4 heads, 2 key-value heads, head_dim 16, vocab 128, intermediate 128,
experts 4 / top-2 where the config has experts); keys both configs know take transformers' value
(their defaults differ: norm eps, rope theta, layer types...). One generic hand copy
(:func:`generic_copy`) joins HF-style parameter names with the known fused rules, and the pair is
registered only when the copy proves the two models equivalent. Every other type is listed in
:func:`enumerated` with its reason (the exception, or the tensors the generic copy could not place).

Building and proving costs a few seconds per type, so it runs only when the real-pairs suite is
selected (``tests/real_pairs/conftest.py`` sets ``PADIFF_REAL_PAIRS_ENUM``; ``score.py`` too): the
default ``pytest tests`` run registers nothing from here.

Measured (paddleformers 1.2.0, transformers 5.3.0, paddle 3.3.1, torch 2.14.1; ``python -m
tests.real_pairs.score --new``): 29 shared model types, 8 proven and registered. Both torch orders gave
the same figures; AdamW = ``compare(steps=3, optimizer=[AdamW, AdamW])``, lr 1e-3, betas (0.9, 0.999),
eps 1e-8, weight decay 0.01; "conf wrong" = proposed pairs at confidence >= 0.9 that are wrong.

| pair | hand copy | leaf P / R | auto_diff | fault named | AdamW | conf wrong |
|---|---|---|---|---|---|---|
| ernie4_5 | 8.3e-07 | 1.00 (14/14) / 1.00 | True | yes | True | 0 |
| llama | 7.2e-07 | 1.00 (20/20) / 1.00 | True | yes | True | 0 |
| phi3 | 9.5e-07 | 1.00 (14/14) / 1.00 | True | yes | True | 0 (2 before :func:`free_rename`) |
| qwen2 | 9.5e-07 | 1.00 (14/14) / 1.00 | True | yes | True | 0 |
| qwen2_moe | 9.5e-07 | 1.00 (20/20) / 1.00 | True | yes | True | 0 |
| qwen3 | 9.5e-07 | 1.00 (18/18) / 1.00 | True | yes | True | 0 |
| qwen3_moe | 1.4e-06 | 1.00 (18/18) / 1.00 | True | yes | True | 0 |
| qwen3_next | 7.2e-07 | 1.00 (28/28) / 1.00 | True | yes | True | 0 |

Qwen3-MoE (fixed after this table was measured, its row re-checked by test_real_pairs.py): an expert ``down_proj``
was paired with the next layer's ``k_proj`` (equal shapes, paddle fusing q/k/v), and the expert block that pair
crosses was not found past the other experts' Linears, as large as unrelated leftover projections; reversed,
the fused ``qkv_proj`` layouts all scored inf against the still crossed ``q_norm``/``k_norm``. Left out, with
the reasons :func:`enumerated` gives: deepseek_v3 (its MLA reads a YaRN ``factor``; pairs_nlp.py has it
with a hand config), gemma3_text (paddleformers ropes every layer with ``rope_parameters["rope_theta"]``,
1e6; transformers sliding layers with 1e4: padiff names ``m.rotary_emb``, test_enumerated.py),
gpt_oss (YaRN defaults differ, 1e-2), qwen3_vl_text (1e-2), ernie4_5_moe (paddle kernel
``expand_modality_expert_id`` missing on CPU), glm4_moe / glm4v_moe / glm_moe_dsa / minimax_m2 (need the
real ``paddlefleet``), the VL / OCR / omni / whisper types (no base model or config in paddleformers,
``mrope_section`` or the paddlefleet stub).

The 21 left out, each with the first line :func:`enumerated` gives (re-measured): deepseek_v3 ``KeyError:
'factor'``; ernie4_5_moe ``expand_modality_expert_id`` not registered (CPU); gemma3_text not equivalent (4.9e-2,
rope theta, named by padiff); glm4_moe, glm4v_moe, glm_moe_dsa, minimax_m2 ``GPTModelProvider`` has no
``transform_rules`` (the real ``paddlefleet``); glm_ocr ``split_with_sizes`` (its vision rope sections do not
fit the tiny head size); gpt_oss not equivalent (9.7e-3, YaRN defaults); paddleocr_vl ``NotImplementedError``
in paddleformers; qwen2_5_vl, qwen2_5_vl_text ``KeyError: 'mrope_section'``; qwen2_vl, qwen3_5, qwen3_5_moe,
qwen3_omni_moe, whisper: the config or base-model class is not in paddleformers; qwen3_vl, qwen3_vl_moe:
``'super' object has no attribute 'from_config'`` (paddleformers' VL model builds its vision tower through
``paddlefleet``; before the stub took ``X | None`` annotations, a ``TypeError`` there); qwen3_vl_moe_text: not
equivalent (1.1e-1; its fused 3-D experts are now copied, per-expert transposed, but the text rope differs as
in qwen3_vl_text); qwen3_vl_text not equivalent (1.2e-2, rope). None builds and is equivalent on CPU from the
tiny config with the generic copy, so none more is registered.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .handcopy import Entry, apply_copy, same, transposed
from .pairs import Built, RealPair, _import_transformers_first, _inputs
from .pairs_fused import _stub_paddlefleet, concat_t, grouped_qkv
from .pairs_nlp import _stub_fleet_ops

ENV = "PADIFF_REAL_PAIRS_ENUM"
NEEDS = ("transformers", "paddleformers")
VOCAB = 128
EXPERTS, TOP_K = 4, 2
# the tiny config: set on either side only where that config has the key by default
TINY: dict[str, Any] = dict(
    vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    head_dim=16, intermediate_size=128, max_position_embeddings=64, max_window_layers=2,
    moe_intermediate_size=32, shared_expert_intermediate_size=64, num_experts=EXPERTS, n_routed_experts=EXPERTS,
    num_local_experts=EXPERTS, moe_num_experts=EXPERTS, num_experts_per_tok=TOP_K, moe_k=TOP_K, n_shared_experts=1,
    first_k_dense_replace=1, n_group=2, topk_group=1, q_lora_rank=32, kv_lora_rank=32, qk_rope_head_dim=8,
    qk_nope_head_dim=16, v_head_dim=16, sliding_window=4, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    attention_dropout=0.0, hidden_dropout=0.0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    use_cache=False, partial_rotary_factor=0.5, linear_num_key_heads=2, linear_num_value_heads=4,
    linear_key_head_dim=16, linear_value_head_dim=16, linear_conv_kernel_dim=4, full_attention_interval=2,
    index_n_heads=2, index_head_dim=16, index_topk=4, moe_layer_start_index=1, decoder_sparse_step=1,
)
# paddle-only switches: the fused kernels need a GPU
# (and no multi-token-prediction blocks: transformers' base models have none)
PADDLE_ONLY: dict[str, Any] = dict(fuse_rms_norm=False, use_fused_rms_norm=False, fuse_attention_qkv=False,
                                   use_flash_attention=False, num_nextn_predict_layers=0)


@dataclass(frozen=True)
class Arch:
    """One model type both packages ship: where its classes live (names, not objects: nothing imported)."""

    model_type: str
    pd_module: str
    pd_config: str
    pd_model: str
    hf_config: str
    hf_model: str


def model_types() -> list[Arch]:
    """The model types both installed packages ship, with their config and base-model class names."""
    import pkgutil

    _import_transformers_first()
    _stub_paddlefleet()
    _stub_fleet_ops()
    import paddleformers.transformers as pft
    from paddleformers.transformers.auto import configuration as pd_auto
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES as HF_CONFIGS
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES as HF_MODELS

    pd_configs = dict(pd_auto.CONFIG_MAPPING_NAMES)
    special = dict(getattr(pd_auto, "SPECIAL_MODEL_TYPE_TO_MODULE_NAME", {}))
    subpackages = {m.name for m in pkgutil.iter_modules(pft.__path__) if m.ispkg} - {"auto", "legacy"}
    out = []
    for t in sorted((set(pd_configs) | subpackages) & set(HF_CONFIGS)):
        hf_model = HF_MODELS.get(t, "")
        hf_model = hf_model if isinstance(hf_model, str) else hf_model[0]
        stem = HF_CONFIGS[t][: -len("Config")]
        out.append(Arch(t, f"paddleformers.transformers.{special.get(t, t)}", pd_configs.get(t, HF_CONFIGS[t]),
                        hf_model or f"{stem}Model", HF_CONFIGS[t], hf_model or f"{stem}Model"))
    return out


def _paddle_class(module: str, name: str) -> Any:
    """``name`` from a paddleformers model package, or from its ``configuration``/``modeling`` modules
    (the package's lazy table does not list every class)."""
    import importlib

    errors = []
    for where in (module, f"{module}.configuration", f"{module}.modeling"):
        try:
            return getattr(importlib.import_module(where), name)
        except ModuleNotFoundError as exc:
            if exc.name != where:  # the module exists but imports something missing
                errors.append(f"importing {where}: {type(exc).__name__}: {exc}")
        except AttributeError as exc:
            if name not in str(exc):  # the module failed while importing, not a missing class
                errors.append(f"importing {where}: {type(exc).__name__}: {exc}")
        except ImportError as exc:
            errors.append(f"importing {where}: {type(exc).__name__}: {exc}")
    raise AttributeError(errors[-1] if errors else
                         f"paddleformers ships no {name} (looked in {module} and its configuration/modeling)")


def _plain(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str)) or (
        isinstance(v, (list, tuple, dict)) and all(_plain(x) for x in (v.values() if isinstance(v, dict) else v)))


def tiny_configs(arch: Arch) -> tuple[Any, Any]:
    """(paddle config, transformers config) for ``arch`` from :data:`TINY`, keys mapped generically.

    transformers' config gets every tiny key it has by default (sub-configs such as ``text_config``
    get them too); paddle's then takes transformers' value for every plain key both know, so the
    two packages' differing defaults cannot make a correct port look wrong.
    """
    import transformers

    hf_cls = getattr(transformers, arch.hf_config)
    hf_default = hf_cls().to_dict()
    hf_kw = {k: v for k, v in TINY.items() if k in hf_default}
    for sub in ("text_config", "vision_config", "audio_config"):
        if isinstance(hf_default.get(sub), dict):
            d = hf_default[sub]
            hf_kw[sub] = {k: v for k, v in {**TINY, "depth": 2, "out_hidden_size": 64, "num_heads": 4,
                                             "embed_dim": 64, "patch_size": 4, "spatial_merge_size": 2}.items()
                          if k in d}
    hf = hf_cls(**hf_kw)
    if "layer_types" in hf.to_dict() and hf.to_dict()["layer_types"] is not None:
        hf.layer_types = list(hf.layer_types)[: TINY["num_hidden_layers"]]
    pd_cls = _paddle_class(arch.pd_module, arch.pd_config)
    pd_default = pd_cls().to_dict()
    mapped = {k: v for k, v in hf.to_dict().items() if k in pd_default and _plain(v)
              and k not in ("model_type", "architectures", "transformers_version", "dtype", "torch_dtype")}
    pd_kw = {**{k: v for k, v in TINY.items() if k in pd_default}, **mapped}
    pd_kw.update({k: v for k, v in PADDLE_ONLY.items() if k in pd_default or k == "fuse_rms_norm"})
    return pd_cls(**pd_kw), hf


def build_arch(arch: Arch) -> Built:
    """Both base models of ``arch`` from one tiny config, wrapped to return the hidden states."""
    import paddle
    import torch

    _import_transformers_first()
    _stub_paddlefleet()
    _stub_fleet_ops()
    import transformers

    pd_cfg, hf_cfg = tiny_configs(arch)
    pd_cls = _paddle_class(arch.pd_module, arch.pd_model)
    hf_cls = getattr(transformers, arch.hf_model)

    class PdTop(paddle.nn.Layer):  # the hidden states, not the model-output record
        def __init__(self) -> None:
            super().__init__()
            self.m = pd_cls(pd_cfg)

        def forward(self, input_ids: Any) -> Any:
            return self.m(input_ids=input_ids, use_cache=False)[0]

    class PtTop(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = hf_cls(hf_cfg)

        def forward(self, input_ids: Any) -> Any:
            return self.m(input_ids=input_ids, use_cache=False)[0]

    return (PdTop(), PtTop(), *_inputs((2, 8), key_pd="input_ids", key_pt="input_ids", integers=VOCAB))


# --- the generic hand copy ---------------------------------------------------------------

def _is_linear(obj: Any) -> bool:
    return type(obj).__name__.endswith("Linear") or any(c.__name__ == "Linear" for c in type(obj).__mro__)


def _expert(e: int, half: int | None, transpose: bool) -> Any:
    """Expert ``e`` of a torch 3-D tensor, optionally one half of its output rows (0 gate, 1 up)."""

    def conv(xs: Sequence[np.ndarray]) -> np.ndarray:
        w = xs[0][e]
        if half is not None:
            n = w.shape[0] // 2
            w = w[half * n:(half + 1) * n]
        return np.ascontiguousarray(w.T if transpose else w)

    return conv


def _kv_heads(module: Any) -> int:
    cfg = module.m.config
    cfg = getattr(cfg, "text_config", None) or cfg
    return int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)


class Unplaced(AssertionError):
    """The generic copy could not place some tensors (their names say which)."""


def generic_copy(layer: Any, module: Any) -> list[Entry]:
    """One hand copy for every paddleformers / transformers pair: HF-style names on both sides and
    the known fused rules, nothing model-specific.

    - same name: copied as is; a Linear weight (either side's owner a ``Linear``) whose shape is the
      transpose of the torch one is transposed (paddle ``[in, out]``, torch ``[out, in]``), and a
      2-D raw parameter whose shape is exactly the transpose (a router ``weight [E, H]``) too;
    - paddle ``qkv_proj`` from torch ``q_proj``/``k_proj``/``v_proj``, interleaved per key-value head;
    - paddle ``up_gate_proj`` from torch ``gate_proj``/``up_proj`` (``[gate | up]``) or ``gate_up_proj``;
    - paddle ``experts.<e>.<gate|up|up_gate|down>_proj.weight`` from torch's 3-D ``experts.gate_up_proj``
      ``[E, 2I, H]`` (rows ``[gate | up]``) / ``experts.down_proj`` ``[E, H, I]``.
    Raises :class:`Unplaced` naming the paddle tensors it could not write and the torch tensors it
    did not read.
    """
    persistent = set(layer.state_dict())
    pd = {k: tuple(v.shape) for k, v in [*layer.named_parameters(), *layer.named_buffers()] if k in persistent}
    pt = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    linear = ({n for n, sub in layer.named_sublayers() if _is_linear(sub)}
              | {n for n, sub in module.named_modules() if _is_linear(sub)})
    groups = _kv_heads(module)
    out = [e for e in (_place(name, pd, pt, linear, groups) for name in pd) if e is not None]
    # a tensor one side keeps one level deeper (``mlp.x.b`` against ``mlp.gate.x.b``): the only unread torch
    # name of that shape under the same parent ending in the same last two parts
    read = {t for e in out for t in e.torch_names}
    for name in sorted(set(pd) - {e.paddle_name for e in out}):
        parts = name.split(".")
        parent, tail = ".".join(parts[:-2]), ".".join(parts[-2:])
        cands = [t for t in set(pt) - read if len(parts) > 2 and t.startswith(parent + ".")
                 and t.endswith("." + tail) and pt[t] == pd[name]]
        if len(cands) == 1:
            out.append(Entry(name, (cands[0],), same))
            read.add(cands[0])
    missing = sorted(set(pd) - {e.paddle_name for e in out})
    unread = sorted(k for k in set(pt) - read if not k.endswith("num_batches_tracked"))
    if missing or unread:
        raise Unplaced(f"generic copy could not place: paddle {_short(missing)}; torch {_short(unread)}")
    return out


def _experts_t(xs: Sequence[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(xs[0].transpose(0, 2, 1))


def _concat_last(xs: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(list(xs), axis=-1)


def _place(name: str, pd: dict[str, tuple], pt: dict[str, tuple], linear: set[str], groups: int) -> Entry | None:
    """The entry writing paddle tensor ``name`` by the rules of :func:`generic_copy`, or None."""
    p_shape = pd[name]
    head, _, leaf = name.rpartition(".")
    base, _, last = head.rpartition(".")
    if name in pt:
        t_shape = pt[name]
        if len(p_shape) == 2 and p_shape == t_shape[::-1] and (head in linear or p_shape != t_shape):
            return Entry(name, (name,), transposed)
        if len(p_shape) == 3 and p_shape != t_shape and p_shape == (t_shape[0], t_shape[2], t_shape[1]):
            return Entry(name, (name,), _experts_t)  # fused experts, each [out, in] in torch, [in, out] in paddle
        return Entry(name, (name,), same) if p_shape == t_shape else None
    if last == "qkv_proj":
        parts = tuple(f"{base}.{n}_proj.{leaf}" for n in "qkv")
        return Entry(name, parts, grouped_qkv(groups, leaf == "weight")) if all(p in pt for p in parts) else None
    if last == "up_gate_proj":
        parts = (f"{base}.gate_proj.{leaf}", f"{base}.up_proj.{leaf}")
        if all(p in pt for p in parts):
            return Entry(name, parts, concat_t if leaf == "weight" else _concat_last)
        fused = f"{base}.gate_up_proj.{leaf}"
        if fused in pt:
            return Entry(name, (fused,), transposed if leaf == "weight" else same)
    m = re.fullmatch(r"(.*\.experts)\.(\d+)\.(gate|up|up_gate|down)_proj\.weight", name)
    if m:
        experts, e, kind = m.group(1), int(m.group(2)), m.group(3)
        src = f"{experts}.down_proj" if kind == "down" else f"{experts}.gate_up_proj"
        if src not in pt:
            return None
        half = {"gate": 0, "up": 1}.get(kind)
        out_rows = pt[src][1] // 2 if half is not None else pt[src][1]
        # torch per-expert [out, in]: transposed into paddle's [in, out]
        return Entry(name, (src,), _expert(e, half, p_shape == (pt[src][2], out_rows)))
    return None


def _short(names: list[str]) -> str:
    """Layer-independent names (``layers.<i>`` collapsed), so a reason reads once per kind."""
    seen = sorted({re.sub(r"\.\d+\.", ".<i>.", n) for n in names})
    return "[" + ", ".join(seen[:8]) + (f", ... ({len(seen)} kinds)" if len(seen) > 8 else "") + "]"


# --- proving and registering -------------------------------------------------------------

REL_TOL = 1e-4  # max abs diff over the torch output's max abs value


def prove(arch: Arch) -> float:
    """Build, copy generically, and return the relative max diff (raises with the reason otherwise)."""
    import paddle
    import torch

    from .score import run_both

    paddle.seed(0)
    torch.manual_seed(0)
    layer, module, p_inp, t_inp = build_arch(arch)
    layer.train()
    module.train()
    apply_copy(layer, module, generic_copy(layer, module))
    p_out, t_out = run_both(layer, module, p_inp, t_inp)
    if not p_out or len(p_out) != len(t_out) or any(a.shape != b.shape for a, b in zip(p_out, t_out)):
        raise AssertionError(f"outputs differ in count or shape: paddle {[a.shape for a in p_out]}, "
                             f"torch {[b.shape for b in t_out]}")
    scale = max(float(np.max(np.abs(b))) for b in t_out)
    if scale < 1e-3:
        raise AssertionError(f"torch output ~0 (max {scale:.1e}): nothing proven")
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(p_out, t_out))
    rel = diff / scale
    if rel >= REL_TOL:
        raise AssertionError(f"not equivalent after the generic copy: max abs diff {diff:.2e} "
                             f"(output scale {scale:.2e}, relative {rel:.1e})")
    return rel


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _fault_leaf(module: Any) -> str:
    """The torch leaf a planted fault goes into: the first parameter-holding leaf of the second block
    (``layers.1``) that the generic copy read (the enumeration cannot know better, and need not)."""
    leaves = [n for n, m in module.named_modules() if not list(m.children()) and list(m.parameters(recurse=False))]
    in_block = [n for n in leaves if ".layers.1." in n and "norm" not in n.rsplit(".", 1)[-1]]
    return (in_block or leaves)[0]


def free_rename(layer: Any, module: Any) -> Any:
    """The true torch partner of a paddle parameter-free layer, read generically: the same path, or else the only
    parameter-free torch leaf under the same parent that paddle has no layer of that name for (paddle ``mlp.act_fn``
    against transformers' ``mlp.activation_fn``)."""
    pd_paths = {n for n, _ in layer.named_sublayers()}
    free = {n for n, m in module.named_modules()
            if n and not list(m.children()) and not list(m.parameters(recurse=False))}
    table: dict[str, str] = {}
    for p in pd_paths - set(dict(module.named_modules())):
        parent = p.rpartition(".")[0]
        cands = [t for t in free if t.rpartition(".")[0] == parent and t not in pd_paths]
        if len(cands) == 1:
            table[p] = cands[0]
    return lambda p: table.get(p, p)


@functools.cache
def enumerated() -> tuple[tuple[RealPair, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(registered pairs, (model type, reason) for each type left out, every enumerated type)."""
    import sys

    pairs: list[RealPair] = []
    left: list[tuple[str, str]] = []
    archs = model_types()
    for arch in archs:
        try:
            rel = prove(arch)
        except Exception as exc:  # noqa: BLE001 - a type that cannot be proven is listed with its reason
            left.append((arch.model_type, _first_line(exc)))
            continue
        layer, module, _, _ = build_arch(arch)
        pairs.append(RealPair(f"enum:{arch.model_type}", f"paddleformers / transformers (enumerated; rel diff "
                              f"{rel:.1e})", NEEDS, functools.partial(build_arch, arch), generic_copy,
                              _fault_leaf(module), free_rename=free_rename(layer, module), train_mode=True))
        print(f"enumerated {arch.model_type}: proven, relative diff {rel:.1e}", file=sys.stderr)
    return tuple(pairs), tuple(left), tuple(a.model_type for a in archs)


def wanted() -> bool:
    """True when the enumeration is to run (the real-pairs suite or the scorer asked for it)."""
    return os.environ.get(ENV) == "1"


def enum_pairs() -> list[RealPair]:
    """The registered enumerated pairs, or none outside the real-pairs suite."""
    return list(enumerated()[0]) if wanted() else []
