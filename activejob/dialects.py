"""What differs between SQLite and PostgreSQL, kept in one place.

Engines and their connection settings, the claim statement's locking clause, and how a
worker learns that other processes wrote something (LISTEN/NOTIFY, or SQLite's
`PRAGMA data_version`). The statements themselves are the store's (`store/sql.py`), like
all of activejob's SQL.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Table, create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from . import clock
from .store.sql import (
    SQLITE_BEGIN_READ,
    SQLITE_BEGIN_WRITE,
    SQLITE_DATA_VERSION,
    SQLITE_WAL,
    WORKERS_CHANNEL,
    pg_listen,
    pg_notify,
    sqlite_settings,
)

log = logging.getLogger("activejob.store")

NOTIFY_CHANNEL = WORKERS_CHANNEL


def normalize_url(url: str) -> str:
    """Accept the URLs people write; pick psycopg 3 for PostgreSQL.

    >>> normalize_url("postgres://u@h/db")
    'postgresql+psycopg://u@h/db'
    >>> normalize_url("jobs.db")
    'sqlite:///jobs.db'
    """
    if "://" not in url:
        return f"sqlite:///{url}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def pg_connect_args(application_name: str) -> dict[str, Any]:
    """libpq settings for every PostgreSQL connection activejob opens.

    A server that vanished without a word (a machine or network gone, no TCP reset) would
    otherwise leave a connection waiting for minutes: keepalives notice an idle one within a
    minute, `tcp_user_timeout` a request left unanswered, and a connect gives up after 10 s.
    Each failure then takes the usual path: logged, backed off, reconnected.
    """
    return {"application_name": application_name, "connect_timeout": 10, "keepalives": 1,
            "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3, "tcp_user_timeout": 60_000}


def create(url: str, *, pool_size: int = 5, sqlite_synchronous: str = "NORMAL") -> Engine:
    """An engine configured for a job queue's access pattern (`sqlite_synchronous`: how
    durable a SQLite commit is, see `store.sql.SQLITE_SYNCHRONOUS`)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, memory=parsed.database in (None, "", ":memory:"),
                              settings=sqlite_settings(sqlite_synchronous))
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
        pool_recycle=1800, connect_args=pg_connect_args("activejob"),
        # The most recently returned connection first: a caller issuing one statement after
        # another keeps talking to one server process, still warm (the FIFO default rotates
        # through the pool: about 70 us of a 440 us single enqueue here).
        pool_use_lifo=True,
    )
    _cheap_ping(engine)
    return engine


def _cheap_ping(engine: Engine) -> None:
    """Pre-ping without a round trip on every checkout.

    An idle pooled connection receives nothing unless the server has something to say:
    after a restart or pg_terminate_backend the socket is readable (an error, then EOF).
    So a readable socket gets the real `SELECT 1`; a quiet one is taken as alive, and a
    connection that dies anyway fails its statement, is invalidated and is retried.
    """
    real = engine.dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        try:
            if dbapi_connection.closed or dbapi_connection.broken:
                return False
            quiet = pg_quiet(dbapi_connection)
        except Exception:
            return real(dbapi_connection)
        return True if quiet else real(dbapi_connection)

    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]


def pg_quiet(conn: Any) -> bool:
    """Whether an idle psycopg connection has heard nothing from the server since its last
    statement: if so it is taken as alive (see `_cheap_ping`)."""
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    return not readable


