"""No new import cycle between the packages of ``src/plexica``.

A cycle between two areas means neither can be understood, tested or replaced alone, and it is
how a layering rule quietly stops holding. Imports under ``if TYPE_CHECKING:`` are not runtime
dependencies and are ignored. The two cycles below predate this test; each is debt to remove,
not a precedent: the test also fails once one of them is gone, so the list shrinks with it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Existing cycles, as sorted pairs of packages that import each other.
KNOWN_CYCLES = {
    ("db", "tenancy"),  # db uses tenancy.naming identifiers; tenancy drives db migrations
    ("identity", "workspaces"),  # user removal drops memberships; workspaces read user rows
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(child) for child in ast.walk(node))
    return guarded


def package_graph() -> dict[str, set[str]]:
    """``{package: packages it imports at runtime}`` for every top-level unit of ``plexica``."""
    graph: dict[str, set[str]] = {}
    for path in (SRC / "plexica").rglob("*.py"):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        source = _unit(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("plexica.") and _unit(name) != source:
                    graph.setdefault(source, set()).add(_unit(name))
    return graph


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Every cycle, as the sorted tuple of the packages on it (strongly connected components > 1)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[tuple[str, ...]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_real_imports() -> None:
    graph = package_graph()
    assert "settings" in graph["platform"] and "plugins" in graph["platform"]


def test_a_made_up_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {("a", "b", "c")}


def test_no_new_import_cycle_between_packages() -> None:
    assert cycles(package_graph()) == KNOWN_CYCLES
