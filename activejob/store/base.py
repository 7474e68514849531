"""The store's plumbing: the tables, the engine, read and write transactions, and the
event rows that every verb appends in the same transaction as its change."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from itertools import islice
from typing import Any, NoReturn

from sqlalchemy import Table, event, insert, literal_column, select
from sqlalchemy.engine import Connection, Engine, RowMapping

from .. import dialects
from ..errors import InvalidTransition, JobNotFound
from ..models import Job, JobEvent, JobStatus, PausedQueue, Worker
from ..records import EventRecord
from . import sql
from .checkpoints import WalCheckpointer
from .pg_connections import PgHotConnections

jobs: Table = Job.__table__  # type: ignore[attr-defined]
events: Table = JobEvent.__table__  # type: ignore[attr-defined]
workers: Table = Worker.__table__  # type: ignore[attr-defined]
paused: Table = PausedQueue.__table__  # type: ignore[attr-defined]

EVENTS_CHANNEL = sql.EVENTS_CHANNEL
"""PostgreSQL channel NOTIFYed by every transaction that appends events (EventRelay listens)."""
BATCH_EVENT_NAME = "batch"
"""The `name` of a batch's own events (they have no job type), and so their signals' sender."""

RUNNING = JobStatus.RUNNING.value
PENDING = JobStatus.PENDING.value
# What a claim writes over: each attempt reports its own progress from nothing.
NO_PROGRESS: dict[str, None] = dict.fromkeys(
    ("progress", "progress_message", "progress_phase", "progress_current", "progress_total"))

EVENT_COLUMNS = (
    jobs.c.id, jobs.c.name, jobs.c.queue, jobs.c.owner, jobs.c.status, jobs.c.attempts, jobs.c.parent_id,
)
"""What a changed job's RETURNING hands back: enough to write its event (and wake its parent)."""


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the database could not be reached (try the same write again
    later) rather than that it refused this data (trying again would fail the same way)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, TimeoutError

    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, OperationalError | InterfaceError | TimeoutError | ConnectionError):
        return True
    # The drivers' own errors, where a hot path meets them unwrapped (PEP 249 names).
    return any(cls.__name__ in ("OperationalError", "InterfaceError") for cls in type(error).__mro__)


WrittenListener = Callable[[str, Sequence[int]], None]

_written_listeners: list[WrittenListener] = []


def on_events_written(listener: WrittenListener) -> None:
    """Call `listener(database_url, event_ids)` whenever this process writes event rows.

    This is how the layer above learns which events it will send as signals itself
    (`emit.note_written`, so that an EventRelay in the same process skips them) without
    the store importing it. A listener is called inside the write, before the store hands
    the events to anyone, and must be quick and must not raise.
    """
    if listener not in _written_listeners:
        _written_listeners.append(listener)


def dump(data: dict[str, Any] | None) -> str | None:
    return json.dumps(data, default=str, separators=(",", ":")) if data else None


def json_rows(rows: Iterable[dict[str, Any] | list[Any]]) -> str:
    """Rows (objects or arrays) as one JSON text: a PostgreSQL statement's many values as one
    parameter, not an array per column, which psycopg dumps value by value in Python (see
    PG_FINISH_CTES and PG_ENQUEUE). Text goes as it is, not as `\\u` escapes: a database
    whose encoding is not UTF-8 refuses those above ASCII. Encoded a thousand rows at a time,
    so that a bulk enqueue never holds all its rows as Python lists at once.

    >>> json_rows(iter([{"a": 1}, ["é", None]]))
    '[{"a":1},["é",null]]'
    """
    rows = iter(rows)
    parts = []
    while chunk := list(islice(rows, 1000)):
        parts.append(_ROWS.encode(chunk)[1:-1])
    return "[" + ",".join(parts) + "]"


_ROWS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def new_lease_token() -> str:
    """A claim's fresh lease token: 128 random bits as 32 hex digits (uuid4's length, at a
    third of its cost: a claim draws one per look at the queue)."""
    return secrets.token_hex(16)


@lru_cache(maxsize=64)
def start_data(worker_id: str) -> str:
    """The `data` of a `started` event, the same for every claim of a worker: encoded once."""
    return json.dumps({"worker_id": worker_id}, separators=(",", ":"))


