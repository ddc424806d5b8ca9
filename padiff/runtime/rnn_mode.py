"""Recurrent layers in eval mode: paddle's CPU kernel has no backward for them.

paddle runs ``nn.LSTM`` / ``nn.GRU`` / ``nn.SimpleRNN`` as one fused ``rnn`` kernel. In eval
mode on CPU its forward keeps no reserve space, so the backward fails inside paddle with
"Tensor holds no memory". In train mode with ``dropout=0`` the layer computes exactly what it
computes in eval mode (dropout only acts between stacked layers) and its backward runs.

- :func:`eval_rnn_hint`: the message padiff gives when a backward failed that way (recognised
  from the model holding such a layer in eval mode and that error, not from a model name);
- :func:`rnn_train_mode`: the fix for one run: every recurrent layer of both models in train
  mode with dropout 0 inside the block, modes and dropout put back afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from padiff.adapters import PADDLE, TORCH, FrameworkSide

#: what paddle's CPU rnn kernel says when its backward runs after an eval-mode forward
EVAL_RNN_ERROR = "holds no memory"


def eval_rnn_layers(side: FrameworkSide, root: Any) -> list[str]:
    """``"path (Class)"`` of each recurrent layer of ``root`` that is in eval mode."""
    rnn_layers = getattr(side, "rnn_layers", None)
    if not callable(rnn_layers):
        return []
    return [f"{path or '<root>'} ({type(lay).__name__})" for path, lay in rnn_layers(root)
            if not side.is_training(lay)]


def eval_rnn_hint(side: FrameworkSide, root: Any, exc: BaseException) -> str | None:
    """What to do when ``exc`` (raised by ``side``'s backward) is paddle's eval-mode RNN failure, else None."""
    if side.name != "paddle" or EVAL_RNN_ERROR not in str(exc):
        return None
    layers = eval_rnn_layers(side, root)
    if not layers:
        return None
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"paddle cannot run the backward of a recurrent layer in eval mode on CPU ({type(exc).__name__}: "
            f"{first}); in eval mode here: {', '.join(layers)}. Run them in train mode with dropout 0 for this "
            "check, which computes the same as eval mode: `with padiff.rnn_train_mode(layer, module): ...` "
            "around the padiff call does that on both models and puts modes and dropout back afterwards. Or "
            "compare the forward pass only: options={'diff_phase': 'forward'}.")


@contextlib.contextmanager
def rnn_train_mode(*models: Any) -> Iterator[list[str]]:
    """Inside the block, every recurrent layer (LSTM, GRU, simple RNN) of ``models`` is in train mode
    with dropout 0; afterwards each gets its own mode and dropout back, also when the block raised.

    Why: paddle's CPU backward of these layers fails in eval mode, and train mode with dropout 0
    computes what eval mode computes. Yields ``"framework path (Class)"`` of each layer switched.
    """
    saved: list[tuple[Any, bool, Any]] = []
    changed: list[str] = []
    try:
        for model in models:
            side = next((s for s in (PADDLE, TORCH) if s.is_model(model)), None)
            if side is None:
                continue
            for path, lay in side.rnn_layers(model):
                saved.append((lay, bool(lay.training), lay.dropout))
                if not lay.training or lay.dropout:
                    changed.append(f"{side.name} {path or '<root>'} ({type(lay).__name__})")
                lay.train()
                lay.dropout = 0.0
        yield changed
    finally:
        for lay, training, dropout in reversed(saved):
            lay.train() if training else lay.eval()
            lay.dropout = dropout
