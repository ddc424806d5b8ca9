"""Map files as text: YAML or JSON, with the header that explains how to edit, and line numbers.

The extension picks the format (``.yaml``/``.yml`` or ``.json``). Reading keeps where each
entry sits (``{(section, index): line}``) so errors point into the file; a key given twice
in one YAML entry is an error (PyYAML would keep the last silently). Writing goes to a
temporary name and is moved into place, so an error never leaves a half-written file
where the user's previous map was. No models, no framework.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from padiff.errors import MapFileError, PadiffError
from padiff.maps.types import LOW_CONFIDENCE
from padiff.report.files import atomic_write

YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)

YAML_HEADER = """\
# padiff layer map (format version {version}).
#
# Which paddle sublayer corresponds to which torch submodule. Paths are what
# named_sublayers() / named_modules() print; the root model is "".
#
# How to edit:
#   - pairs:    layers compared one by one. Fix a wrong pair by editing paddle_path or
#               torch_path; delete an entry to stop pairing it; add one with just the
#               two paths (classes and shapes are filled in from the models on load).
#               confidence < {low} means the proposal is unsure: check those first.
#               compare_output: false copies weights but does not compare outputs.
#               One layer against several (fused qkv_proj vs q/k/v_proj): give the split
#               side's path as a list, in the order their outputs concatenate (along
#               axis, default -1), e.g. torch_path: [q_proj, k_proj, v_proj]. groups: G
#               when the parts are interleaved in G runs [q_0, k_0, v_0, q_1, ...] (a
#               grouped-query qkv fused per key-value head); default 1, one after another.
#   - params:   parameter against parameter (raw parameters standing for several layers,
#               X2Paddle style): paddle_param w0, torch_param fc1.weight, conversion
#               auto|copy|transpose. Values are copied, grads and values compared.
#   - map:      opaque pairs: only their outputs are compared, not their insides, and
#               their weights are copied by a special init (padiff.add_special_init).
#   - ignores:  side paddle|torch, kind self (skip the layer, still look inside),
#               recursive (skip it and its insides) or class (skip every instance of
#               cls under path).
#   - unpaired and baseline are for reading only: what could not be paired and why,
#     and what plain definition-order pairing would have done.
# Load it with padiff.LayerMap.load(path, layer, module), which checks every entry
# against the models, or review it with `padiff review {name}`.
"""



def read_text(path: str) -> str:
    """The text of map file ``path``; a missing or unreadable file is a :class:`MapFileError` saying what to do."""
    format_of(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise MapFileError(f"map file {path} does not exist; create one with `padiff suggest FILE.py:FUNC --out "
                           f"{path}` or LayerMap.save().") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MapFileError(f"cannot read map file {path}: {exc}") from None


def write_text(path: str, data: Mapping[str, Any]) -> None:
    """Write the map dict ``data`` to ``path`` in the format its extension names, atomically."""
    text = to_yaml(data, os.path.basename(path)) if format_of(path) == "yaml" else to_json(data)
    try:
        atomic_write(path, text, make_dirs=False, what="the layer map")
    except OSError as exc:  # OutputPathError names the path and why; a map error to the caller
        raise MapFileError(str(exc) if isinstance(exc, PadiffError) else f"cannot write {path}: {exc}.") from None


def parse_text(text: str, fmt: str, label: str = "map text") -> tuple[Any, dict[tuple[str, int], int]]:
    """The data of a map file's text (``fmt`` = ``"yaml"`` or ``"json"``) and the line of each entry."""
    if fmt == "json":
        try:
            return json.loads(text), {}
        except json.JSONDecodeError as exc:
            raise MapFileError(f"{label} line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg}). "
                               "Fix the syntax or re-create the file with LayerMap.save().") from None
        except RecursionError:
            raise MapFileError(f"{label}: JSON nested too deeply to be a layer map.") from None
    return _load_yaml(text, label)


