"""libpq options in a PostgreSQL database URL (`?options=-c name=value`) reach every
connection activejob opens: SQLAlchemy's pool, the store's own connections for one-statement
writes, and a worker's connection on its event loop. docs/deployment.md uses it for
`synchronous_commit=off`, commits that do not wait for their WAL flush."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from sqlalchemy import make_url

import activejob
from activejob import BaseJob, JobQueue, NoArgs, job
from activejob.store.aio import LoopConnection
from activejob.store.dbapi import PgCall

pytestmark = pytest.mark.postgres

COMMIT_OFF = "-csynchronous_commit=off"  # as a URL spells it: ?options=-csynchronous_commit%3Doff


@job("url_options_noop", schema=NoArgs)
class Noop(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        return None


@pytest.fixture
def queue(pg_url: str) -> Iterator[JobQueue]:
    url = make_url(pg_url).update_query_dict({"options": COMMIT_OFF})
    q = activejob.configure(url.render_as_string(hide_password=False))
    yield q
    JobQueue.reset()


def test_the_pool_runs_with_the_urls_options(queue: JobQueue) -> None:
    with queue.store.engine.connect() as c:
        assert c.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"


def test_the_one_statement_writes_run_with_the_urls_options(queue: JobQueue) -> None:
    hot_connections = queue.store._pg_hot
    assert hot_connections is not None
    hot = hot_connections.take()
    assert hot is not None
    try:
        assert hot.run("SHOW synchronous_commit", {}) == [("off",)]
    finally:
        hot_connections.give(hot)


def test_a_workers_own_connection_runs_with_the_urls_options(queue: JobQueue) -> None:
    async def show() -> str:
        conn = LoopConnection(queue.store)
        try:
            return await conn._run(PgCall("SHOW synchronous_commit", {}, lambda rows: rows[0][0]))
        finally:
            await conn.aclose()

    assert anyio.run(show) == "off"


def test_jobs_enqueued_and_run_through_such_a_url_complete(queue: JobQueue) -> None:
    handles = [Noop.perform_later() for _ in range(3)] + Noop.perform_all_later([{}] * 3)
    queue.run_until_idle()
    assert [h.status for h in handles] == ["completed"] * 6
