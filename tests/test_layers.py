"""The domain packages form layers: no package imports one that imports it back (directly or
through others), so the ledger, the coordinator, the execution layer and the trader can each be
read, tested and replaced on their own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nettrace_dagster"


def package_imports() -> dict[str, set[str]]:
    """Sub-package → the other sub-packages its modules import (module-level and inside functions)."""
    graph: dict[str, set[str]] = {}
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        deps = graph.setdefault(folder.name, set())
        for file in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "nettrace_dagster" and len(parts) > 1 and parts[1] != folder.name \
                            and (PACKAGE / parts[1]).is_dir():
                        deps.add(parts[1])
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, stack = [], []

    def visit(node: str) -> None:
        if node in stack:
            found.append(stack[stack.index(node):] + [node])
            return
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            visit(dep)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    return found


def test_no_domain_package_imports_one_that_imports_it_back() -> None:
    graph = package_imports()
    assert {"ledger", "coordinator", "execution", "trading", "market", "strategies", "backtest"} <= set(graph)
    assert graph["execution"] >= {"ledger", "coordinator"}  # the walk sees real imports
    assert cycles(graph) == []
    assert graph["ledger"] == set(), graph["ledger"]  # the bottom layer imports no other package


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"], ["b", "c", "a", "b"],
                                                           ["c", "a", "b", "c"]]