def _load_yaml(text: str, label: str) -> tuple[Any, dict[tuple[str, int], int]]:
    import yaml

    loader = None
    try:
        loader = _loader_class()(text)
        node = loader.get_single_node()
        _reject_alias_bombs(node, loader.padiff_aliases, label)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise MapFileError(f"{label}{at}: not valid YAML ({exc.problem or exc}). Fix the syntax (indent entries "
                           "under their section with '- ') or re-create the file with LayerMap.save().") from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise MapFileError(f"{label}: not valid YAML ({type(exc).__name__}: {exc}).") from None
    finally:
        if loader is not None:
            loader.dispose()
    _reject_duplicate_keys(node, label)
    return data, _yaml_lines(node)


#: how many nodes YAML aliases may add to a map file when expanded: a real map needs none (aliases
#: only repeat entries), a few nested aliases in a 1 KB file ("billion laughs") would add billions
MAX_ALIAS_EXPANSION = 100_000


def _loader_class() -> Any:
    """A ``SafeLoader`` that notes every alias it resolves: ``(anchor, line, node)`` in document order."""
    import yaml

    class Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints here
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.padiff_aliases: list[tuple[str, int, Any]] = []

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event() if self.check_event(yaml.AliasEvent) else None
            node = super().compose_node(parent, index)
            if event is not None:
                self.padiff_aliases.append((str(event.anchor), event.start_mark.line + 1, node))
            return node

    return Loader


def _reject_alias_bombs(node: Any, aliases: list[tuple[str, int, Any]], label: str) -> None:
    """Refuse aliases that expand the document past :data:`MAX_ALIAS_EXPANSION` nodes, or refer to
    themselves, naming the alias's line, before anything walks the expanded data.

    Sizes are counted once per distinct node (memoised), so checking takes time linear in the
    file's text, however large the expansion would be.
    """
    import yaml

    if node is None or not aliases:
        return
    size: dict[int, int] = {}
    open_: set[int] = set()

    def count(root: Any) -> int:  # iterative post-order, so deep nesting cannot hit the recursion limit
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            n, done = stack.pop()
            if id(n) in size:
                continue
            kids = ([c for kv in n.value for c in kv] if isinstance(n, yaml.MappingNode)
                    else list(n.value) if isinstance(n, yaml.SequenceNode) else [])
            if done:
                open_.discard(id(n))
                size[id(n)] = min(1 + sum(size[id(c)] for c in kids), 10 * MAX_ALIAS_EXPANSION ** 2)
                continue
            if id(n) in open_:
                raise _cycle(n)
            open_.add(id(n))
            stack.append((n, True))
            for c in kids:
                if id(c) in open_:
                    raise _cycle(c)
                stack.append((c, False))
        return size[id(root)]

    def _cycle(n: Any) -> MapFileError:
        line = next((ln for _a, ln, target in aliases if target is n), n.start_mark.line + 1)
        anchor = next((a for a, _ln, target in aliases if target is n), "?")
        return MapFileError(f"{label} line {line}: the alias *{anchor} refers to an entry that contains it, so "
                            "it never ends; a layer map cannot be recursive. Write the entries out instead.")

    total = count(node)
    if total - len(size) > MAX_ALIAS_EXPANSION:
        anchor, line, target = max(aliases, key=lambda a: size.get(id(a[2]), 0))
        raise MapFileError(
            f"{label} line {line}: the alias *{anchor} expands to {size[id(target)]:,} entries and the file's "
            f"aliases to {total:,} in all (at most {MAX_ALIAS_EXPANSION:,} more than written are allowed). "
            "A layer map needs no aliases: write the entries out, or re-create the file with LayerMap.save().")


def _reject_duplicate_keys(node: Any, label: str) -> None:
    """A key given twice in one mapping is an error naming both lines (PyYAML keeps the last silently)."""
    import yaml

    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        raise MapFileError(
                            f"{label} line {line}: {key.value!r} is given twice in one entry (first on line "
                            f"{seen[key.value]}); keep only the one you mean, padiff does not guess which.")
                    seen[key.value] = line
                todo.append(value)
        elif isinstance(n, yaml.SequenceNode):
            todo.extend(n.value)


