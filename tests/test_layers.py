"""The layers of docs/architecture.md hold: the table there places every module, no module
imports one of a later layer, no import goes round in a cycle, and only the store (and the
migrations) hold SQL.

Imports are read from the source (every `import`, at any depth, so an import inside a
function counts); those under `if TYPE_CHECKING:` name types for the checker and load
nothing, so they are left out, as `shared/tools/import_cycles.py` leaves them out.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "activejob"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

SQL_HOMES = ("store/", "migrate.py", "migrations/")
"""Where SQL text may be written (paths inside the package; a trailing / is a folder)."""

SQL = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|BEGIN|NOTIFY|LISTEN|PRAGMA)\b")

THROUGH_THE_QUEUE = ("web/", "testing/")
"""Surfaces that reach the database only through JobQueue's methods, never `queue.store`."""


@dataclass(frozen=True)
class Module:
    name: str  # activejob.store.base
    path: str  # store/base.py, inside the package
    layer: int  # the row of the layer table
    tree: ast.Module


def layer_table(text: str) -> list[tuple[str, list[str]]]:
    """The rows of the table under `## Layers`: each layer's name and its modules (`x.py`, `dir/`)."""
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] in ("layer", "") or set(cells[0]) <= set("-: "):
            continue
        rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return rows


LAYERS = layer_table(ARCHITECTURE.read_text())


def places(entry: str, path: str) -> bool:
    return path.startswith(entry) if entry.endswith("/") else path == entry


def layer_of(path: str) -> list[int]:
    return [i for i, (_, entries) in enumerate(LAYERS) for entry in entries if places(entry, path)]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load() -> dict[str, Module]:
    modules = {}
    for file in sorted(PACKAGE.rglob("*.py")):
        path = file.relative_to(PACKAGE).as_posix()
        found = layer_of(path)
        modules[module_name(file)] = Module(module_name(file), path, found[0] if len(found) == 1 else -1,
                                            ast.parse(file.read_text(), str(file)))
    return modules


def _type_only(tree: ast.Module) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return skip


def imports(module: Module, known: set[str]) -> set[str]:
    """The package's modules that `module` imports, wherever the import statement is."""
    package = module.name if module.path.endswith("__init__.py") else module.name.rpartition(".")[0]
    skip = _type_only(module.tree)
    found: set[str] = set()
    for node in ast.walk(module.tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                prefix = ".".join([*base, *([node.module] if node.module else [])])
            else:
                prefix = node.module or ""
            # `from pkg import sub` imports the submodule; `from mod import name` the module.
            names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known and name != module.name)
    return found


def graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    return {name: imports(module, set(modules)) for name, module in modules.items()}


def upward_imports(modules: dict[str, Module]) -> list[str]:
    problems = []
    for name, deps in graph(modules).items():
        mine = modules[name].layer
        for dep in sorted(deps):
            theirs = modules[dep].layer
            if mine >= 0 and theirs > mine:  # a module the table does not place has its own test
                problems.append(f"{name} ({LAYERS[mine][0]}) imports {dep}, of the later layer {LAYERS[theirs][0]}")
    return problems


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (Tarjan)."""
    edges = graph(modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def _strings(tree: ast.Module) -> Iterator[ast.Constant]:
    """String constants that are values, not docstrings (a string alone as a statement)."""
    documentation = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documentation:
            yield node


def sql_outside_the_store(modules: dict[str, Module]) -> list[str]:
    return [
        f"activejob/{module.path}:{node.lineno}: {node.value[:50]!r}"
        for module in modules.values() if not any(places(home, module.path) for home in SQL_HOMES)
        for node in _strings(module.tree) if SQL.match(node.value)
    ]


# -- the checks --------------------------------------------------------------------------


def test_the_table_places_every_module_in_one_layer() -> None:
    assert [name for name, _ in LAYERS] == ["definition", "storage", "events", "execution", "surfaces"]
    unplaced = [f"activejob/{m.path}" for m in load().values() if len(layer_of(m.path)) != 1]
    assert not unplaced, f"add these to exactly one row of the layer table in docs/architecture.md: {unplaced}"
    listed = {entry for _, entries in LAYERS for entry in entries}
    missing = sorted(entry for entry in listed if not (PACKAGE / entry).exists())
    assert not missing, f"the layer table names modules that do not exist: {missing}"


def test_no_module_imports_a_later_layer() -> None:
    problems = upward_imports(load())
    assert not problems, "\n".join(problems)


def test_no_import_cycle() -> None:
    found = cycles(load())
    assert not found, "\n".join(f"cycle of {len(group)} modules: {', '.join(group)}" for group in found)


def test_only_the_store_and_the_migrations_hold_sql() -> None:
    found = sql_outside_the_store(load())
    assert not found, "SQL belongs in activejob/store/ (e.g. store/sql.py):\n" + "\n".join(found)


def test_the_dashboard_and_the_test_helpers_go_through_the_job_queue() -> None:
    reach = [
        f"activejob/{module.path}:{node.lineno}"
        for module in load().values() if any(places(entry, module.path) for entry in THROUGH_THE_QUEUE)
        for node in ast.walk(module.tree) if isinstance(node, ast.Attribute) and node.attr == "store"
    ]
    assert not reach, f"use JobQueue's methods, not queue.store: {reach}"


# -- the checks catch what they are for ------------------------------------------------------


def _with_source(modules: dict[str, Module], name: str, source: str) -> dict[str, Module]:
    return {**modules, name: replace(modules[name], tree=ast.parse(source))}


def test_an_upward_import_inside_a_function_is_caught() -> None:
    modules = _with_source(load(), "activejob.errors", "def f():\n    from .queue import JobQueue\n")
    assert upward_imports(modules) == [
        "activejob.errors (definition) imports activejob.queue, of the later layer execution"]


def test_a_type_only_import_is_not_an_upward_import() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .queue import JobQueue\n"
    assert upward_imports(_with_source(load(), "activejob.errors", source)) == []


def test_a_cycle_is_caught() -> None:
    modules = _with_source(load(), "activejob.clock", "from . import context\n")  # context imports clock
    assert ["activejob.clock", "activejob.context"] in cycles(modules)


def test_sql_outside_the_store_is_caught() -> None:
    modules = _with_source(load(), "activejob.queue", '"""NOTIFY in a docstring is prose."""\n'
                                                      'def f(c):\n    c.execute(f"NOTIFY {1}")\n')
    assert [line.split(": ", 1)[0] for line in sql_outside_the_store(modules)] == ["activejob/queue.py:3"]
