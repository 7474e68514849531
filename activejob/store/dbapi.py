"""How the hot paths reach the driver: DBAPI cursors and connections, under the store's
own rules (SQLite's write lock and BEGIN IMMEDIATE, PostgreSQL autocommit), with driver
errors raised as SQLAlchemy's. Why they skip SQLAlchemy: see `sql.py`."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError

from .base import StoreBase
from .checkpoints import WalCheckpointer
from .sql import sqlite_event_insert, sqlite_settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PgCall(Generic[T]):
    """One PostgreSQL hot-path statement and how to read its rows. The store runs it on a
    pooled connection (`_pg_run`); a worker awaits the same call on its own connection
    on its event loop (`LoopConnection`), so both speak the same SQL."""

    sql: str
    params: dict[str, Any]
    read: Callable[[list[Any]], T]


class WouldBlock(Exception):
    """A `nowait` store call would have to wait (or take the general path); nothing changed."""


class GeneralPath(Exception):
    """Inside a hot path: this case belongs to the general path (the transaction rolls back)."""


class SqliteTx:
    """`RawAccess._sqlite_tx`: a class rather than a @contextmanager generator, whose
    generator and helper objects every write paid for (with the single-job enqueue path,
    about 5% of a SQLite enqueue's CPU)."""

    __slots__ = ("_access", "_changes", "_cur", "_nowait")

    def __init__(self, access: RawAccess, nowait: bool) -> None:
        self._access, self._nowait = access, nowait

    def __enter__(self) -> Any:
        access = self._access
        lock = access._write_lock
        assert lock is not None
        if not lock.acquire(blocking=not self._nowait):
            raise WouldBlock("another thread of this process is writing")
        try:
            cur = access._hot
            if cur is None:
                cur = access._hot = access._open_hot().cursor()
            _begin_immediate(cur.connection, cur, nowait=self._nowait)
        except BaseException as error:
            lock.release()
            if isinstance(error, sqlite3.Error):
                raise as_sqlalchemy(error, sqlite3.Error) from error
            raise
        self._cur = cur
        self._changes = cur.connection.total_changes
        return cur

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        conn = self._cur.connection
        try:
            if kind is None:
                self._cur.execute("COMMIT")
                checkpointer = self._access._checkpointer
                if checkpointer is not None:
                    checkpointer.wrote(conn.total_changes - self._changes)
            elif conn.in_transaction:
                conn.rollback()
        except BaseException as failed:
            if kind is None and conn.in_transaction:
                conn.rollback()
            if isinstance(failed, sqlite3.Error):
                raise as_sqlalchemy(failed, sqlite3.Error) from failed
            raise
        finally:
            self._access._write_lock.release()  # type: ignore[union-attr]
        if isinstance(error, sqlite3.Error):  # raised inside the block: as `_translated` does
            raise as_sqlalchemy(error, sqlite3.Error) from error


def as_sqlalchemy(error: Exception, dbapi_error: type[Exception]) -> Exception:
    """A driver's error (an instance of its DBAPI `Error` class, `dbapi_error`) as
    SQLAlchemy's exception class for it, as the rest of the store raises them."""
    return DBAPIError.instance(None, None, error, dbapi_error)


class RawAccess(StoreBase):
    """The hot paths' own connections: SQLite's one write cursor, PostgreSQL's one-statement autocommit."""

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Raise DBAPI errors as SQLAlchemy's exception classes, like the rest of the store."""
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            yield
        except dbapi.Error as error:
            raise as_sqlalchemy(error, dbapi.Error) from error

    def _sqlite_tx(self, *, nowait: bool = False) -> SqliteTx:
        """A cursor in a BEGIN IMMEDIATE transaction on the store's own write connection
        (`with self._sqlite_tx() as cur:`), committed when the block ends, rolled back if it raises.

        Writers of one process take turns anyway (the write lock), so one connection
        serves them all, without SQLAlchemy's pool and events in the way.
        """
        return SqliteTx(self, nowait)

    def _open_hot(self) -> Any:
        if self._memory:  # one shared connection (StaticPool): write on that same one
            fairy = self.engine.raw_connection()
            conn = fairy.driver_connection
            fairy.close()
            return conn
        conn = sqlite3.connect(self.engine.url.database or "", isolation_level=None, check_same_thread=False,
                               timeout=30)
        for statement in sqlite_settings(self._sqlite_synchronous):  # the engine's get these in dialects.py
            conn.execute(statement)
        # No busy handler: BEGIN IMMEDIATE is the only statement here that can meet another
        # writer (WAL), and _begin_immediate waits for it, or not, itself. Toggling the
        # timeout around each hot-path BEGIN cost two statements a transaction.
        conn.execute("PRAGMA busy_timeout=0")
        self.watch_steps(conn)  # opened here, not by the engine: its steps are counted too
        # The file as SQLite opened it (an absolute path), whatever the working directory is later.
        path = conn.execute("PRAGMA database_list").fetchone()[2]
        assert self._write_lock is not None  # SQLite's
        self._checkpointer = WalCheckpointer(path, sqlite_settings(self._sqlite_synchronous), self._write_lock)
        return conn

    def _pg_run(self, call: PgCall[T]) -> T:
        return call.read(self._pg_one(call.sql, call.params))

    def _pg_one(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """Run one statement as its own transaction (autocommit): one round trip."""
        hot = self._pg_hot
        conn = hot.take() if hot is not None else None
        if conn is None:
            return self._pg_pooled(sql, params)
        try:
            return conn.run(sql, params)
        except self.engine.dialect.loaded_dbapi.Error as error:  # as `_translated` does, inline: per job
            raise as_sqlalchemy(error, self.engine.dialect.loaded_dbapi.Error) from error
        finally:
            hot.give(conn)  # type: ignore[union-attr]

    def _pg_pooled(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """`_pg_one` on a connection of SQLAlchemy's pool, switched to autocommit and back."""
        fairy = self.engine.raw_connection()
        conn: Any = fairy.driver_connection
        try:
            with self._translated():
                conn.autocommit = True
                try:
                    return list(conn.execute(sql, params).fetchall())
                finally:
                    if not conn.broken:
                        conn.autocommit = False
        except BaseException:
            if conn.broken or conn.closed:
                fairy.invalidate()  # the server went away: never hand this one out again
            raise
        finally:
            fairy.close()

    def _sqlite_events(self, cur: Any, rows: list[tuple[Any, ...]]) -> list[int]:
        """Insert event rows (EVENT_INSERT's nine values each) with one statement per
        thousand; returns their ids in order. One INSERT takes its rows' AUTOINCREMENT ids
        one after another under the write lock, so they end at the last one given."""
        ids: list[int] = []
        for at in range(0, len(rows), 1000):
            chunk = rows[at:at + 1000]
            key = ("events", len(chunk))
            sql = self._sql.get(key)
            if sql is None:
                sql = self._sql[key] = sqlite_event_insert(len(chunk))
            cur.execute(sql, [value for row in chunk for value in row])
            last = cur.lastrowid
            ids += range(last - len(chunk) + 1, last + 1)
        return ids

    @staticmethod
    def _sqlite_insert_select(cur: Any, table: str, sql: str, params: Sequence[Any], rows: int) -> list[int]:
        """Run an INSERT ... SELECT expected to insert `rows` rows; their ids, as
        `_sqlite_insert_many` works them out."""
        before = RawAccess._sqlite_last_id(cur, table)
        cur.execute(sql, params)
        return RawAccess._sqlite_new_ids(cur, table, before, rows)

    @staticmethod
    def _sqlite_last_id(cur: Any, table: str) -> int:
        # The table first: in a database never migrated, the error then names it (not
        # sqlite_sequence, which only exists once an AUTOINCREMENT table does).
        return int(cur.execute(
            f"SELECT max(coalesce((SELECT max(rowid) FROM {table}), 0), "
            "coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0))", (table,)).fetchone()[0])

    @staticmethod
    def _sqlite_new_ids(cur: Any, table: str, before: int, rows: int) -> list[int]:
        last = cur.execute("SELECT last_insert_rowid()").fetchone()[0]
        # AUTOINCREMENT ids only grow, so n new ids above `before` ending at before + n are
        # exactly before + 1 .. before + n.
        if last != before + rows:
            raise RuntimeError(f"{table}: rowids are not consecutive ({before} + {rows} != {last})")
        return list(range(before + 1, last + 1))

    @staticmethod
    def _sqlite_insert_many(cur: Any, table: str, sql: str, rows: list[tuple[Any, ...]]) -> list[int]:
        # executemany hands back no ids, so they are worked out, then checked. The tables
        # are AUTOINCREMENT: a new row gets max(largest id ever given, largest id now) + 1,
        # and the largest ever is kept in sqlite_sequence. max(rowid) alone is wrong once
        # the newest rows were deleted (ids are never reused). Under BEGIN IMMEDIATE and the
        # write lock nobody else inserts, so the rows take the consecutive run after that.
        before = RawAccess._sqlite_last_id(cur, table)
        cur.executemany(sql, rows)
        return RawAccess._sqlite_new_ids(cur, table, before, len(rows))


BUSY_WAIT = 30.0
"""How long a blocking write waits for another process's write transaction to end."""


def _begin_immediate(conn: Any, cur: Any, *, nowait: bool) -> None:
    """BEGIN IMMEDIATE on the hot connection (busy_timeout 0): with `nowait`, WouldBlock at
    once if another process is writing; otherwise try again, backing off up to 20 ms, for
    BUSY_WAIT seconds, as SQLite's own busy handler would."""
    deadline = None
    pause = 0.0005
    while True:
        try:
            cur.execute("BEGIN IMMEDIATE")
            return
        except conn.OperationalError as error:
            if "locked" not in str(error) and "busy" not in str(error):
                raise
            if nowait:
                raise WouldBlock(str(error)) from error
            now = time.monotonic()
            deadline = deadline or now + BUSY_WAIT
            if now >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
