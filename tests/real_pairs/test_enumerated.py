"""The suite grows by enumeration. Every architecture both paddleformers and transformers ship, and
every torchvision model file PaConvert converts, is either registered as a proven real pair or listed with
the reason it is not (the lists are what these tests print on failure)."""

from __future__ import annotations

import pytest

from . import pairs_convert, pairs_enum, pairs_timm
from .pairs import all_pairs

pytestmark = pytest.mark.real_pairs


def _accounted(registered: tuple, left: tuple, found: tuple, prefix: str) -> None:
    names = {p.name.split(":", 1)[1] for p in registered}
    listed = dict(left)
    assert found, "the enumeration found nothing"
    assert not names & set(listed), f"both registered and listed: {names & set(listed)}"
    assert set(found) == names | set(listed), f"neither registered nor listed: {set(found) - names - set(listed)}"
    assert all(reason.strip() for reason in listed.values()), listed
    on_suite = {p.name for p in all_pairs()}
    assert {f"{prefix}:{n}" for n in names} <= {n.split(".")[0] for n in on_suite} | on_suite


def test_every_shared_architecture_is_registered_or_listed() -> None:
    registered, left, found = pairs_enum.enumerated()
    print("\nregistered:", [p.name for p in registered], "\nleft out:\n" + "\n".join(f"  {t}: {r}" for t, r in left))
    assert len(found) > 0 and registered, "no paddleformers / transformers architecture was proven equivalent"
    _accounted(registered, left, found, "enum")


def test_every_converted_torchvision_file_is_registered_or_listed() -> None:
    registered, left, found = pairs_convert.enumerated()
    print("\nregistered:", [p.name for p in registered], "\nleft out:\n" + "\n".join(f"  {t}: {r}" for t, r in left))
    assert len(found) > 0, "no torchvision model file was enumerated"
    names = {p.name.split(":", 1)[1] for p in registered}
    builders = {f: {b for _, b in v} for f, v in pairs_convert.builders().items()}
    files = {f for f, bs in builders.items() if bs & names}
    assert not files & {f for f, _ in left}
    assert set(found) == files | {f for f, _ in left}, f"neither registered nor listed: {set(found) - files}"


def test_every_converted_timm_file_is_registered_or_listed() -> None:
    registered, left, found = pairs_timm.enumerated()
    print("\nregistered:", [p.name for p in registered], "\nleft out:\n" + "\n".join(f"  {t}: {r}" for t, r in left))
    assert len(found) > 50, f"timm registers models from {len(found)} files only"
    names = {p.name.split(":", 1)[1] for p in registered}
    files = {f for f, models in pairs_timm.files().items() if set(models) & names}
    assert not files & {f for f, _ in left}
    assert set(found) == files | {f for f, _ in left}, f"neither registered nor listed: {set(found) - files}"
    assert all(reason.strip() for _, reason in left)


def test_the_generic_copy_names_what_it_cannot_place() -> None:
    """The referee can say no: a torch tensor no rule reads is named, not silently skipped."""
    import torch

    registered, _, _ = pairs_enum.enumerated()
    if not registered:
        pytest.skip("no enumerated pair registered")
    layer, module, _, _ = registered[0].build()
    module.extra = torch.nn.Linear(2, 2)
    with pytest.raises(pairs_enum.Unplaced, match="extra"):
        pairs_enum.generic_copy(layer, module)


def test_padiff_names_where_the_packages_gemma3_differs() -> None:
    """Found by the enumeration: with the packages' default rope thetas (sliding 1e4, full 1e6) paddleformers'
    Gemma 3 text model is not transformers' one. paddleformers builds one ``Gemma3RotaryEmbedding`` from
    ``rope_parameters["rope_theta"]`` for every layer; transformers ropes sliding-attention layers with the
    local theta. Both built from one tiny config and copied by the generic copy, padiff must name the rotary
    embedding, where the two first differ."""
    from . import score

    reason = dict(pairs_enum.enumerated()[1]).get("gemma3_text", "")
    if "not equivalent" not in reason:
        pytest.skip(f"gemma3_text is not the known non-equivalent pair here ({reason or 'registered'})")
    import padiff

    arch = next(a for a in pairs_enum.model_types() if a.model_type == "gemma3_text")
    layer, module, p_inp, t_inp = pairs_enum.build_arch(arch)
    layer.train()
    module.train()
    rep = padiff.compare(layer, module, (p_inp, t_inp), auto_weights=True, layer_map="auto", options=score.OPTIONS)
    first = rep.first_diff
    assert not rep and first is not None
    assert (first.stage, first.paddle_path, first.torch_path) == ("forward", "m.rotary_emb", "m.rotary_emb"), first
