"""The text a porting engineer reads when ``assign_weight`` cannot pair or copy.

Builds a :class:`WeightAssignError` carrying both the message (paths, classes, shapes,
both model trees with the failing layer marked ``<--- *** HERE ***`` and passed-over
layers marked ``(skip)``, hints) and the same facts as attributes, so renderers never
parse the text: ``paddle_path``, ``torch_path``, ``paddle_class``, ``torch_class``,
``paddle_shapes``, ``torch_shapes``, ``reason``, ``paddle_tree``, ``torch_tree``, ``hints``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from padiff.adapters import PADDLE, TORCH, Side, StateEntry
from padiff.errors import WeightAssignError
from padiff.maps.types import ResolvedMap
from padiff.names import depth as path_depth
from padiff.names import is_strictly_within, show
from padiff.weights.pair_plan import fmt_state, set_error_fields
from padiff.weights.special_init import registered_names

HERE = "<--- *** HERE ***"
MAX_TREE_LINES = 120  # longer trees are cut around the marked layer
CONTEXT_LINES = 25


@dataclass
class TreeMarks:
    """What to write after each layer of one model's tree."""

    here: str | None = None
    paired: dict[str, str] = field(default_factory=dict)  # path -> partner path
    skipped: set[str] = field(default_factory=set)  # passed over: no own weights, or ignored
    ignored: set[str] = field(default_factory=set)
    covered: set[str] = field(default_factory=set)  # inside a mapped (opaque / special) pair


def tree_text(side: Side, root: Any, marks: TreeMarks) -> str:
    """Indented tree of ``root`` (root class name first), marked; cut around HERE when long."""
    lines: list[str] = []
    here_idx: list[int] = []
    for path, obj in side.named_layers(root):
        depth = path_depth(path)
        label = type(obj).__name__ if path == "" else f"{path.rpartition('.')[2]} ({type(obj).__name__})"
        note = ""
        if path == marks.here:
            note = "  " + HERE
            here_idx.append(len(lines))
        elif path in marks.ignored:
            note = "  (skip) ignored by the layer map"
        elif path in marks.covered:
            note = "  (inside a mapped pair)"
        elif path in marks.paired:
            note = f"  [paired with {show(marks.paired[path])}]"
        elif path in marks.skipped:
            note = "  (skip)"
        lines.append("  " * (depth + 1) + label + note)
    if len(lines) > MAX_TREE_LINES:
        keep = {0}
        for i in here_idx or [0]:
            keep.update(range(max(0, i - CONTEXT_LINES), min(len(lines), i + CONTEXT_LINES + 1)))
        out, last = [], -1
        for i in sorted(keep):
            if i != last + 1:
                out.append("    ...")
            out.append(lines[i])
            last = i
        if last != len(lines) - 1:
            out.append("    ...")
        lines = out
    return "\n".join(lines)


def skip_marks(side: Side, root: Any, resolved: ResolvedMap, owned: Mapping[str, list[StateEntry]],
               covered_tops: list[str]) -> TreeMarks:
    """Marks for the layers assign passed over on one side (before HERE/paired are known)."""
    marks = TreeMarks()
    for path, obj in side.named_layers(root):
        if any(is_strictly_within(path, top) for top in covered_tops):
            marks.covered.add(path)
        elif resolved.skipped(side.name, path):
            marks.ignored.add(path)
        elif path not in owned and not side.children(obj):
            marks.skipped.add(path)
    return marks


def _special_hint(p_class: str, t_class: str) -> list[str]:
    """Point at a built-in or registered special init one of the two classes takes part in."""
    out = []
    for p_name, t_name in registered_names():
        if (p_name == p_class) != (t_name == t_class):
            mine = f"paddle {p_class}" if p_name == p_class else f"torch {t_class}"
            other = f"torch {t_name}" if p_name == p_class else f"paddle {p_name}"
            out.append(f"{mine} has a special init with {other}: pair those two with layer_map={{paddle_layer: "
                       "torch_module}, or let LayerMap().auto(layer, module) find such pairs.")
    return out[:2]


def hints(p_class: str, t_class: str) -> list[str]:
    """What a porting engineer can do about a pairing failure."""
    return [*_special_hint(p_class, t_class),
        "Layers holding weights are paired in definition order (the order of the assignments in __init__), "
        "passing over layers without weights; define them in the same order on both sides, or map the ones "
        "that differ.",
        "Parameter, buffer and embedding styles must correspond: a weight held as a raw Parameter on one side and "
        "inside a Linear/Embedding on the other, or a buffer on one side and a parameter on the other, breaks "
        "one-to-one pairing.",
        "Pass layer_map={layer.x: module.y} or a padiff.LayerMap (skip extra layers with LayerMap.ignore / "
        "ignore_recursively / ignore_class), or layer_map=\"auto\" to let padiff propose the map.",
        f"If the two layers correspond but their tensors do not map one by one, register a converter: "
        f"padiff.add_special_init(paddle_name={p_class!r}, torch_name={t_class!r}, func=init) with "
        "init(paddle_layer, torch_module) copying the weights.",
    ]


def build_error(layer: Any, module: Any, p_path: str | None, t_path: str | None, reason: str,
                p_marks: TreeMarks, t_marks: TreeMarks,
                p_state: list[StateEntry] | None = None, t_state: list[StateEntry] | None = None,
                cause: BaseException | None = None) -> WeightAssignError:
    """The full error: headline, both sides with shapes, reason, both trees, hints; fields attached."""
    p_layers, t_layers = dict(PADDLE.named_layers(layer)), dict(TORCH.named_layers(module))
    p_class = type(p_layers[p_path]).__name__ if p_path is not None else ""
    t_class = type(t_layers[t_path]).__name__ if t_path is not None else ""
    p_marks.here, t_marks.here = p_path, t_path
    p_tree = tree_text(PADDLE, layer, p_marks)
    t_tree = tree_text(TORCH, module, t_marks)
    tips = hints(p_class or "PaddleClass", t_class or "TorchClass")

    def side_line(name: str, path: str | None, cls: str, state: list[StateEntry] | None) -> str:
        if path is None:
            return f"  {name}: (no layer left to pair)"
        shapes = f"  {fmt_state(state)}" if state is not None else ""
        return f"  {name}: {show(path)} ({cls}){shapes}"

    text = "\n".join([
        "assign_weight could not copy the torch weights into the paddle model "
        "(the paddle model was left unchanged).",
        side_line("paddle", p_path, p_class, p_state),
        side_line("torch ", t_path, t_class, t_state),
        f"  reason: {reason}",
        "",
        f"paddle model ({type(layer).__name__}):",
        p_tree,
        "",
        f"torch model ({type(module).__name__}):",
        t_tree,
        "",
        "Hints:",
        *(f"  - {h}" for h in tips),
    ])
    err = WeightAssignError(text)
    set_error_fields(err, p_path or "", p_class, p_state, t_path or "", t_class, t_state, reason)
    err.paddle_tree, err.torch_tree, err.hints = p_tree, t_tree, tips  # type: ignore[attr-defined]
    if cause is not None:
        err.__cause__ = cause
    return err
