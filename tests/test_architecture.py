"""The layering the code must keep, read from the source with ``ast`` (no module is imported).

Every ``import`` statement counts, also those inside function bodies (an import moved into
a function to dodge a cycle is still a cycle). ``if TYPE_CHECKING:`` blocks are skipped:
they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import padiff

ROOT = Path(padiff.__file__).parent
FRAMEWORKS = ("paddle", "torch", "paddle2onnx")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _executed(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (type-only imports never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        yield node
        todo.extend(ast.iter_child_nodes(node))


@cache
def _imports(module: str) -> tuple[str, ...]:
    """Absolute names ``module`` imports.

    ``from a import b`` names ``a.b`` when that is a module (a submodule of a package), else
    ``a`` (a name defined in ``a``).
    """
    path = _modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in _executed(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                head = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*head, base] if base else head)
            out += [f"{base}.{a.name}" if f"{base}.{a.name}" in _modules() else base for a in node.names]
    return tuple(out)


def _own(name: str) -> str | None:
    """The padiff module ``name`` refers to (``padiff.x.y.func`` -> ``padiff.x.y``), if any."""
    mods = _modules()
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for mod in _modules():
        targets = {_own(n) for n in _imports(mod) if n.startswith("padiff")}
        graph[mod] = {t for t in targets if t and t != mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_padiff_modules():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (counting imports inside functions): " + "; ".join(" <-> ".join(c)
                                                                                        for c in cycles)


def _importers_of(prefixes: tuple[str, ...], where: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for mod in _modules():
        if not mod.startswith(where):
            continue
        bad = sorted({n for n in _imports(mod) if n == prefixes or n.startswith(prefixes)})
        if bad:
            out[mod] = bad
    return out


def test_records_renderers_and_map_files_import_nothing_from_the_runtime():
    # data first, rendering last: reports read records; the map types, codec, file text,
    # review and diff need no engine (padiff/layer_map.py, the facade that also resolves a
    # map against live models, is not one of them)
    found = _importers_of(("padiff.runtime", "padiff.graph", "padiff.api"), ("padiff.report", "padiff.maps"))
    assert found == {}


# Modules besides the adapters and graph/export_* that import a framework, and why (none today:
# the op recorders are adapters, the paddle2onnx child process is graph/export_paddle_child).
FRAMEWORK_EXCEPTIONS: dict[str, str] = {}


def test_framework_imports_only_in_the_adapters_and_exporters():
    found = _importers_of(FRAMEWORKS, ("padiff",))
    allowed = {m for m in found if m.startswith(("padiff.adapters", "padiff.graph.export_"))}
    unexpected = {m: names for m, names in found.items() if m not in allowed and m not in FRAMEWORK_EXCEPTIONS}
    assert unexpected == {}
    stale = sorted(set(FRAMEWORK_EXCEPTIONS) - set(found))
    assert not stale, f"no longer import a framework, drop them from FRAMEWORK_EXCEPTIONS: {stale}"


def test_layering_rules_see_imports_inside_functions_and_skip_type_checking(tmp_path):
    src = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n"
           "def f():\n    from padiff.runtime import engine\n")
    names = [n for node in _executed(ast.parse(src)) if isinstance(node, ast.ImportFrom | ast.Import)
             for n in ([node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])]
    assert names == ["typing", "padiff.runtime"] or sorted(names) == ["padiff.runtime", "typing"]


def _folder(module: str) -> str:
    """``padiff.graph.match`` -> ``graph``; a top-level module (``padiff.api``) is its own folder."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "padiff"


def _folder_graph() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mod, targets in _graph().items():
        out.setdefault(_folder(mod), set()).update(_folder(t) for t in targets if _folder(t) != _folder(mod))
    return out


def test_no_import_cycle_between_folders():
    # a folder is a layer: errors/names/options < adapters < compare < maps < report < weights < layer_map
    # < graph < runtime < offline < api; an import pointing back down a cycle means a file is in the wrong folder
    cycles = _cycles(_folder_graph())
    assert not cycles, "folder cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_folder_cycle_finder_sees_a_folder_cycle():
    assert _folder("padiff.graph.match") == "graph" and _folder("padiff.api") == "api"
    assert _cycles({"graph": {"runtime"}, "runtime": {"layer_map"}, "layer_map": {"graph"}})


def test_comparison_core_imports_no_framework_no_engine_no_adapter():
    # the comparison core is shared by the live engine and the offline reader: it sees host arrays only
    found = _importers_of((*FRAMEWORKS, "padiff.runtime", "padiff.adapters", "padiff.offline", "padiff.graph"),
                          ("padiff.compare",))
    assert found == {}


def test_weight_plans_do_not_import_the_engine_or_the_aligner():
    # assign_weight, auto_weights and import_weights share the plans; the engine and the aligner sit above them
    found = _importers_of(("padiff.runtime", "padiff.graph", "padiff.offline", "padiff.api", "padiff.layer_map"),
                          ("padiff.weights",))
    assert found == {}
