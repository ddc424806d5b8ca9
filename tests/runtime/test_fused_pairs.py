"""Fused pairs by hand: the LayerPair type, the map-file codec, and the weight conversions.

The weights of a fused pair are split, concatenated or stacked in the order the pair states
(or the numbers in the paths give), never in definition order.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from models import fused_pairs as fp

import padiff
from padiff import LayerMap, LayerPair, MapFileError, MappingError
from padiff.layer_map import map_from_dict, map_to_dict
from padiff.weights.layout_infer import Tensor, infer_links
from padiff.weights.layout_stack import stack_links

QKV = LayerPair("inner.qkv_proj", "", torch_parts=("body.q_proj", "body.k_proj", "body.v_proj"))


def T(name: str, *shape: int, owner: str = "") -> Tensor:
    return Tensor(name, tuple(shape), owner)


# --- the type and the file format ------------------------------------------------------------------
def test_a_split_side_is_written_as_a_list_of_paths_and_read_back() -> None:
    lm = LayerMap([QKV])
    data = map_to_dict(lm)
    assert data["version"] == 2
    entry = data["pairs"][0]
    assert entry["torch_path"] == ["body.q_proj", "body.k_proj", "body.v_proj"]
    assert "torch_parts" not in entry and entry["axis"] == -1
    back = map_from_dict(yaml.safe_load(yaml.safe_dump(data))).pairs[0]
    assert back == QKV and back.torch_path == "body.q_proj" and back.split_side == "torch"


def test_a_hand_written_fused_pair_loads_and_checks_against_the_models() -> None:
    case = fp.attention(reverse=True)
    text = ("version: 2\npairs:\n- paddle_path: inner.qkv_proj\n"
            "  torch_path: [body.q_proj, body.k_proj, body.v_proj]\n")
    lm = LayerMap.from_dict(yaml.safe_load(text), case.paddle, case.torch)
    pair = lm.pairs[0]
    assert pair.torch_parts == ("body.q_proj", "body.k_proj", "body.v_proj")
    assert pair.paddle_shapes == ((8, 24), (24,)) and len(pair.torch_shapes) == 6  # filled from the models
    assert padiff.auto_diff(case.paddle, case.torch, case.inputs, auto_weights=True, layer_map=lm,
                            options={"atol": 1e-5, "rtol": 1e-4}) is True


def test_version_1_files_are_still_read() -> None:
    lm = map_from_dict({"version": 1, "pairs": [{"paddle_path": "a", "torch_path": "b"}]})
    assert lm.pairs[0].split_side == ""


@pytest.mark.parametrize(("entry", "message"), [
    ({"paddle_path": ["a", "b"], "torch_path": ["c", "d"]}, "both lists"),
    ({"paddle_path": "a", "torch_path": ["c"]}, "two or more distinct paths"),
    ({"paddle_path": "a", "torch_path": ["c", "c"]}, "two or more distinct paths"),
    ({"paddle_path": "a", "torch_path": ["c", "d"], "axis": "last"}, "axis must be an integer"),
])
def test_malformed_fused_entries_are_file_errors(entry: dict, message: str) -> None:
    with pytest.raises(MapFileError, match=message):
        map_from_dict({"version": 2, "pairs": [entry]})


def test_a_part_cannot_be_paired_twice() -> None:
    other = LayerPair("inner.out_proj", "body.k_proj")
    with pytest.raises(MapFileError, match="already paired"):
        map_from_dict({"version": 2, "pairs": [QKV.to_dict(), other.to_dict()]})
    with pytest.raises(MappingError, match="cannot save"):
        map_to_dict(LayerMap([QKV, other]))
    case = fp.attention()
    with pytest.raises(MappingError, match="paired twice"):
        LayerMap([QKV, other]).resolve(case.paddle, case.torch)


def test_wrong_fused_shapes_are_a_file_error_against_the_models() -> None:
    case = fp.attention_narrow_key()
    with pytest.raises(MapFileError, match="cannot be split or concatenated"):
        LayerMap.from_dict(map_to_dict(LayerMap([QKV])), case.paddle, case.torch)


# --- the weight conversions ------------------------------------------------------------------------
def _arrays(ts: list[Tensor], rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {t.name: rng.standard_normal(t.shape) for t in ts}


def test_fused_linear_weight_concatenates_in_the_stated_part_order() -> None:
    rng = np.random.default_rng(0)
    ps = [T("weight", 4, 12, owner="Linear")]
    ts = [T("v.weight", 4, 4, owner="Linear"), T("q.weight", 4, 4, owner="Linear"), T("k.weight", 4, 4, owner="Linear")]
    arrs = _arrays(ts, rng)
    (link,) = infer_links(ps, ts)  # type: ignore[misc]
    got = link.fn([arrs[n] for n in link.torch_names])
    np.testing.assert_array_equal(got, np.concatenate([arrs["v.weight"], arrs["q.weight"], arrs["k.weight"]]).T)


def test_conv1d_weight_is_already_in_paddle_layout() -> None:
    rng = np.random.default_rng(0)
    ps = [T("q.weight", 4, 4, owner="Linear"), T("k.weight", 4, 4, owner="Linear"), T("v.weight", 4, 4, owner="Linear")]
    ts = [T("c_attn.weight", 4, 12, owner="Conv1D")]
    w = rng.standard_normal((4, 12))
    links = infer_links(ps, ts)
    assert links is not None
    for k, link in enumerate(links):
        np.testing.assert_array_equal(link.fn([w]), w[:, 4 * k:4 * (k + 1)])  # sliced, not transposed


def test_expert_stack_follows_the_indices_not_definition_order() -> None:
    rng = np.random.default_rng(0)
    ps = [T("w1", 3, 4, 6), T("w2", 3, 6, 4)]
    ts = [T(f"experts.{i}.{fc}.weight", *((6, 4) if fc == "fc1" else (4, 6)), owner="Linear")
          for i in (2, 0, 1) for fc in ("fc1", "fc2")]  # defined out of index order
    arrs = _arrays(ts, rng)
    links, p_rest, t_rest = stack_links(ps, ts)
    assert not p_rest and not t_rest
    w1 = next(lk for lk in links if lk.paddle_name == "w1")
    assert w1.torch_names == tuple(f"experts.{i}.fc1.weight" for i in range(3))
    got = w1.fn([arrs[n] for n in w1.torch_names])
    np.testing.assert_array_equal(got[2], arrs["experts.2.fc1.weight"].T)


def test_expert_stack_needs_every_index() -> None:
    ps = [T("w1", 3, 4, 6)]
    ts = [T(f"experts.{i}.fc1.weight", 6, 4, owner="Linear") for i in (0, 1, 3)]
    links, p_rest, _ = stack_links(ps, ts)
    assert not links and p_rest == ps