def pg_dsn(url: str) -> str:
    """The libpq connection string of a PostgreSQL URL, for psycopg connections of our own."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_engine(url: str, *, memory: bool, settings: tuple[str, ...]) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transactions into our own hands (see _on_begin) and set up WAL once.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute(SQLITE_WAL)
        for statement in settings:
            cursor.execute(statement)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the lock at BEGIN: a deferred transaction that upgrades to a
        # writer later can fail with SQLITE_BUSY at once instead of waiting its turn.
        reading = conn.get_execution_options().get("activejob_read")
        conn.exec_driver_sql(SQLITE_BEGIN_READ if reading else SQLITE_BEGIN_WRITE)

    return engine


def insert_unless_exists(table: Table, column: str, dialect: str, *, partial: bool = True,
                         where: str | None = None) -> Any:
    """INSERT ... ON CONFLICT (column) DO NOTHING, in the dialect's own words. A `partial`
    unique index (WHERE column IS NOT NULL, or the predicate `where`) is named as such in the
    conflict target: both databases match the target to the index by its predicate."""
    index_where: Any = text(where) if where is not None else table.c[column].isnot(None) if partial else None
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=[column], index_where=index_where)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=[column], index_where=index_where)


def claim_lock_clause(engine: Engine) -> str:
    # SKIP LOCKED lets many workers claim side by side, each taking different rows;
    # SQLite has one writer at a time, so BEGIN IMMEDIATE already serialises claims.
    return " FOR UPDATE SKIP LOCKED" if engine.dialect.name == "postgresql" else ""


def notify(conn: Connection, payload: str = "") -> None:
    """Wake listeners in other processes when this transaction commits (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(pg_notify(NOTIFY_CHANNEL, payload))


class ChangeWatcher:
    """Calls `on_change` soon after another process commits to the database.

    PostgreSQL: a dedicated connection LISTENs for the NOTIFY sent with every enqueue.
    SQLite: `PRAGMA data_version` changes whenever another connection commits, and is
    cheap enough to read every few milliseconds. Either way polling remains the
    safety net; a lost connection is retried with backoff.
    """

    channel = NOTIFY_CHANNEL  # PostgreSQL: what it LISTENs to
    application_name = "activejob-listen"

    def __init__(self, url: str, on_change: Callable[[str], None], *, interval: float = 0.005) -> None:
        self.url = normalize_url(url)
        self.on_change = on_change
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        target = self._listen_pg if self.url.startswith("postgresql") else self._watch_sqlite
        self._thread = threading.Thread(target=self._run, args=(target,), name="activejob-watch", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to end, without waiting: it does within half a second (one
        LISTEN wait, or one SQLite poll), so an event loop can call this."""
        self._stop.set()

    def stop(self) -> None:
        """End the thread and wait for it (up to 5 s)."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, target: Callable[[], None]) -> None:
        delay = 0.1
        while not self._stop.is_set():
            started = clock.monotonic()
            try:
                target()
                delay = 0.1
            except Exception as error:  # a dropped connection: back off and reconnect
                if clock.monotonic() - started > 10:
                    delay = 0.1  # it had been connected a while: a new outage starts the backoff afresh
                log.warning("change watcher lost its connection (%s); retrying in %.1fs", error, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _watch_sqlite(self) -> None:
        import sqlite3

        path = make_url(self.url).database or ":memory:"
        if path == ":memory:":
            self._stop.wait()
            return
        with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as conn:
            last = conn.execute(SQLITE_DATA_VERSION).fetchone()[0]
            while not self._stop.wait(self.interval):
                version = conn.execute(SQLITE_DATA_VERSION).fetchone()[0]
                if version != last:
                    last = version
                    self.on_change("")

    def _listen_pg(self) -> None:
        import psycopg

        with psycopg.connect(pg_dsn(self.url), autocommit=True, **pg_connect_args(self.application_name)) as conn:
            conn.execute(pg_listen(self.channel))
            self.on_change("")  # anything written while we were not listening
            while not self._stop.is_set():
                for note in _notifies(conn, timeout=0.5):
                    self.on_change(note)


def _notifies(conn: Any, timeout: float) -> Iterator[str]:
    # Wait with select(), which keeps real time: psycopg times `notifies(timeout=)` with
    # time.monotonic, which freezegun stops, and the listener would then never return
    # to see that it should stop. Once the socket is readable, take what has arrived.
    readable, _, _ = select.select([conn.fileno()], [], [], timeout)
    if not readable:
        return
    for note in conn.notifies(timeout=0.0, stop_after=256):
        yield note.payload
