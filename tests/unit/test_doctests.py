"""The examples in activejob's docstrings run as tests, one test per docstring: an example
that no longer matches the code fails here, named by its module and object.

Collected here rather than with `--doctest-modules`, so the modules that must not be
imported outside their own use are left out by name, and the rest of the suite's fixtures
and warning filters apply.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from collections.abc import Iterator

import pytest

import activejob

pytestmark = pytest.mark.timeout(10)

NOT_IMPORTED = {
    "activejob.__main__": "importing it runs the command line",
    "activejob.migrations.env": "importing it runs Alembic's migrations, outside Alembic",
}

SKIPPED: dict[str, str] = {}
"""Docstrings whose example fails, by DocTest name, with the report that awaits its fix."""

HAVE_EXAMPLES = ("activejob.backoff", "activejob.clock", "activejob.dialects", "activejob.retry",
                 "activejob.store.values")
"""Modules known to carry examples: if none of theirs are collected, the collection broke."""


def _modules() -> Iterator[str]:
    for info in pkgutil.walk_packages(activejob.__path__, "activejob."):
        if info.name not in NOT_IMPORTED:
            yield info.name


OPTIONAL = {"starlette", "uvicorn", "jinja2", "multipart", "python_multipart", "websockets", "psycopg"}
"""What the extras (postgres, web) install: a module needing one is skipped without it."""


def _collect() -> list[doctest.DocTest | tuple[str, ImportError]]:
    """Every docstring with examples, and the modules that could not be imported (each becomes a test)."""
    finder = doctest.DocTestFinder()
    found: list[doctest.DocTest | tuple[str, ImportError]] = []
    for name in _modules():
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            found.append((name, error))
            continue
        examples = [t for t in finder.find(module) if t.examples]
        examples.sort(key=lambda t: t.name)
        found.extend(examples)
    return found


COLLECTED = _collect()
DOCTESTS = [t for t in COLLECTED if isinstance(t, doctest.DocTest)]


def _param(item: doctest.DocTest | tuple[str, ImportError]) -> object:
    if not isinstance(item, doctest.DocTest):
        return pytest.param(item, id=f"{item[0]} (not imported)")
    marks = [pytest.mark.skip(reason=SKIPPED[item.name])] if item.name in SKIPPED else []
    return pytest.param(item, id=item.name, marks=marks)


@pytest.mark.parametrize("item", [_param(item) for item in COLLECTED])
def test_docstring_examples(item: doctest.DocTest | tuple[str, ImportError]) -> None:
    if not isinstance(item, doctest.DocTest):
        name, error = item
        missing = (getattr(error, "name", None) or "").split(".")[0]
        if missing in OPTIONAL:
            pytest.skip(f"{name} needs {missing}, from an extra not installed here")
        pytest.fail(f"{name} cannot be imported: {error!r}", pytrace=False)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(item, out=report.append)
    if result.failed:
        pytest.fail(f"{result.failed} of {result.attempted} examples failed in {item.name} "
                    f"({item.filename}:{item.lineno}):\n{''.join(report)}", pytrace=False)


@pytest.mark.parametrize("module", HAVE_EXAMPLES)
def test_a_module_known_to_have_examples_is_collected(module: str) -> None:
    assert any(t.name == module or t.name.startswith(module + ".") for t in DOCTESTS)
