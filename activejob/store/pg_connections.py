"""PostgreSQL connections of the store's own, outside SQLAlchemy's pool, for the
statements that run as their own transaction (`RawAccess._pg_one`)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from typing import Any

from .. import dialects


class PgHotConnections:
    """Autocommit psycopg connections for the one-statement hot paths (`_pg_one`), kept
    beside SQLAlchemy's pool rather than in it.

    Through the pool a single `perform_later` paid a checkout, a reset on return and two
    autocommit switches: about a tenth of its time here, with the round trip and the commit
    the rest. Taking and giving back is a deque pop and append, and each connection keeps
    one cursor. At most `limit` are open; past that `take` returns None and the caller uses
    the pool, so a process holds at most `limit` connections more than the pool's own.
    """

    def __init__(self, dsn: str, limit: int) -> None:
        from psycopg.pq import TransactionStatus  # here: psycopg is the postgres extra

        self._idle_status = TransactionStatus.IDLE
        self._dsn, self._limit = dsn, limit
        self._idle: deque[Any] = deque()
        self._open = 0
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def take(self) -> Any | None:
        """The cursor of an idle connection, or of a new one; None when `limit` are open
        (or these are closed)."""
        if self._pid != os.getpid():
            self._forked()
        while True:
            try:
                cur = self._idle.pop()  # the most recent: its server process is still warm
            except IndexError:
                break
            if not cur.connection.closed and dialects.pg_quiet(cur.connection):
                return cur
            self._discard(cur)  # the server ended it (a restart, pg_terminate_backend)
        with self._lock:
            if self._closed or self._open >= self._limit:
                return None
            self._open += 1
        try:
            return self._connect().cursor()
        except BaseException:
            with self._lock:
                self._open -= 1
            raise

    def give(self, cur: Any) -> None:
        """Back after a statement; a connection that broke or was interrupted mid-statement
        is closed."""
        conn = cur.connection
        if self._closed or conn.broken or conn.closed or conn.info.transaction_status != self._idle_status:
            self._discard(cur)
        else:
            self._idle.append(cur)

    def close(self) -> None:
        """Close the idle ones; those in use are closed as they are given back."""
        self._closed = True
        while self._idle:
            self._discard(self._idle.pop())

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self._dsn, autocommit=True, prepare_threshold=0,
                               **dialects.pg_connect_args("activejob"))
        # Only the hot statements run here, written for their generic plan (as on a
        # worker's LoopConnection): prepared at once, never planned again.
        with contextlib.suppress(psycopg.Error):  # a pooler that refuses it: plans as usual
            conn.execute("SET plan_cache_mode = force_generic_plan")
        return conn

    def _discard(self, cur: Any) -> None:
        with self._lock:
            self._open -= 1
        with contextlib.suppress(Exception):  # already gone: nothing to close
            cur.connection.close()

    def _forked(self) -> None:
        # A child shares the parent's sockets: closing them, or letting them be collected
        # (libpq then says goodbye), would end the parent's sessions. Kept, never used.
        _INHERITED.extend(self._idle)
        self._idle, self._open, self._pid = deque(), 0, os.getpid()


_INHERITED: list[Any] = []
