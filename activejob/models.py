"""The tables: jobs, their durable event log, and the live workers.

SQLModel classes, so applications can read them with their own sessions; only
`store/` writes to them. The schema itself is created by the Alembic migrations in
`activejob/migrations` (`activejob db upgrade`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, Text, text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from .request import MAX_LENGTH


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the database keeps.

    SQLite has no time zones, so it stores naive UTC; PostgreSQL stores timestamptz.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def _id() -> Any:
    # BIGINT on PostgreSQL; INTEGER PRIMARY KEY (the rowid alias) on SQLite.
    return Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Column(UTCDateTime(), nullable=nullable, index=index)


UNIQUE_HELD = (
    "unique_key IS NOT NULL AND CASE WHEN unique_until = 'time' THEN true "
    "WHEN unique_until = 'expired' THEN false "
    "WHEN unique_until = 'started' THEN status IN ('pending', 'waiting') "
    "ELSE status IN ('pending', 'running', 'waiting') END"
)
"""When a job holds its unique key, by `unique_until`: while unfinished (NULL or 'finished', the
default), until it starts ('started'), or until `unique_expires_at` ('time'; an expired holder
is marked 'expired' by the enqueue that finds it). The unique index's predicate, and the
store's ON CONFLICT target."""


DEFAULT_QUEUE = "default"
"""The queue a job goes to unless told otherwise: on SQLite the one queue left out of the
named-queue index (`SQLITE_NAMED_QUEUE_WHERE`), since it holds most jobs."""

SQLITE_NAMED_QUEUE_WHERE = f"status = 'pending' AND queue <> '{DEFAULT_QUEUE}'"
"""Which rows SQLite's `ix_activejob_jobs_named_queue_due` holds: due jobs of every queue but
the default one. An enqueue to the default queue (most of them) writes nothing there; one
to a named queue writes an entry more (about a fifth of its SQLite time, measured)."""


