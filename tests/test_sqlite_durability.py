"""`sqlite_synchronous` reaches every connection the store opens to a SQLite file: SQLite keeps
`PRAGMA synchronous` per connection, so one connection left at another level would make
some commits less durable than configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from activejob.store import Store

LEVELS = [("NORMAL", 1), ("FULL", 2)]  # what PRAGMA synchronous reads back


@pytest.fixture
def file_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture(params=LEVELS, ids=[level for level, _ in LEVELS])
def store(request: pytest.FixtureRequest, file_url: str) -> Iterator[tuple[Store, int]]:
    level, value = request.param
    store = Store(file_url, sqlite_synchronous=level)
    store.upgrade()
    yield store, value
    store.dispose()


def test_the_pooled_connections_have_the_configured_level(store: tuple[Store, int]) -> None:
    s, value = store
    with s.read() as first, s.read() as second:  # two at once: two connections of the pool
        assert first.execute(text("PRAGMA synchronous")).scalar() == value
        assert second.execute(text("PRAGMA synchronous")).scalar() == value


def test_the_hot_paths_own_connection_has_the_configured_level(store: tuple[Store, int]) -> None:
    s, value = store
    with s._sqlite_tx() as cursor:
        assert cursor.execute("PRAGMA synchronous").fetchone()[0] == value


def test_the_default_is_normal(file_url: str) -> None:
    s = Store(file_url)
    try:
        with s.read() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1
        with s._sqlite_tx() as cursor:
            assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 1
    finally:
        s.dispose()


def test_a_level_not_offered_is_refused(file_url: str) -> None:
    with pytest.raises(ValueError, match="sqlite_synchronous must be one of"):
        Store(file_url, sqlite_synchronous="OFF")


@pytest.mark.parametrize(("level", "value"), LEVELS)
def test_the_queue_setting_reaches_the_store(file_url: str, level: str, value: int) -> None:
    import activejob
    from activejob import JobQueue

    queue = activejob.configure(file_url, sqlite_synchronous=level)
    try:
        with queue.store.read() as conn:
            assert conn.execute(text("PRAGMA synchronous")).scalar() == value
        with queue.store._sqlite_tx() as cursor:
            assert cursor.execute("PRAGMA synchronous").fetchone()[0] == value
    finally:
        JobQueue.reset()
