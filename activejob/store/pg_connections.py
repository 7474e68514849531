"""PostgreSQL connections of the store's own, outside SQLAlchemy's pool, for the
statements that run as their own transaction (`RawAccess._pg_one`)."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import deque
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import anyio

from .. import dialects

_MAX_STATEMENTS = 200
"""Prepared statements a hot connection keeps before it forgets them all (a statement is one
per SQL text and parameter types: a handful in practice, one per queue list at most)."""


@lru_cache(maxsize=512)
def _numbered(sql: str) -> tuple[tuple[str, ...], bytes]:
    """psycopg's `%(name)s` SQL as libpq's `$1`: the parameter names in order, and the text."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"  # `%%`, as psycopg reads it
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = re.sub(r"%%|%\((\w+)\)s", number, sql).encode()
    return tuple(names), text


class HotConnection:
    """One autocommit connection, and its prepared statements: a statement is prepared the
    first time it runs here, and run by name after that.

    `run` hands a statement to libpq's own blocking call (PQexecPrepared, with the GIL
    released) and converts parameters and rows with psycopg's adapters. psycopg's cursor
    drives the same call from Python, step by step, so that a main thread's Ctrl-C can
    break into a query: that cost a `perform_later` about 40 us of CPU here (206 against
    166 us), a tenth of its time. These statements only ever take a moment; `tcp_user_timeout`
    (dialects.pg_connect_args) bounds a server that stops answering.

    `arun` is the same on an event loop (a worker's `LoopConnection`): it sends the statement
    and waits for the socket on the loop. Through psycopg's async cursor, the worker's
    finish-and-claim statement took 56 us longer (300 against 244 us, 30 us of it CPU on
    the loop). One statement at a time: the caller keeps them apart.
    """

    __slots__ = ("_statements", "_tx", "connection")

    def __init__(self, connection: Any) -> None:
        from psycopg.adapt import Transformer  # here: psycopg is the postgres extra

        self.connection = connection
        self._tx = Transformer(connection)
        self._statements: dict[tuple[str, tuple[int, ...]], bytes] = {}

    def run(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run `sql` (psycopg's `%(name)s` style) with `params`; its rows as tuples."""
        key, text, values = self._bind(sql, params)
        pgconn = self.connection.pgconn
        statement = self._statements.get(key)
        if statement is None:
            statement, forget = self._new_name()
            if forget:
                self._check(pgconn.exec_(b"DEALLOCATE ALL"))
            self._check(pgconn.prepare(statement, text, param_types=key[1]))
            self._statements[key] = statement
        return self._rows(self._check(pgconn.exec_prepared(statement, values, param_formats=self._tx.formats)))

    async def arun(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """`run`, awaited: the event loop goes on while the statement runs."""
        key, text, values = self._bind(sql, params)
        formats = self._tx.formats
        pgconn = self.connection.pgconn
        statement = self._statements.get(key)
        if statement is None:
            statement, forget = self._new_name()
            if forget:
                pgconn.send_query(b"DEALLOCATE ALL")
                await self._result()
            pgconn.send_prepare(statement, text, param_types=key[1])
            await self._result()
            self._statements[key] = statement
        pgconn.send_query_prepared(statement, values, param_formats=formats)
        return self._rows(await self._result())

    def _bind(self, sql: str, params: Mapping[str, Any]) -> tuple[tuple[str, tuple[int, ...]], bytes, Any]:
        """The statement's key (its SQL and parameter types), its text for libpq (`$1`) and
        the parameters dumped; the formats stay on the transformer."""
        from psycopg.adapt import PyFormat

        names, text = _numbered(sql)
        tx = self._tx
        values = tx.dump_sequence([params[name] for name in names], [PyFormat.AUTO] * len(names))
        return (sql, tuple(tx.types or ())), text, values

    def _new_name(self) -> tuple[bytes, bool]:
        """A name for a statement about to be prepared, and whether the connection must
        first forget every statement it has (it keeps at most _MAX_STATEMENTS)."""
        forget = len(self._statements) >= _MAX_STATEMENTS
        if forget:
            self._statements.clear()
        return f"activejob_{len(self._statements)}".encode(), forget

    async def _result(self) -> Any:
        """The result of what was sent, its error raised; read as the socket allows."""
        pgconn = self.connection.pgconn
        while pgconn.flush():  # the connection is nonblocking (psycopg's): 1 while some is unsent
            await anyio.wait_writable(pgconn.socket)
        first = None
        while True:
            pgconn.consume_input()
            while pgconn.is_busy():
                await anyio.wait_readable(pgconn.socket)
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:  # the end: the connection is idle again, ready for the next
                return self._check(first)
            if first is None:  # one statement, one result; after an error, the error's
                first = result

    def _rows(self, result: Any) -> list[tuple[Any, ...]]:
        tx = self._tx
        tx.set_pgresult(result)
        return tx.load_rows(0, result.ntuples, tuple)  # type: ignore[no-any-return]

    def _check(self, result: Any) -> Any:
        from psycopg import errors
        from psycopg.pq import ExecStatus

        if result.status not in (ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK):
            raise errors.error_from_result(result, encoding=self.connection.info.encoding)
        return result


class PgHotConnections:
    """Autocommit psycopg connections for the one-statement hot paths (`_pg_one`), kept
    beside SQLAlchemy's pool rather than in it.

    Through the pool a single `perform_later` paid a checkout, a reset on return and two
    autocommit switches: about a tenth of its time here, with the round trip and the commit
    the rest. Taking and giving back is a deque pop and append. At most `limit` are open;
    past that `take` returns None and the caller uses the pool, so a process holds at most
    `limit` connections more than the pool's own.
    """

    def __init__(self, dsn: str, limit: int) -> None:
        from psycopg.pq import TransactionStatus  # here: psycopg is the postgres extra

        self._idle_status = TransactionStatus.IDLE
        self._dsn, self._limit = dsn, limit
        self._idle: deque[HotConnection] = deque()
        self._open = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def take(self) -> HotConnection | None:
        """An idle connection, or a new one; None when `limit` are open (or these are closed)."""
        if self._pid != os.getpid():
            self._forked()
        while True:
            try:
                hot = self._idle.pop()  # the most recent: its server process is still warm
            except IndexError:
                break
            if not hot.connection.closed and dialects.pg_quiet(hot.connection):
                return hot
            self._discard(hot)  # the server ended it (a restart, pg_terminate_backend)
        with self._lock:
            if self._closed or self._open >= self._limit:
                return None
            self._open += 1
        try:
            return HotConnection(self._connect())
        except BaseException:
            with self._lock:
                self._open -= 1
            raise

    def give(self, hot: HotConnection) -> None:
        """Back after a statement; a connection that broke or was interrupted mid-statement
        is closed."""
        conn = hot.connection
        if self._closed or conn.broken or conn.closed or conn.info.transaction_status != self._idle_status:
            self._discard(hot)
        else:
            self._idle.append(hot)

    def close(self) -> None:
        """Close the idle ones; those in use are closed as they are given back."""
        self._closed = True
        while self._idle:
            self._discard(self._idle.pop())

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self._dsn, autocommit=True, **dialects.pg_connect_args("activejob"))
        # Only the hot statements run here, written for their generic plan (as on a
        # worker's LoopConnection): prepared at once (HotConnection.run), never planned again.
        with contextlib.suppress(psycopg.Error):  # a pooler that refuses it: plans as usual
            conn.execute("SET plan_cache_mode = force_generic_plan")
        return conn

    def _discard(self, hot: HotConnection) -> None:
        with self._lock:
            self._open -= 1
        with contextlib.suppress(Exception):  # already gone: nothing to close
            hot.connection.close()

    def _forked(self) -> None:
        # A child shares the parent's sockets: closing them, or letting them be collected
        # (libpq then says goodbye), would end the parent's sessions. Kept, never used.
        _INHERITED.extend(self._idle)
        self._idle, self._open, self._pid = deque(), 0, os.getpid()


_INHERITED: list[HotConnection] = []
