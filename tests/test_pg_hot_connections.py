"""The store's own autocommit PostgreSQL connections for one-statement writes
(`PgHotConnections`): a single `perform_later` runs there, outside SQLAlchemy's pool, as a
statement prepared on the connection and run by libpq (`HotConnection.run`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import anyio
import psycopg
import pytest
from runner_support import sql, wait_for
from sqlalchemy.exc import DBAPIError

import activejob
from activejob import BaseJob, JobQueue, NoArgs, job
from activejob.dialects import pg_dsn
from activejob.store.pg_connections import _MAX_STATEMENTS, HotConnection

pytestmark = pytest.mark.postgres

OURS = "datname = current_database() AND application_name = 'activejob'"


@job("hot_conn_noop", schema=NoArgs)
class Noop(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        return None


@pytest.fixture
def queue(pg_url: str) -> Iterator[JobQueue]:
    q = activejob.configure(pg_url, pool_size=2)
    yield q
    JobQueue.reset()


def jobs_stored(url: str) -> int:
    return int(sql(url, "SELECT count(*) FROM activejob_jobs")[0][0])


def test_an_enqueue_after_the_server_ended_the_connection_succeeds(queue: JobQueue, pg_url: str) -> None:
    Noop.perform_later()
    assert sql(pg_url, f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {OURS}")[0][0] >= 1
    # pg_terminate_backend only signals: the sessions end (and say so on their sockets) a moment later.
    wait_for(lambda: sql(pg_url, f"SELECT count(*) FROM pg_stat_activity WHERE {OURS}")[0][0] == 0, 10,
             what="the terminated sessions to end")

    Noop.perform_later()

    assert jobs_stored(pg_url) == 2


def test_no_more_than_pool_size_are_opened_and_past_that_the_pool_serves(queue: JobQueue, pg_url: str) -> None:
    hot = queue.store._pg_hot
    assert hot is not None
    taken = [hot.take(), hot.take()]
    try:
        assert None not in taken
        assert hot.take() is None
        Noop.perform_later()  # on a connection of SQLAlchemy's pool
    finally:
        for conn in taken:
            hot.give(conn)  # type: ignore[arg-type]
    assert jobs_stored(pg_url) == 1


def test_a_connection_given_back_in_a_transaction_is_closed_not_reused(queue: JobQueue) -> None:
    hot = queue.store._pg_hot
    assert hot is not None
    conn = hot.take()
    assert conn is not None
    conn.connection.autocommit = False
    conn.connection.execute("SELECT 1")  # leaves a transaction open, as an interrupted statement would
    hot.give(conn)

    assert conn.connection.closed
    assert hot.take() is not conn


def test_closing_the_queue_closes_its_connections(queue: JobQueue, pg_url: str) -> None:
    Noop.perform_later()
    assert sql(pg_url, f"SELECT count(*) FROM pg_stat_activity WHERE {OURS}")[0][0] >= 1

    JobQueue.reset()

    assert sql(pg_url, f"SELECT count(*) FROM pg_stat_activity WHERE {OURS}")[0][0] == 0


def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents_alone(
        queue: JobQueue, pg_url: str) -> None:
    hot = queue.store._pg_hot
    assert hot is not None
    Noop.perform_later()  # the parent now holds an idle connection
    parents = hot._idle[-1]
    pid = os.fork()
    if pid == 0:  # the child: enqueue, close everything, leave without pytest's cleanup
        code = 1
        try:
            Noop.perform_later()
            code = 0 if hot._idle and hot._idle[-1] is not parents else 2
            JobQueue.reset()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child enqueued on the parent's connection"

    backend = parents.connection.info.backend_pid
    alive = sql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid", pid=backend)
    assert alive[0][0] == 1, "the child ended the parent's session"
    Noop.perform_later()
    assert hot._idle[-1] is parents
    assert jobs_stored(pg_url) == 3


def test_a_statement_reads_and_writes_values_as_psycopg_does(queue: JobQueue) -> None:
    hot = queue.store._pg_hot
    assert hot is not None
    conn = hot.take()
    assert conn is not None
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    try:
        rows = conn.run("SELECT %(n)s::int + 1, %(t)s, %(at)s::timestamptz, %(names)s::text[], %(none)s::bigint, "
                        "'100%%', %(n)s", {"n": 41, "t": "it's", "at": at, "names": ["a", "b'c"], "none": None})
    finally:
        hot.give(conn)

    assert rows == [(42, "it's", at, ["a", "b'c"], None, "100%", 41)]


def test_a_failed_statement_raises_sqlalchemys_error_and_its_connection_serves_on(queue: JobQueue) -> None:
    hot = queue.store._pg_hot
    assert hot is not None
    Noop.perform_later()
    pid = hot._idle[-1].connection.info.backend_pid

    with pytest.raises(DBAPIError, match="division by zero"):
        queue.store._pg_one("SELECT 1 / %(zero)s", {"zero": 0})

    Noop.perform_later()
    assert hot._idle[-1].connection.info.backend_pid == pid


def test_a_connection_keeps_a_bounded_number_of_prepared_statements(queue: JobQueue) -> None:
    hot = queue.store._pg_hot
    assert hot is not None
    conn = hot.take()
    assert conn is not None
    try:
        for i in range(_MAX_STATEMENTS + 5):
            assert conn.run(f"SELECT {i} + %(x)s", {"x": 1}) == [(i + 1,)]
        kept = conn.run("SELECT count(*) FROM pg_prepared_statements", {})
    finally:
        hot.give(conn)

    assert 0 < kept[0][0] <= _MAX_STATEMENTS


def test_on_an_event_loop_too_a_connection_keeps_a_bounded_number_of_prepared_statements(pg_url: str) -> None:
    """`HotConnection.arun`, as a worker's LoopConnection runs its statements."""

    async def main() -> tuple[list[tuple[int, ...]], int]:
        async with await psycopg.AsyncConnection.connect(pg_dsn(pg_url), autocommit=True) as c:
            conn = HotConnection(c)
            answers = [(await conn.arun(f"SELECT {i} + %(x)s", {"x": 1}))[0] for i in range(_MAX_STATEMENTS + 5)]
            kept = await conn.arun("SELECT count(*) FROM pg_prepared_statements", {})
            return answers, kept[0][0]

    answers, kept = anyio.run(main)
    assert answers == [(i + 1,) for i in range(_MAX_STATEMENTS + 5)]
    assert 0 < kept <= _MAX_STATEMENTS