class StoreBase:
    """The engine and the transactions every group of verbs works through."""

    def __init__(self, url: str, *, pool_size: int = 5, sqlite_synchronous: str = "NORMAL") -> None:
        self.url = dialects.normalize_url(url)
        self.engine: Engine = dialects.create(self.url, pool_size=pool_size, sqlite_synchronous=sqlite_synchronous)
        self._sqlite_synchronous = sqlite_synchronous  # the hot paths' own connection needs it too (dbapi.py)
        self.dialect = self.engine.dialect.name
        # SQLite allows one writer; taking turns here is far cheaper than letting
        # threads of one process collide in SQLite's sleeping busy handler.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        # SQLite: the one cursor the hot paths write with, on a connection of its own (see
        # _sqlite_tx); the write lock serialises its users.
        self._hot: Any = None
        # SQLite: checkpoints the file's WAL beside the hot paths' commits (checkpoints.py).
        self._checkpointer: WalCheckpointer | None = None
        # PostgreSQL: the one-statement hot paths' own autocommit connections (dbapi.py).
        self._pg_hot: PgHotConnections | None = None
        if self.dialect == "postgresql":
            self._pg_hot = PgHotConnections(dialects.pg_dsn(self.url), pool_size)
        self._skip_locked = dialects.claim_lock_clause(self.engine)
        self._insert_events = insert(events).returning(*events.c, sort_by_parameter_order=True)
        if self.dialect == "postgresql":
            # The NOTIFYs ride in the insert's RETURNING (one call a row; a transaction's
            # identical notifications are delivered once): each was a round trip of its own.
            notify_relays: Any = literal_column(sql.PG_WAKE_RELAYS).label("notified")
            notify_workers: Any = literal_column(sql.PG_WAKE_WORKERS).label("woken")
            self._insert_events_waking = insert(events).returning(
                *events.c, notify_relays, notify_workers, sort_by_parameter_order=True)
            self._insert_events = insert(events).returning(*events.c, notify_relays, sort_by_parameter_order=True)
        self._sql: dict[Any, str] = {}  # prebuilt hot-path statements
        self._steps = threading.local()
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", lambda conn, _record: self.watch_steps(conn))

    def watch_steps(self, conn: Any) -> None:
        """Count the SQLite VM steps `conn` runs (a progress handler, called every thousand)
        for the thread running them: `steps_here()` before and after a statement tells how
        much work it did, whatever the machine's load (claim.py's LONG_LOOK)."""
        conn.set_progress_handler(self._count_steps, 1000)

    def _count_steps(self) -> int:
        self._steps.thousands = getattr(self._steps, "thousands", 0) + 1
        return 0  # go on

    def steps_here(self) -> int:
        """Thousands of SQLite steps this thread's statements on the store's connections ran."""
        return getattr(self._steps, "thousands", 0)

    @contextmanager
    def write(self, conn: Connection | None = None) -> Iterator[Connection]:
        """A write transaction (or the caller's own connection, left uncommitted)."""
        if conn is not None:
            yield conn
            return
        if self._write_lock is None:
            with self.engine.begin() as c:
                yield c
            return
        with self._write_lock:
            with self.engine.begin() as c:
                driver = c.connection.dbapi_connection
                before = driver.total_changes if driver is not None else 0
                yield c
                rows = driver.total_changes - before if driver is not None else 0
            if self._checkpointer is not None:  # counted as the hot paths' commits are (checkpoints.py)
                self._checkpointer.wrote(rows)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as c:
            yield c.execution_options(activejob_read=True)

    def dispose(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:  # first: no checkpoint runs while the connections close
            checkpointer.close()
        hot, self._hot = self._hot, None
        if hot is not None and not self._memory:
            hot.connection.close()
        if self._pg_hot is not None:
            self._pg_hot.close()
        self.engine.dispose()

    @property
    def _memory(self) -> bool:
        return self.engine.url.database in (None, "", ":memory:")

    def upgrade(self) -> None:
        """Bring the schema to the newest migration shipped with this package."""
        from ..migrate import upgrade

        upgrade(self.engine)

    def _written(self, event_ids: Iterable[int]) -> None:
        """Tell the listeners (`on_events_written`) about events this process just wrote.

        Every verb calls it as soon as the event ids exist: inside the transaction, before
        it commits, and so always before the events go back to the caller, who sends them
        as signals. Why so early: an EventRelay of this process, on another thread, skips
        the events marked here, and it can only read a row once it is committed; marked
        before the commit, a row is never seen unmarked (and sent twice). The exception is
        PostgreSQL's one-statement hot paths, which commit as the statement ends and learn
        the ids only from its rows: they mark while reading those rows, the earliest moment
        there is, while a relay still has a NOTIFY and a query of its own to go.
        """
        ids = list(event_ids)
        if ids:
            for listener in _written_listeners:
                listener(self.url, ids)

    def _append(self, conn: Connection, rows: list[dict[str, Any]], *, wake: bool = False) -> list[EventRecord]:
        """Write event rows, waking EventRelays at commit (PostgreSQL's NOTIFY); `wake`: and
        idle workers of other processes, for a change that makes a job due."""
        if not rows:  # nothing changed: nobody to wake
            return []
        result = conn.execute(self._insert_events_waking if wake and self.dialect == "postgresql"
                              else self._insert_events, rows)
        recorded = [EventRecord.from_row(r) for r in result.mappings()]
        self._written(r.id for r in recorded)  # in the transaction: before any relay can read them
        return recorded

    @staticmethod
    def _refuse(c: Connection, job_id: int, why: Callable[[str], str]) -> NoReturn:
        """Raise for a guarded change that matched no row: no such job, or not in a state for it."""
        status = c.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
        if status is None:
            raise JobNotFound(f"no job with id {job_id}")
        raise InvalidTransition(why(str(status)))

    @staticmethod
    def _event(row: RowMapping | dict[str, Any], type_: str, now: datetime, data: dict[str, Any] | None = None,
               status: str | None = None) -> dict[str, Any]:
        return {
            "job_id": row["id"], "type": type_, "name": row["name"], "queue": row["queue"],
            "owner": row["owner"], "status": status or row["status"], "attempt": row["attempts"],
            "data": dump(data), "created_at": now,
        }
