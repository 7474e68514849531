"""Fixtures of the store contract: a migrated `Store` on each real database (`db_url`), and
a way to hold SQLite's write lock as another process would."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from activejob.store import Store

from .contract import Jobs, OtherWriter


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session: each test starts from a copy, not a migration."""
    path = tmp_path_factory.mktemp("store-template") / "template.db"
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    store.dispose()
    return path


@pytest.fixture
def store(db_url: str, sqlite_template: Path) -> Iterator[Store]:
    """A Store on an empty, migrated database: a SQLite file of its own, or the session's PostgreSQL."""
    if db_url.startswith("sqlite"):
        source, target = sqlite3.connect(sqlite_template), sqlite3.connect(db_url.removeprefix("sqlite:///"))
        with source, target:
            source.backup(target)
        source.close()
        target.close()
    s = Store(db_url)
    try:
        yield s
    finally:
        s.dispose()


@pytest.fixture
def jobs(store: Store) -> Jobs:
    return Jobs(store)


@pytest.fixture
def other_writer(store: Store) -> Iterator[Callable[[], OtherWriter]]:
    """Call it to take SQLite's write lock as another connection would; released after the test."""
    held: list[OtherWriter] = []

    def take() -> OtherWriter:
        held.append(OtherWriter(store.url))
        return held[-1]

    yield take
    for writer in held:
        writer.release()
