"""Layer-path helpers shared by the aligner's numeric settling and its block rules."""

from padiff.names import common_container


def test_common_container_is_the_deepest_block_around_the_paths():
    assert common_container(["m.layers.0.q", "m.layers.0.k"]) == "m.layers.0"
    assert common_container(["m.layers.0.q"]) == "m.layers.0"  # a path's own parent, not itself
    assert common_container(["m.layers.0.q", "m.layers.1.q"]) == "m.layers"
    assert common_container(["a.b", "c.d"]) == "" and common_container([]) == ""


def test_a_path_holds_itself_when_asked():
    assert common_container(["m.attn"], own=True) == "m.attn"
    assert common_container(["m.attn.q", "m.attn"], own=True) == "m.attn"
    assert common_container(["m.attn.q", "m.attn"]) == "m"
