"""The import rules of docs/architecture.md, read from its layer table and checked on every module of pdiff:
imports go down the table (inside functions and under TYPE_CHECKING too), no two modules import each other
round a circle, and no stage imports another stage."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pdiff"
STAGE_HELPERS = {"pdiff.stages", "pdiff.stages.common"}


def module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = module_files()


def layer_table() -> dict[str, int]:
    """Package → layer number, from the rows of the table in docs/architecture.md."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    layers = {}
    for number, packages in re.findall(r"^\| (\d+)\. [^|]+\| ([^|]+) \|", page, flags=re.MULTILINE):
        for package in re.findall(r"`(pdiff[\w.]*)`", packages):
            layers[package] = int(number)
    return layers


LAYERS = layer_table()


def owner(module: str) -> str | None:
    """The most specific package of the table that holds `module`."""
    owners = [p for p in LAYERS if module == p or (p != "pdiff" and module.startswith(p + "."))]
    return max(owners, key=len) if owners else None


def layer_of(module: str) -> str:
    package = owner(module)
    return f"{LAYERS[package]}. {package}" if package else "not in the table"


def imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The pdiff modules an import statement of `module` names (a name imported from a package may be a
    module)."""
    assert not isinstance(node, ast.ImportFrom) or node.level == 0, f"{module}: pdiff imports absolutely"
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names
        ]
    targets = []
    for name in names:
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in MODULES and name != module:
            targets.append(name)
    return targets


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        nodes = ast.walk(ast.parse(path.read_text(), filename=str(path)))
        graph[module] = {
            t for n in nodes if isinstance(n, ast.Import | ast.ImportFrom) for t in imported(module, n)
        }
    return graph


GRAPH = import_graph()


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, edges = work[-1]
            child = next((e for e in edges if e not in index or e in stack), None)
            if child is not None and child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(graph[child]))))
                continue
            if child is not None:
                low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while (member := stack.pop()) != node:
                    component.append(member)
                component.append(node)
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_module_belongs_to_a_layer_of_the_table():
    assert {"pdiff", "pdiff.stages", "pdiff.methods", "pdiff.cli"} <= LAYERS.keys()
    assert [m for m in MODULES if owner(m) is None] == []


def test_imports_go_down_the_layer_table():
    def layer(module: str) -> int:
        return LAYERS.get(owner(module) or "", 0)

    upward = [
        f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if layer(target) > layer(module)
    ]
    assert upward == []


def test_no_import_circle():
    assert circles(GRAPH) == []


def test_no_stage_imports_another_stage():
    stages = {m for m in MODULES if m.startswith("pdiff.stages.")} - STAGE_HELPERS
    crossings = [f"{m} imports {t}" for m in sorted(stages) for t in sorted(GRAPH[m] & stages)]
    assert crossings == []


def test_the_checks_see_a_circle_and_an_upward_import():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert (layer_of("pdiff.stages.tune"), layer_of("pdiff.methods.ptdt")) == (
        "5. pdiff.stages",
        "3. pdiff.methods",
    )
    assert "pdiff.models.prompt_dt" in GRAPH["pdiff.methods.ptdt"]
