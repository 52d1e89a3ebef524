"""The package's import graph (issue 15): layers import only downwards, no module cycles, and every
function-local import says why in a comment.

The graph comes from the source (``ast``), not from importing it, so optional dependencies need not be
installed. Every import counts, at module level or inside a function: a function-local import that closes
a cycle is still a cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "worldstereo_ros"

#: Layer -> the layers it may import (besides itself). The one table of allowed directions; the layer
#: diagram in docs/architecture.md draws the same. "base" is the package root (errors, snapshot, validation);
#: "interfaces" the generated worldstereo_ros.msg / worldstereo_ros.action.
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "interfaces": set(),
    "geometry": {"base"},
    "datasets": {"base", "geometry"},
    "memory": {"base", "geometry"},
    # training code reads frames for its examples: datasets/ sits below generation/ (only memory/ beside it)
    "generation": {"base", "geometry", "datasets", "memory"},
    "pipeline": {"base", "geometry", "memory", "generation"},
    # stereo synthesis (SpatialDreamer): rectified-rig rendering whose occlusions a generation backend may fill
    "stereo": {"base", "geometry", "generation"},
    # persistence and exporters: below the edges that write files
    "io": {"base", "geometry", "memory", "pipeline"},
    # the edges: never each other
    "ros": {"base", "interfaces", "geometry", "datasets", "memory", "generation", "pipeline", "stereo", "io"},
    "evaluation": {"base", "geometry", "datasets", "memory", "generation", "pipeline", "stereo", "io"},
    # the command line dispatches to every edge
    "cli": {"base", "geometry", "datasets", "memory", "generation", "pipeline", "stereo", "io", "ros", "evaluation"},
}

#: Module cycles whose fix is in flight on another branch (issue 15 names them). Each entry must still be a
#: cycle, so the entry goes as soon as the fix lands.
CYCLES_BEING_FIXED: list[set[str]] = []

_ROOT_LAYER = {"errors": "base", "confinement": "base", "snapshot": "base", "validation": "base",
               "msg": "interfaces", "action": "interfaces"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    name = parts[1]
    return _ROOT_LAYER.get(name, name)


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """worldstereo_ros modules named by one import statement (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "worldstereo_ros"]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source.split(".")[0] != "worldstereo_ros":
        return []
    # "from pkg import sub" imports a submodule when one exists, else a name of pkg
    out = []
    for alias in node.names:
        candidate = f"{source}.{alias.name}"
        rel = Path(*candidate.split(".")[1:])
        exists = (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()
        out.append(candidate if exists else source)
    return out


def _sources() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        out[_module_name(path)] = (path, ast.parse(path.read_text(), str(path)))
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in the file)."""
    graph = {}
    for module, (path, tree) in _sources().items():
        is_package = path.name == "__init__.py"
        graph[module] = {t for node in ast.walk(tree) for t in _targets(node, module, is_package) if t != module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue  # generated modules (msg, action) and names outside the source tree
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_layer_is_in_the_table():
    layers = {layer_of(m) for m in import_graph()}
    assert layers <= set(ALLOWED), f"modules in layers the table does not know: {layers - set(ALLOWED)}"


def test_imports_point_down_the_layers():
    upward = sorted(f"{m} -> {t}  ({layer_of(m)} may not import {layer_of(t)})"
                    for m, targets in import_graph().items() for t in targets
                    if layer_of(t) != layer_of(m) and layer_of(t) not in ALLOWED[layer_of(m)])
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    unexpected = [sorted(c) for c in cycles if c not in CYCLES_BEING_FIXED]
    assert not unexpected, f"import cycles: {unexpected}"
    fixed = [sorted(c) for c in CYCLES_BEING_FIXED if c not in cycles]
    assert not fixed, f"no longer cycles, remove them from CYCLES_BEING_FIXED: {fixed}"


def test_the_checks_can_fail():
    # a small graph with an upward edge and a cycle, through the same functions the tests above use
    graph = {"worldstereo_ros.geometry.a": {"worldstereo_ros.memory.b"},
             "worldstereo_ros.memory.b": {"worldstereo_ros.geometry.a"}}
    assert find_cycles(graph) == [set(graph)]
    assert "memory" not in ALLOWED[layer_of("worldstereo_ros.geometry.a")]
    assert layer_of("worldstereo_ros.errors") == "base" and layer_of("worldstereo_ros.ros.tf") == "ros"


_IMPORT_LINE = re.compile(r"^\s*(from\s+\S+\s+import\b|import\s)")


def test_function_local_imports_say_why():
    """A function-local import needs a comment on its line or just above its block of imports."""
    missing = []
    for module, (path, tree) in _sources().items():
        lines = path.read_text().splitlines()
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                row = node.lineno - 1
                if "#" in lines[row]:
                    continue
                above = row - 1
                while above >= 0 and (_IMPORT_LINE.match(lines[above]) or not lines[above].strip()):
                    above -= 1
                if above < 0 or not lines[above].strip().startswith("#"):
                    missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {lines[row].strip()}")
    assert not missing, "function-local imports without a reason in a comment:\n" + "\n".join(sorted(set(missing)))


@pytest.mark.parametrize("limit", [450])
def test_no_module_over_the_line_limit(limit):
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > limit}
    assert not long, f"modules over {limit} lines: {long}"
