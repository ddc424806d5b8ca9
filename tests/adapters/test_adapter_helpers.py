"""The adapters' framework-free helpers, on plain Python objects standing in for tensors."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

from padiff.adapters import nested
from padiff.adapters.state import StateEntry, owned_state, pair_state, parts_state, subtree_state


class T:
    """A stand-in tensor."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def is_t(x: object) -> bool:
    return isinstance(x, T)


@dataclass
class Out:
    hidden: T
    extra: list


def test_flatten_walks_dicts_lists_and_dataclasses_in_order_and_skips_the_rest():
    a, b, c, d = T("a"), T("b"), T("c"), T("d")
    got = nested.flatten({"x": [a, 3, (b, None)], "y": Out(c, [d, "s"])}, is_t)
    assert got == [a, b, c, d]


def test_flatten_stops_at_the_depth_limit():
    deep: list = [T("z")]
    for _ in range(nested.MAX_DEPTH + 5):
        deep = [deep]
    assert nested.flatten(deep, is_t) == []


def test_map_tensors_keeps_container_types_and_named_tuples():
    P = namedtuple("P", "u v")
    src = {"k": P(T("a"), [T("b"), 1]), "n": (T("c"),)}
    out = nested.map_tensors(src, is_t, lambda t: t.name.upper())
    assert out == {"k": P("A", ["B", 1]), "n": ("C",)}
    assert type(out["k"]) is P


def _tree():
    shared = T("shared")
    layers = [("", "root"), ("rnn", "rnn"), ("rnn.cell", "cell"), ("fc", "fc")]
    held = {"root": [], "rnn": [StateEntry("w", shared, True, False)],
            "cell": [StateEntry("w", shared, True, False), StateEntry("b", T("b"), True, False)],
            "fc": [StateEntry("weight", T("fw"), True, False), StateEntry("mean", T("m"), False, True)]}
    return owned_state(layers, lambda lay: held[lay])


def test_a_tensor_held_twice_is_owned_by_its_outermost_holder():
    owned = _tree()
    assert [e.name for e in owned["rnn"]] == ["w"]
    assert [e.name for e in owned["rnn.cell"]] == ["b"]
    assert "" not in owned  # the root holds nothing itself


def test_subtree_parts_and_pair_state_name_tensors_relative_to_the_pair():
    owned = _tree()
    assert [e.name for e in subtree_state(owned, "rnn")] == ["w", "cell.b"]
    assert [e.name for e in subtree_state(owned, "")] == ["rnn.w", "rnn.cell.b", "fc.weight", "fc.mean"]
    assert [e.name for e in parts_state(owned, ["fc", "rnn"])] == ["fc.weight", "fc.mean", "rnn.w"]
    assert [e.name for e in pair_state(owned, ["fc"], False)] == ["weight", "mean"]
    assert [e.name for e in pair_state(owned, ["rnn"], True)] == ["w", "cell.b"]
    assert [e.name for e in pair_state(owned, ["fc", "rnn"], False)] == ["fc.weight", "fc.mean", "rnn.w"]
