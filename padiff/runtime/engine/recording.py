"""Per-side event recording: each call of a hooked layer becomes an :class:`Event`.

A :class:`SideRecorder` works for one model through its framework adapter only (no
tensor method is called here). It hooks each layer that has a role once (a layer shared
under two paths is hooked under its first), opens an event before the call (call
index per path, the user's stack) and closes it after, handing both moments to the
callbacks of whoever records: the engine keeps paddle's outputs and compares torch's
against them; a recorder writing a run folder would store them. Output gradients are
hooked per output tensor that can carry one (:meth:`SideRecorder.hook_output_grads`).

Exceptions inside hooks must not escape into the framework's call machinery (they would
surface as the model's error, or be swallowed by its autograd engine): :class:`HookErrors`
keeps the first one, and the caller raises it once the framework call has returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from padiff.adapters import FrameworkSide, StateEntry
from padiff.adapters.frames import user_stack
from padiff.adapters.hooks import HookSet
from padiff.errors import PadiffError, PadiffInternalError
from padiff.runtime.pairing import Event, Role

T = TypeVar("T")

#: ``before(event, args, kwargs)``: may return ``(args, kwargs)`` to replace the layer's inputs
Before = Callable[[Event, tuple[Any, ...], dict[str, Any]], Any]
#: ``after(event, args, output)``
After = Callable[[Event, tuple[Any, ...], Any], None]


class HookErrors:
    """The first exception raised inside a hook, kept until the caller can raise it."""

    def __init__(self) -> None:
        self.first: BaseException | None = None

    def guard(self, fn: Callable[..., T]) -> Callable[..., T | None]:
        """``fn`` that never raises ``Exception``: the first one is kept, and the hook returns None."""
        def guarded(*args: Any) -> T | None:
            try:
                return fn(*args)
            except Exception as e:  # noqa: BLE001 - raised by raise_pending once the framework returns
                if self.first is None:
                    self.first = e
                return None

        return guarded

    def raise_pending(self) -> None:
        """Raise the kept exception, if any: a :class:`PadiffError` as it is, anything else as a padiff bug."""
        err, self.first = self.first, None
        if err is None:
            return
        if isinstance(err, PadiffError):
            raise err
        raise PadiffInternalError(f"a padiff hook failed: {type(err).__name__}: {err}") from err


class SideRecorder:
    """The events of one model's run: which layer was called, which call of it, what is kept of it."""

    def __init__(self, side: FrameworkSide, root: Any, roles: Mapping[str, Role],
                 owned: Mapping[str, list[StateEntry]], errors: HookErrors, *, stacks: bool = True) -> None:
        self.side = side
        self.stacks = stacks  # capture the user's stack per call (for reports; costs a frame walk)
        self.root = root
        self.roles = roles
        self.owned = owned
        self.errors = errors
        self.events: list[Event] = []
        self.calls: dict[str, int] = {}
        self.active: list[Event] = []  # calls entered and not yet left, outermost first
        self._by_path: dict[str, Any] | None = None

    @classmethod
    def every_layer(cls, side: FrameworkSide, root: Any, errors: HookErrors, *, stacks: bool = True) -> SideRecorder:
        """A recorder of every layer of ``root`` (each under its first path), with no pairing roles."""
        roles: dict[str, Role] = {}
        seen: set[int] = set()
        for path, layer in side.named_layers(root):
            if id(layer) not in seen:
                seen.add(id(layer))
                roles[path] = Role(path, type(layer).__name__, "soft", 0 if not path else path.count(".") + 1)
        return cls(side, root, roles, {}, errors, stacks=stacks)

    def reset(self) -> None:
        """Forget the events of the previous pass."""
        self.events, self.calls, self.active = [], {}, []

    # --- events ---------------------------------------------------------------------------
    def open(self, role: Role) -> Event:
        """A new event for a call of the layer at ``role.path`` that is starting now."""
        call = self.calls.get(role.path, 0)
        self.calls[role.path] = call + 1
        ev = Event(len(self.events), role, call, stack=user_stack() if self.stacks else ())
        self.events.append(ev)
        self.active.append(ev)
        return ev

    def close(self, role: Role) -> Event | None:
        """The innermost open event of ``role``, now finished (None if it was never opened)."""
        for i in range(len(self.active) - 1, -1, -1):
            if self.active[i].role is role:
                ev = self.active[i]
                del self.active[i:]
                return ev
        return None

    # --- hooks ------------------------------------------------------------------------------
    def hooked_layers(self) -> list[tuple[Any, Role]]:
        """``(layer, role)`` of each layer that takes part, once per layer object."""
        out, seen = [], set()
        for path, layer in self.side.named_layers(self.root):
            role = self.roles.get(path)
            if role is None or id(layer) in seen:
                continue
            seen.add(id(layer))
            out.append((layer, role))
        return out

    def install(self, hooks: HookSet, before: Before | None = None, after: After | None = None) -> None:
        """Hook every layer that takes part: events open and close around each call, with the callbacks."""
        for layer, role in self.hooked_layers():
            def pre(lay: Any, args: tuple[Any, ...], kwargs: dict[str, Any], role: Role = role) -> Any:
                ev = self.open(role)
                return before(ev, args, kwargs) if before is not None else None

            def post(lay: Any, args: tuple[Any, ...], out: Any, role: Role = role) -> None:
                ev = self.close(role)
                if ev is not None and after is not None:
                    after(ev, args, out)

            hooks.add(self.side.add_pre_hook(layer, self.errors.guard(pre)))
            hooks.add(self.side.add_post_hook(layer, self.errors.guard(post)))

    def hook_output_grads(self, hooks: HookSet, ev: Event, outputs: list[Any],
                          make_hook: Callable[[int, Any], Callable[[Any], Any]]) -> None:
        """For each output that can carry a gradient, ``make_hook(i, tensor)`` is hooked on its gradient."""
        for i, t in enumerate(outputs):
            if self.side.carries_grad(t):
                ev.grad_hooked.add(i)
                hooks.add(self.side.add_grad_hook(t, make_hook(i, t)))

    # --- the model tree -----------------------------------------------------------------------
    def layer_table(self) -> dict[str, Any]:
        """``{path: layer}``, built by one walk of the tree per run (resnet50: ~160 look-ups, ~300 layers)."""
        if self._by_path is None:
            self._by_path = {}
            for p, layer in self.side.named_layers(self.root):
                self._by_path.setdefault(p, layer)
        return self._by_path

    def layer_at(self, path: str) -> Any:
        """The layer at ``path``; a path that is not in the model is a padiff bug."""
        table = self.layer_table()
        if path in table:
            return table[path]
        raise PadiffInternalError(f"no {self.side.name} layer at {path!r}")

    def raising_layer(self, exc: BaseException) -> tuple[str, str] | None:
        """``(path, class)`` of the innermost layer of this model whose code is in ``exc``'s traceback,
        else of the innermost call still open; None if neither is known."""
        paths: dict[int, str] = {}
        for path, layer in self.side.named_layers(self.root):
            paths.setdefault(id(layer), path)
        found = None
        tb = exc.__traceback__
        while tb is not None:
            obj = tb.tb_frame.f_locals.get("self")
            if obj is not None and id(obj) in paths:
                found = (paths[id(obj)], type(obj).__name__)
            tb = tb.tb_next
        if found is None and self.active:
            inner = self.active[-1].role
            found = (inner.path, inner.cls)
        return found
