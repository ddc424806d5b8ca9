"""Settling the orientation of square 2-D weights by numbers, never by shape.

A square weight whose layout no framework convention gives (:mod:`padiff.weights.layouts`)
may be used as ``x @ W`` on one side and ``x @ W.T`` on the other; its shape cannot tell.
Two ways to settle it, both refusing rather than guessing:

- :func:`settle_by_forward` (copying weights): the torch tensors in doubt are set to random
  values, the paddle layer gets each candidate conversion, and both layers run alone on the
  same random input (eval mode, no gradients); the candidate whose outputs agree wins. Both
  models are put back exactly (values, buffers, modes, random state) whatever happens.
- :func:`settle_by_values` (comparing gradients and trained weights of models already holding
  the same weights): the candidate under which the paddle value equals the torch value wins.

When no candidate or more than one agrees, :class:`WeightAssignError` names the layers and
says how to state the orientation (a parameter pair with ``conversion`` in the map).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from padiff.adapters import PADDLE, TORCH, StateEntry
from padiff.adapters.snapshot import SideSnapshot
from padiff.errors import WeightAssignError
from padiff.names import show
from padiff.weights.plan import Link, set_error_fields

MAX_IN_DOUBT = 4  # 2**4 candidate forwards at most; more weights in doubt in one layer: refuse
_TRIAL_SHAPES = ((4,), (2, 3))  # leading dims of the random input tried, the weight's size last


def _copy(arrs: list[np.ndarray]) -> np.ndarray:
    return arrs[0]


def _transpose(arrs: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(arrs[0].T)


def _candidate(link: Link, transpose: bool, how: str) -> Link:
    fn: Callable[[list[np.ndarray]], np.ndarray] = _transpose if transpose else _copy
    what = "transpose" if transpose else "copy"
    return Link(link.paddle_name, link.torch_names, f"{what} (square weight, orientation {how})", fn)


def _close(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    if len(a) != len(b) or not a:
        return False
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return False
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        scale = float(np.max(np.abs(y64))) if y64.size else 0.0
        if not np.all(np.isfinite(x64)) or not np.allclose(x64, y64, rtol=1e-3, atol=1e-4 * max(scale, 1e-6)):
            return False
    return True


def _short(e: Exception) -> str:
    """The first line of an exception, cut to a readable length."""
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first[:160]}"


def _refuse(p_path: str, p_layer: Any, p_state: list[StateEntry], t_path: str, t_layer: Any,
            t_state: list[StateEntry], names: Sequence[str], why: str) -> WeightAssignError:
    p_class, t_class = type(p_layer).__name__, type(t_layer).__name__
    reason = (f"the square weight(s) {', '.join(names)} of paddle {show(p_path)} ({p_class}) may be held as torch "
              f"{show(t_path)} ({t_class}) holds them or transposed, and no framework convention says which; "
              f"{why}. State it in the map: a parameter pair for each such weight with conversion='copy' or "
              "'transpose'")
    err = WeightAssignError(f"cannot settle a weight's orientation: {reason}.")
    set_error_fields(err, p_path, p_class, p_state, t_path, t_class, t_state, reason)
    return err


def settle_by_forward(links: list[Link], doubt: Sequence[str], p_path: str, p_layer: Any,
                      p_state: list[StateEntry], t_path: str, t_layer: Any, t_state: list[StateEntry]) -> list[Link]:
    """``links`` with each paddle weight named in ``doubt`` copied or transposed as one forward of both layers shows."""
    if len(doubt) > MAX_IN_DOUBT:
        raise _refuse(p_path, p_layer, p_state, t_path, t_layer, t_state, doubt,
                      f"{len(doubt)} such weights in one layer are too many to try every orientation")
    p_snap = SideSnapshot.take(PADDLE, p_layer, None, keep_values=True)
    t_snap = SideSnapshot.take(TORCH, t_layer, None, keep_values=True)
    try:
        return _try_all(links, doubt, p_path, p_layer, p_state, t_path, t_layer, t_state)
    finally:
        t_snap.restore()
        p_snap.restore()


def _try_all(links: list[Link], doubt: Sequence[str], p_path: str, p_layer: Any, p_state: list[StateEntry],
             t_path: str, t_layer: Any, t_state: list[StateEntry]) -> list[Link]:
    for side, root in ((PADDLE, p_layer), (TORCH, t_layer)):
        for _, sub in side.named_layers(root):
            side.set_training(sub, False)
    rng = np.random.default_rng(0)
    p_by, t_by = {e.name: e.tensor for e in p_state}, {e.name: e.tensor for e in t_state}
    in_doubt = [lk for lk in links if lk.paddle_name in doubt]
    for lk in in_doubt:  # separating values: a random matrix is never its own transpose
        t = t_by[lk.torch_names[0]]
        n = TORCH.shape(t)[0]
        TORCH.set_value(t, (rng.standard_normal(TORCH.shape(t)) / np.sqrt(n)).astype(np.float32))
    t_arrays = {e.name: TORCH.to_numpy(e.tensor) for e in t_state}
    size = PADDLE.shape(p_by[in_doubt[0].paddle_name])[0]
    agreeing: list[list[Link]] = []
    tried_input = False
    errors: list[str] = []
    for lead in _TRIAL_SHAPES:
        x = rng.standard_normal((*lead, size)).astype(np.float32)
        try:
            want = TORCH.run_alone(t_layer, [x])
        except Exception as e:  # noqa: BLE001 - a layer that takes another input: try the next shape
            errors.append(f"torch: {_short(e)}")
            continue
        for flips in itertools.product((False, True), repeat=len(in_doubt)):
            choice = {lk.paddle_name: f for lk, f in zip(in_doubt, flips)}
            cand = [_candidate(lk, choice[lk.paddle_name], "confirmed by a forward") if lk.paddle_name in choice
                    else lk for lk in links]
            for lk in cand:
                if all(n in t_arrays for n in lk.torch_names) and lk.paddle_name in p_by:
                    PADDLE.set_value(p_by[lk.paddle_name], lk.fn([t_arrays[n] for n in lk.torch_names]))
            try:
                got = PADDLE.run_alone(p_layer, [x])
            except Exception as e:  # noqa: BLE001 - the paddle layer takes another input: next shape
                errors.append(f"paddle: {_short(e)}")
                break
            tried_input = True
            if _close(got, want):
                agreeing.append(cand)
        if tried_input:
            break
    if not tried_input:
        raise _refuse(p_path, p_layer, p_state, t_path, t_layer, t_state, doubt,
                      "padiff could not run the two layers alone on a random input to check ("
                      + "; ".join(dict.fromkeys(errors[:2])) + ")")
    if len(agreeing) != 1:
        why = ("the layers' outputs agree under no orientation (they compute different things)" if not agreeing
               else "the layers' outputs agree under several orientations (the weight does not reach the output)")
        raise _refuse(p_path, p_layer, p_state, t_path, t_layer, t_state, doubt, why)
    return agreeing[0]


def settle_by_values(links: list[Link], doubt: Sequence[str], p_path: str, p_layer: Any,
                     p_state: list[StateEntry], t_path: str, t_layer: Any, t_state: list[StateEntry]) -> list[Link]:
    """``links`` with each weight in ``doubt`` oriented as the paddle value equals the torch value (models in step)."""
    p_by, t_by = {e.name: e.tensor for e in p_state}, {e.name: e.tensor for e in t_state}
    out = []
    for lk in links:
        if lk.paddle_name not in doubt:
            out.append(lk)
            continue
        p = PADDLE.to_numpy(p_by[lk.paddle_name])
        t = TORCH.to_numpy(t_by[lk.torch_names[0]])
        fits = [f for f in (False, True) if _close([p], [t.T if f else t])]
        if len(fits) != 1:
            why = ("the paddle and torch values are equal under no orientation (the models do not hold the same "
                   "weights)" if not fits else "the value is symmetric, so the values cannot tell")
            raise _refuse(p_path, p_layer, p_state, t_path, t_layer, t_state, [lk.paddle_name], why)
        out.append(_candidate(lk, fits[0], "read from the equal values"))
    return out
