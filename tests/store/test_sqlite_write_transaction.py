"""SQLite's hot-path write transaction (`RawAccess._sqlite_tx`): committed when its block
ends, rolled back when the block raises, the process's write lock always given back, and
SQLite's errors raised as SQLAlchemy's, like the rest of the store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from activejob.store import Store
from activejob.store.dbapi import WouldBlock

from .contract import OtherWriter

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's alone


@pytest.fixture
def sqlite_store(store: Store) -> Store:
    assert store.dialect == "sqlite"
    return store


def queues(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [row[0] for row in conn.exec_driver_sql("SELECT queue FROM activejob_paused_queues")]


def pause(cur: Any, queue: str) -> None:
    cur.execute("INSERT INTO activejob_paused_queues (queue, paused_at) VALUES (?, '2026-01-01')", (queue,))


def test_a_block_that_ends_commits_its_writes(sqlite_store: Store) -> None:
    with sqlite_store._sqlite_tx() as cur:
        pause(cur, "mail")

    assert queues(sqlite_store) == ["mail"]


def test_a_block_that_raises_rolls_back_and_gives_the_write_lock_back(sqlite_store: Store) -> None:
    with pytest.raises(ValueError, match="changed my mind"), sqlite_store._sqlite_tx() as cur:
        pause(cur, "mail")
        raise ValueError("changed my mind")

    assert queues(sqlite_store) == []
    with sqlite_store._sqlite_tx(nowait=True) as cur:  # neither the lock nor a transaction was left
        pause(cur, "reports")
    assert queues(sqlite_store) == ["reports"]


def test_a_database_error_in_the_block_is_raised_as_sqlalchemys_and_rolls_back(sqlite_store: Store) -> None:
    with pytest.raises(DBAPIError, match="no such table"), sqlite_store._sqlite_tx() as cur:
        pause(cur, "mail")
        cur.execute("SELECT * FROM no_such_table")

    assert queues(sqlite_store) == []
    with sqlite_store._sqlite_tx(nowait=True) as cur:
        pause(cur, "reports")
    assert queues(sqlite_store) == ["reports"]


def test_another_writer_makes_a_nowait_write_would_block_and_leaves_nothing_held(
        sqlite_store: Store, other_writer: Callable[[], OtherWriter]) -> None:
    writer = other_writer()

    with pytest.raises(WouldBlock), sqlite_store._sqlite_tx(nowait=True) as cur:
        pause(cur, "mail")

    writer.release()
    with sqlite_store._sqlite_tx(nowait=True) as cur:
        pause(cur, "reports")
    assert queues(sqlite_store) == ["reports"]


def test_a_failed_commit_is_raised_as_sqlalchemys_and_gives_the_lock_back(sqlite_store: Store) -> None:
    with pytest.raises(OperationalError), sqlite_store._sqlite_tx() as cur:
        pause(cur, "mail")
        cur.execute("COMMIT")  # the block's own COMMIT then has no transaction to end

    with sqlite_store._sqlite_tx(nowait=True) as cur:
        pause(cur, "reports")
    assert sorted(queues(sqlite_store)) == ["mail", "reports"]
