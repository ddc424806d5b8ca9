"""Per-side event recording, on the fake framework: events, call indices, hooks, kept errors."""

from __future__ import annotations

import pytest
from engine_fakes import FAKE, Layer, Tensor, add, chain

from padiff.adapters.hooks import HookSet
from padiff.errors import OptionsError, PadiffInternalError
from padiff.runtime.engine.recording import HookErrors, SideRecorder
from padiff.runtime.pairing import Role


def _model() -> Layer:
    return Layer(chain, a=Layer(add), b=Layer(add))


def _recorder(root: Layer, paths=("a", "b")) -> SideRecorder:
    roles = {p: Role(p, "Layer", "soft", p.count(".") + 1) for p in paths}
    return SideRecorder(FAKE, root, roles, {}, HookErrors())


def test_each_call_becomes_an_event_with_its_call_index_in_call_order():
    root = _model()
    rec = _recorder(root)
    seen = []
    with HookSet() as hooks:
        rec.install(hooks, after=lambda ev, args, out: seen.append((ev.role.path, ev.call, float(out.value[0]))))
        root(Tensor([0.0]))
    assert [(e.role.path, e.call, e.index) for e in rec.events] == [("a", 0, 0), ("b", 0, 1), ("b", 1, 2)]
    assert seen == [("a", 0, 1.0), ("b", 0, 2.0), ("b", 1, 3.0)]
    assert rec.active == []
    assert FAKE.hook_count(root) == 0  # leaving the HookSet removed every hook


def test_before_may_replace_the_inputs_of_a_call():
    root = _model()
    rec = _recorder(root, ("a",))
    with HookSet() as hooks:
        rec.install(hooks, before=lambda ev, args, kwargs: ((Tensor([10.0]),), kwargs))
        h, _ = root(Tensor([0.0]))
    assert float(h.value[0]) == 13.0


def test_a_layer_shared_under_two_paths_is_hooked_once_under_its_first_path():
    shared = Layer(add)
    root = Layer(lambda lay, x: lay.children["second"](lay.children["first"](x)), first=shared, second=shared)
    rec = _recorder(root, ("first", "second"))
    assert [role.path for _, role in rec.hooked_layers()] == ["first"]
    with HookSet() as hooks:
        rec.install(hooks)
        root(Tensor([0.0]))
    assert [(e.role.path, e.call) for e in rec.events] == [("first", 0), ("first", 1)]


def test_close_finds_the_innermost_open_event_of_the_role():
    rec = _recorder(_model())
    outer = rec.open(rec.roles["a"])
    inner = rec.open(rec.roles["b"])
    assert rec.close(rec.roles["b"]) is inner
    assert rec.active == [outer]
    assert rec.close(rec.roles["b"]) is None  # never opened again: nothing to close
    assert rec.close(rec.roles["a"]) is outer and rec.active == []


def test_output_gradients_are_hooked_only_where_a_gradient_can_flow():
    root = _model()
    rec = _recorder(root, ("b",))
    got = []
    with HookSet() as hooks:
        def after(ev, args, out):
            rec.hook_output_grads(hooks, ev, [out, Tensor([1.0]), Tensor([1], True, dtype="int64")],
                                  lambda i, t: lambda g, ev=ev, i=i: got.append((ev.call, i, g)))
        rec.install(hooks, after=after)
        x = Tensor([0.0], requires_grad=True)
        h, _ = root(x)
        assert [sorted(e.grad_hooked) for e in rec.events] == [[0], [0]]
        h.fire_grad("g")
    assert got == [(1, 0, "g")]


def test_an_error_inside_a_hook_is_kept_and_raised_after_the_call():
    root = _model()
    rec = _recorder(root)

    def after(ev, args, out):
        raise KeyError(f"broken at {ev.role.path}")

    with HookSet() as hooks:
        rec.install(hooks, after=after)
        root(Tensor([0.0]))  # the model's call itself goes through
    with pytest.raises(PadiffInternalError, match="a padiff hook failed: KeyError: 'broken at a'"):
        rec.errors.raise_pending()
    rec.errors.raise_pending()  # raised once: nothing is left


def test_a_padiff_error_inside_a_hook_is_raised_as_it_is():
    errors = HookErrors()
    errors.guard(lambda: (_ for _ in ()).throw(OptionsError("bad option")))()
    with pytest.raises(OptionsError, match="bad option"):
        errors.raise_pending()


def test_raising_layer_is_the_innermost_layer_in_the_traceback_else_the_innermost_open_call():
    def broken(layer, x):
        raise ValueError("shape")

    root = Layer(chain, a=Layer(add), b=Layer(broken))
    rec = _recorder(root)
    with pytest.raises(ValueError) as info:
        root(Tensor([0.0]))
    assert rec.raising_layer(info.value) == ("b", "Layer")
    rec.open(rec.roles["a"])
    assert rec.raising_layer(ValueError("no traceback")) == ("a", "Layer")


def test_layer_at_names_a_missing_path_as_a_padiff_bug():
    rec = _recorder(_model())
    assert rec.layer_at("b") is rec.root.children["b"]
    with pytest.raises(PadiffInternalError, match="no fake layer at 'zz'"):
        rec.layer_at("zz")
