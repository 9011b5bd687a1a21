"""The package's shape stays as the layout says: no import cycle among earmark's modules,
no module over 450 lines, and the library never imports its front ends (CLI, app).

The import graph is read from the source (every ``import``, at the top of a file or
inside a function), so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "earmark"
MAX_LINES = 450
FRONT_ENDS = ("earmark.cli", "earmark.app")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The earmark module ``name`` is, or lies in (``earmark.x.f`` -> ``earmark.x``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    """The earmark modules ``module`` imports anywhere in its source."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 packages
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # `from earmark.x import y` imports the module earmark.x.y when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {m for n in names if n.startswith("earmark") and (m := _resolve(n)) and m != module}
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a cycle's members."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_at_the_top_and_inside_functions():
    assert "earmark.store.project" in GRAPH["earmark.store.backup"]  # at the top
    assert "earmark.ranking.rank" in GRAPH["earmark.cli.rank"]  # inside a command function
    assert len(MODULES) > 40


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_earmarks_modules():
    assert cycles(GRAPH) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_450_lines(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]}: {lines} lines; split it by responsibility"


def test_the_library_never_imports_the_cli_or_the_app():
    library = [m for m in MODULES if m != "earmark" and not m.startswith(FRONT_ENDS)]
    offending = {m: sorted(i for i in GRAPH[m] if i.startswith(FRONT_ENDS)) for m in library}
    assert {m: i for m, i in offending.items() if i} == {}


# The store checks earmark.json's strategy name against the strategy registry
# (earmark.ranking.strategies, which imports nothing of earmark's but its errors), so
# the registry stays the one list of strategies; the rest of ranking is out of its reach.
@pytest.mark.parametrize("lower, higher", [
    ("earmark.store", ("earmark.decode", "earmark.ranking.rank", "earmark.ranking.scoring", "earmark.review",
                       "earmark.train", "earmark.evaluate")),
    ("earmark.decode", ("earmark.store", "earmark.ranking", "earmark.review", "earmark.train", "earmark.evaluate")),
    ("earmark.models", ("earmark.ranking", "earmark.review", "earmark.train", "earmark.evaluate")),
    ("earmark.ranking", ("earmark.review", "earmark.train", "earmark.evaluate")),
])
def test_a_stage_does_not_import_a_later_one(lower, higher):
    offending = {m: sorted(i for i in GRAPH[m] if i.startswith(higher))
                 for m in MODULES if m.startswith(lower)}
    assert {m: i for m, i in offending.items() if i} == {}
