"""The layout rules of docs/architecture.md, read from the source: inference never imports
training, no import cycles (imports inside functions count), no private name imported across
modules."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"inference": "xinwen.inference", "training": "xinwen.training"}


def module_files() -> dict[str, Path]:
    modules = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, str]]:
    """``(module, name)`` pairs imported by ``path`` from our packages; name is '' for a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name in modules]
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.append((child, "") if child in modules else (node.module, alias.name))
    return found


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = module_files()
    graph, private = {}, []
    for name, path in modules.items():
        pairs = imports_of(path, modules)
        graph[name] = {module for module, _ in pairs if module != name}
        private += [f"{name} imports {module}.{imported}" for module, imported in pairs
                    if imported.startswith("_") and module != name]
    return graph, private


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_graph_sees_function_level_imports():
    # the reader itself: a cycle through an import inside a function must be found
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    graph, _ = import_graph()
    assert "xinwen.training.topic.train" in graph["xinwen.training.cli"]  # imported inside _cmd_train


def test_no_import_cycles_in_inference_or_training():
    graph, _ = import_graph()
    assert find_cycle(graph) is None


def test_inference_never_imports_training():
    graph, _ = import_graph()
    wrong = [f"{m} -> {d}" for m, deps in graph.items() if m.startswith("xinwen.inference")
             for d in deps if d.startswith("xinwen.training")]
    assert wrong == []


def test_no_private_name_is_imported_across_modules():
    _, private = import_graph()
    assert private == []