def _partial(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    return Index(name, *columns, unique=unique, sqlite_where=text(where), postgresql_where=text(where))


class Job(SQLModel, table=True):
    """One job: its arguments, where it is in its life, and what came of it."""

    __tablename__ = "activejob_jobs"
    __table_args__ = (
        # The claim query walks this in order and stops after a few rows.
        Index(
            "ix_activejob_jobs_due",
            text("priority DESC"), "run_at", "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        # PostgreSQL only (see migration 0008): a queue's and a job type's due jobs in claim
        # order, for the claims that ask for named queues or one limited type.
        *(Index(f"ix_activejob_jobs_{column}_due", column, text("priority DESC"), "run_at", "id",
                postgresql_where=text("status = 'pending'")).ddl_if(dialect="postgresql")
          for column in ("queue", "name")),
        # SQLite only (see migration 0009): the due jobs of every queue but the default one, for
        # the claims of workers of named queues; an enqueue to the default queue writes nothing here.
        Index("ix_activejob_jobs_named_queue_due", "queue", text("priority DESC"), "run_at", "id",
              sqlite_where=text(SQLITE_NAMED_QUEUE_WHERE)).ddl_if(dialect="sqlite"),
        Index(
            "ix_activejob_jobs_leases",
            "lease_expires_at",
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        # Partial indexes: a new job writes only what claiming needs;
        # rows without an owner, parent, key or finish time cost nothing in the others.
        _partial("ix_activejob_jobs_finished", "status", "finished_at", where="finished_at IS NOT NULL"),
        _partial("ix_activejob_jobs_owner", "owner", where="owner IS NOT NULL"),
        _partial("ix_activejob_jobs_parent", "parent_id", where="parent_id IS NOT NULL"),
        # A key is held only while its job holds it (see UNIQUE_HELD); the plain index finds
        # every job that ever had a key, held or not.
        _partial("uq_activejob_jobs_unique_key", "unique_key", where=UNIQUE_HELD, unique=True),
        _partial("ix_activejob_jobs_unique_keys", "unique_key", where="unique_key IS NOT NULL"),
        _partial("ix_activejob_jobs_batch", "batch_id", "status", where="batch_id IS NOT NULL"),
        # Every worker looks for waiting jobs each poll (the parents' and dependents' safety
        # net): few rows, which without this meant reading the whole table each time.
        _partial("ix_activejob_jobs_waiting", "id", where="status = 'waiting'"),
        {"sqlite_autoincrement": True},  # ids are never reused
    )

    id: int | None = Field(default=None, sa_column=_id())
    name: str = Field(max_length=MAX_LENGTH["name"])
    queue: str = Field(default=DEFAULT_QUEUE, max_length=MAX_LENGTH["queue"])
    priority: int = 0
    status: str = Field(default=JobStatus.PENDING, max_length=20)
    args: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    result: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    traceback: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0
    max_retries: int = 0
    run_at: datetime = Field(sa_column=_ts(nullable=False))
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=_ts())
    finished_at: datetime | None = Field(default=None, sa_column=_ts())
    worker_id: str | None = Field(default=None, max_length=200)
    lease_token: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = Field(default=None, sa_column=_ts())
    cancel_requested: bool = False
    progress: float | None = None
    progress_message: str | None = Field(default=None, sa_column=Column(Text))
    progress_phase: str | None = Field(default=None, max_length=200)
    progress_current: int | None = Field(default=None, sa_column=Column(BigInteger))
    progress_total: int | None = Field(default=None, sa_column=Column(BigInteger))
    checkpoint: str | None = Field(default=None, sa_column=Column(Text))
    parent_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    owner: str | None = Field(default=None, max_length=MAX_LENGTH["owner"])
    unique_key: str | None = Field(default=None, max_length=MAX_LENGTH["unique_key"])
    concurrency_key: str | None = Field(default=None, max_length=MAX_LENGTH["concurrency_key"])
    batch_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    args_version: int | None = None  # the schema version its args were written with (None: 1)
    meta: str | None = Field(default=None, sa_column=Column(Text))  # JSON: trace context, per-call options
    unique_until: str | None = Field(default=None, max_length=20)
    unique_expires_at: datetime | None = Field(default=None, sa_column=_ts())
    rate_key: str | None = Field(default=None, max_length=MAX_LENGTH["concurrency_key"])
    has_dependents: bool | None = None  # set when a job that depends on this one is enqueued


class JobEvent(SQLModel, table=True):
    """One entry of the durable event log: a transition, progress, a log line, or something
    that happened to a batch (`batch_id` set, `job_id` NULL).

    Ids only grow, so a reader that remembers the last id it saw can ask for the rest.
    """

    __tablename__ = "activejob_events"
    __table_args__ = (
        Index("ix_activejob_events_job", "job_id", "id"),
        _partial("ix_activejob_events_owner", "owner", "id", where="owner IS NOT NULL"),
        _partial("ix_activejob_events_batch", "batch_id", "id", where="batch_id IS NOT NULL"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=_id())
    job_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # Only a batch's own events carry it: a member's events name their batch through the
    # job (readers join it), which keeps the hot paths' inserts as they are.
    batch_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    type: str = Field(max_length=40)
    name: str = Field(max_length=MAX_LENGTH["name"])
    queue: str = Field(default=DEFAULT_QUEUE, max_length=MAX_LENGTH["queue"])
    owner: str | None = Field(default=None, max_length=MAX_LENGTH["owner"])
    status: str = Field(max_length=20)
    attempt: int = 0
    data: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=_ts(nullable=False))


class Worker(SQLModel, table=True):
    """A live worker process, kept fresh by its heartbeat."""

    __tablename__ = "activejob_workers"

    id: str = Field(primary_key=True, max_length=200)
    host: str = Field(max_length=255)
    pid: int
    queues: str = Field(default="*", sa_column=Column(Text, nullable=False))
    job_types: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    concurrency: int = 1
    started_at: datetime = Field(sa_column=_ts(nullable=False))
    heartbeat_at: datetime = Field(sa_column=_ts(nullable=False, index=True))
    # {"mail": "10/s"}: the limits it keeps, as users write them (NULL: none, or an older worker)
    queue_rate_limits: str | None = Field(default=None, sa_column=Column(Text))


class Batch(SQLModel, table=True):
    """A group of jobs with callbacks once they have all finished (`activejob.Batch`)."""

    __tablename__ = "activejob_batches"
    __table_args__ = (
        _partial("ix_activejob_batches_open", "id", where="finished_at IS NULL"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=_id())
    description: str | None = Field(default=None, sa_column=Column(Text))
    owner: str | None = Field(default=None, max_length=MAX_LENGTH["owner"])
    callbacks: str | None = Field(default=None, sa_column=Column(Text))  # JSON: the callback jobs, encoded
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    sealed_at: datetime | None = Field(default=None, sa_column=_ts())  # its `with` block has ended
    finished_at: datetime | None = Field(default=None, sa_column=_ts())
    failed_at: datetime | None = Field(default=None, sa_column=_ts())  # a member failed for good
    cancelled_at: datetime | None = Field(default=None, sa_column=_ts())


class Dependency(SQLModel, table=True):
    """`job_id` waits for `depends_on_id` to complete."""

    __tablename__ = "activejob_dependencies"
    __table_args__ = (Index("ix_activejob_dependencies_on", "depends_on_id"),)

    job_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    depends_on_id: int = Field(sa_column=Column(BigInteger, primary_key=True))
    run_on_failure: bool = False


class RateStart(SQLModel, table=True):
    """One start counted against a rate limit, kept while it is inside the limit's window."""

    __tablename__ = "activejob_rate_starts"
    __table_args__ = (Index("ix_activejob_rate_starts_key", "key", "started_at"),)

    id: int | None = Field(default=None, sa_column=_id())
    key: str = Field(max_length=255)
    started_at: datetime = Field(sa_column=_ts(nullable=False))


class PausedQueue(SQLModel, table=True):
    """A paused queue: workers claim none of its jobs until it is resumed."""

    __tablename__ = "activejob_paused_queues"

    queue: str = Field(primary_key=True, max_length=200)
    paused_at: datetime = Field(sa_column=_ts(nullable=False))
