"""The package's layers, read from the source with ast: base modules at the bottom import nothing
from pipeline/, stages sit above them, the CLI on top; no import cycles.

Every import counts, also one inside a function (a lazy import is still a dependency)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__")

# Import nothing from pipeline/: errors, ids and constants, strict YAML, vector maths, colours, and two
# helpers with no project knowledge (progress bars, numba's cache).
BASE = {"errors", "ids", "yaml_io", "vectors", "colours", "progress", "numba_cache"}
# Schemas, params and the encoder's file format: above the base modules, below every stage.
CORE = {"records", "params", "encoder"}


def imports_of(module: str) -> set[str]:
    """pipeline/ modules that `module` imports (anywhere in the file), itself left out."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "pipeline":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("pipeline."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("pipeline."))
    return {name for name in found if name in MODULES} - {module}


GRAPH = {module: imports_of(module) for module in MODULES}


def test_the_layer_lists_name_real_modules():
    assert BASE | CORE <= set(MODULES)


@pytest.mark.parametrize("module", sorted(BASE))
def test_base_modules_import_nothing_from_pipeline(module):
    assert GRAPH[module] == set(), f"pipeline/{module}.py is a base module but imports {sorted(GRAPH[module])}"


@pytest.mark.parametrize("module", sorted(CORE))
def test_core_modules_import_only_base_modules(module):
    assert GRAPH[module] <= BASE, f"pipeline/{module}.py imports {sorted(GRAPH[module] - BASE)} above the base"


def test_nothing_imports_the_cli():
    assert not [module for module, imported in GRAPH.items() if "cli" in imported]


def test_every_error_class_is_an_innsikt_error():
    """One base class, which the CLI catches: an error class outside it would print a traceback."""
    strays = []
    for module in MODULES:
        for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and node.name != "InnsiktError":
                bases = {ast.unparse(base) for base in node.bases}
                if not bases & {"InnsiktError"} and not any(b.endswith("Error") for b in bases):
                    strays.append(f"{module}.{node.name}({', '.join(sorted(bases))})")
    assert not strays


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_readme_names_every_module_in_dependency_order():
    """README "Where things are": one row per module (or a few), each importing only rows above or its own."""
    import re

    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    row_of: dict[str, int] = {}
    for number, line in enumerate(section.splitlines()):
        if line.startswith("| `"):
            for name in re.findall(r"`(\w+)\.py`", line.split("|")[1]):
                row_of[name] = number
    assert sorted(row_of) == MODULES
    late = {module: sorted(name for name in GRAPH[module] if row_of[name] > row_of[module]) for module in MODULES}
    assert {module: names for module, names in late.items() if names} == {}
