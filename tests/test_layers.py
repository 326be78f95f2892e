"""The import structure: no cycle between the project's modules, and layers that point one way
(DESIGN.md, "Repository layout"): commands/ (what the CLIs share) imports nothing else of ours;
model/ imports none of stream/, export/ or the trainer (model/train/, which may import the rest
of model/); export/ never imports stream/; stream/ never imports the trainer. Every import
counts, at module level or inside a function."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAINER = "mmgat.model.train"
# importer (a package, and every module under it) -> packages it must not import; the longest
# matching importer wins (the trainer is under model/ but has rules of its own).
FORBIDDEN = {
    "mmgat.commands": ("mmgat.model", "mmgat.stream", "mmgat.export"),
    "mmgat.model": ("mmgat.stream", "mmgat.export", TRAINER),
    TRAINER: ("mmgat.stream",),
    "mmgat.export": ("mmgat.stream",),
    "mmgat.stream": (TRAINER,),
}

def project_modules() -> dict[str, Path]:
    """mmgat.* module name -> file, through pyproject's package-dir."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = {}
    for package, folder in tool["package-dir"].items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def imported_modules(name: str, path: Path, modules) -> set[str]:
    """The project modules `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importer's package up
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from package import module` imports the module; `from module import name` the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target.startswith("mmgat"))
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def forbidden_for(name: str) -> tuple[str, ...]:
    owners = [package for package in FORBIDDEN if under(name, package)]
    return FORBIDDEN[max(owners, key=len)] if owners else ()


def layer_violations(name: str, imports: set[str]) -> list[str]:
    return sorted(target for target in imports for package in forbidden_for(name) if under(target, package))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


GRAPH = import_graph()


def test_the_project_modules_are_found():
    assert {"mmgat.stream.cli", "mmgat.model.graph", "mmgat.export.artifact",
            "mmgat.model.train.fit"} <= set(GRAPH)
    assert "mmgat.model.graph" in GRAPH["mmgat.stream.stream"]
    assert "mmgat.stream.sources" in GRAPH["mmgat.stream.cli"]  # imported inside a function


def test_the_checks_can_fail():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_violations("mmgat.model.audio", {"mmgat.stream.stream"}) == ["mmgat.stream.stream"]
    assert layer_violations("mmgat.model.train.fit", {"mmgat.export.onnx", "mmgat.model.audio"}) == []
    assert layer_violations("mmgat.stream.cli", {"mmgat.model.train.data"}) == ["mmgat.model.train.data"]
    assert layer_violations("mmgat.commands.install", {"mmgat.model.audio"}) == ["mmgat.model.audio"]


def test_no_import_cycle_between_modules():
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_follow_the_layers(name):
    assert layer_violations(name, GRAPH[name]) == []