def _yaml_lines(node: Any) -> dict[tuple[str, int], int]:
    """``{(section, index): line}`` (1-based) from the composed YAML node tree; -1 = the section key."""
    import yaml

    out: dict[tuple[str, int], int] = {}
    if not isinstance(node, yaml.MappingNode):
        return out
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        out[(str(key.value), -1)] = key.start_mark.line + 1
        if isinstance(value, yaml.SequenceNode):
            for i, item in enumerate(value.value):
                out[(str(key.value), i)] = item.start_mark.line + 1
    return out


def format_of(path: str) -> str:
    lower = path.lower()
    if lower.endswith(YAML_SUFFIXES):
        return "yaml"
    if lower.endswith(JSON_SUFFIXES):
        return "json"
    raise MapFileError(f"{path}: a layer-map file must end in .yaml, .yml or .json (the extension picks the format).")


def to_json(data: Mapping[str, Any]) -> str:
    """Indented JSON with each shape list kept on one line."""
    shapes: dict[str, str] = {}

    def mark(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            out = {}
            for k, v in obj.items():
                if str(k).endswith("_shapes"):
                    token = f"@@padiff-shapes-{len(shapes)}@@"
                    shapes[token] = json.dumps(v)
                    out[k] = token
                else:
                    out[k] = mark(v)
            return out
        if isinstance(obj, list):
            return [mark(v) for v in obj]
        return obj

    text = json.dumps(mark(data), indent=2)
    for token, value in shapes.items():
        text = text.replace(json.dumps(token), value)
    return text + "\n"


# --- YAML writing --------------------------------------------------------------------------
class _Flow(list[Any]):
    """A list written on one line (shapes), so entries stay short and readable."""


def _yaml_dumper() -> type:
    import yaml

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no type hints here
        pass

    Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
    return Dumper


def to_yaml(data: Mapping[str, Any], name: str = "map.yaml") -> str:
    """Block-style YAML with a header explaining how to edit, one commented entry per pair."""
    import yaml

    dumper = _yaml_dumper()

    def dump(obj: Any) -> str:
        return str(yaml.dump(obj, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                             width=110))

    def flowed(entry: Mapping[str, Any]) -> dict[str, Any]:
        return {k: _Flow(_Flow(s) for s in v) if k.endswith("_shapes") else v for k, v in entry.items()}

    out = [YAML_HEADER.format(version=data["version"], name=name, low=LOW_CONFIDENCE)]
    out.append(dump({"version": data["version"], "route": data["route"]}))
    out.append(dump({"notes": data["notes"]}) if data["notes"] else "notes: []\n")
    comments: dict[str, Callable[[int, Mapping[str, Any]], str]] = {
        "pairs": lambda i, e: f"# pairs[{i}]" + ("  LOW CONFIDENCE: check this pair"
                                                  if float(e.get("confidence", 1.0)) < LOW_CONFIDENCE else ""),
        "map": lambda i, e: f"# map[{i}] (opaque)",
    }
    titles = {
        "pairs": "Pairs compared layer by layer",
        "params": "Parameters paired one by one (raw parameters standing for several layers)",
        "map": "Opaque pairs: compared at their tops, weights copied by a special init",
        "ignores": "Layers passed over",
        "unpaired": "Left unpaired by the proposal (for reading; add a pair above to pair one)",
        "baseline": "What plain definition-order pairing would do (for reading)",
    }
    for key in ("pairs", *(("params",) if data.get("params") else ()), "map", "ignores", "unpaired", "baseline"):
        entries = data[key]
        out.append(f"\n# --- {titles[key]} ---\n")
        if not entries:
            out.append(f"{key}: []\n")
            continue
        out.append(f"{key}:\n")
        for i, entry in enumerate(entries):
            if key in comments:
                out.append(comments[key](i, entry) + "\n")
            out.append(dump([flowed(entry) if key in ("pairs", "map", "baseline") else dict(entry)]))
    return "".join(out)


