"""Shared fixtures: one `db_url` fixture runs a test on a real SQLite file and on the
real PostgreSQL (a database of its own per test session)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runner_support import unavailable
from sqlalchemy import create_engine, text

import activejob
from activejob import JobQueue, registry
from activejob.recurring import schedules

PG_ADMIN_URL = os.environ.get("ACTIVEJOB_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as error:  # no server, no driver
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {error}"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL server for this test session."""
    problem = _pg_reachable()
    if problem:
        unavailable(problem, "PostgreSQL tests")
    name = f"activejob_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # outlives a restart
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    # Migrate once; tests then start from empty tables.
    JobQueue(url).store.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE activejob_jobs, activejob_events, activejob_workers, activejob_paused_queues, "
                          "activejob_batches, activejob_dependencies, activejob_rate_starts RESTART IDENTITY"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """A database URL: a new SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    url: str = request.getfixturevalue("pg_server_url")
    _truncate(url)
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> str:
    """The session's PostgreSQL database, emptied (for PostgreSQL-only tests)."""
    _truncate(pg_server_url)
    return pg_server_url


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/jobs.db"


@pytest.fixture
def queue(db_url: str) -> Iterator[JobQueue]:
    """The process-wide queue on `db_url`, with short intervals so tests run fast."""
    q = activejob.configure(db_url, poll_interval=0.05, progress_interval=0.05, lease=5, cancel_grace=0.5)
    yield q
    JobQueue.reset()


@pytest.fixture(autouse=True)
def _registry_snapshot(request: pytest.FixtureRequest) -> Iterator[None]:
    """Job types and cron schedules a test defines inside itself are forgotten after it.

    A test starts with no cron schedule unless marked `imported_schedules`: a module imported
    at collection (the example app's jobs) declares schedules, and every worker a test runs
    would enqueue their next slot."""
    saved = dict(registry._jobs)
    saved_schedules = dict(schedules)
    if request.node.get_closest_marker("imported_schedules") is None:
        schedules.clear()
    yield
    registry._jobs.clear()
    registry._jobs.update(saved)
    schedules.clear()
    schedules.update(saved_schedules)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    """Worker subprocesses for the test (runner_support.workers_for), always killed after it."""
    from runner_support import workers_for

    with workers_for(tmp_path) as pool:
        yield pool
