"""``HookSet`` removes every handle, also when the block raises."""

from __future__ import annotations

import pytest

from padiff.adapters.hooks import HookSet


class Handle:
    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    def remove(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError("already gone")


def test_leaving_the_block_removes_every_handle_newest_first():
    log: list[str] = []
    with HookSet() as hooks:
        assert hooks.add(Handle(log, "a")).name == "a"
        hooks.add(Handle(log, "b"))
    assert log == ["b", "a"] and hooks.handles == []


def test_handles_are_removed_when_the_block_raises_and_a_failing_removal_does_not_stop_the_rest():
    log: list[str] = []
    with pytest.raises(ValueError, match="forward failed"), HookSet() as hooks:
        hooks.add(Handle(log, "a"))
        hooks.add(Handle(log, "b", fail=True))
        raise ValueError("forward failed")
    assert log == ["b", "a"]


def test_remove_all_twice_is_harmless():
    log: list[str] = []
    hooks = HookSet()
    hooks.add(Handle(log, "a"))
    hooks.remove_all()
    hooks.remove_all()
    assert log == ["a"]
