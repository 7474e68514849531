"""A worker's own PostgreSQL connection on its event loop (`LoopConnection`): the claim and
finish-and-claim statements awaited there, against the real server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from runner_support import sql
from sqlalchemy.exc import DBAPIError

from activejob import BaseJob, JobQueue, NoArgs, job
from activejob.store import LoopConnection, Outcome, Store, WouldBlock

pytestmark = pytest.mark.postgres


@job("loop_conn_noop", schema=NoArgs)
class Noop(BaseJob[NoArgs]):
    async def perform(self, args: NoArgs) -> None:
        return None


def enqueue(url: str, count: int) -> list[int]:
    queue = JobQueue(url, auto_migrate=False)
    try:
        return [h.id for h in queue.enqueue([Noop.set().request({}, max_args_bytes=10_000) for _ in range(count)])]
    finally:
        queue.close()


def run(url: str, steps: Any) -> Any:
    """Run `steps(connection)` on a fresh event loop with a LoopConnection, closed after."""
    store = Store(url)

    async def main() -> Any:
        conn = LoopConnection(store)
        try:
            return await steps(conn)
        finally:
            await conn.aclose()

    try:
        return anyio.run(main)
    finally:
        store.dispose()


def now() -> datetime:
    return datetime.now(UTC)


def claim(conn: LoopConnection, limit: int) -> Any:
    return conn.claim(worker_id="w1", names=["loop_conn_noop"], queues=None, limit=limit, now=now(), lease=30)


def completed(job_id: int, token: str) -> Outcome:
    return Outcome(job_id, token, "completed", "completed")


def test_claim_takes_due_jobs_in_order_with_started_events(pg_url: str) -> None:
    ids = enqueue(pg_url, 3)

    async def steps(conn: LoopConnection) -> Any:
        return await claim(conn, 2)

    claimed, started = run(pg_url, steps)
    assert [c.id for c in claimed] == ids[:2]
    assert [e.job_id for e in started] == ids[:2] and {e.type for e in started} == {"started"}
    rows = sql(pg_url, "SELECT id, status, worker_id FROM activejob_jobs ORDER BY id")
    assert [tuple(r) for r in rows] == [(ids[0], "running", "w1"), (ids[1], "running", "w1"), (ids[2], "pending", None)]


def test_finish_and_claim_writes_outcomes_and_refills_in_one_statement(pg_url: str) -> None:
    ids = enqueue(pg_url, 3)

    async def steps(conn: LoopConnection) -> Any:
        claimed, _ = await claim(conn, 2)
        return await conn.finish_and_claim([completed(c.id, c.lease_token) for c in claimed], now(),
                                           worker_id="w1", names=["loop_conn_noop"], queues=None, limit=2, lease=30)

    written, recorded, claimed, started, rest = run(pg_url, steps)
    assert written == set(ids[:2]) and rest == []
    assert [(e.job_id, e.type) for e in recorded] == [(ids[0], "completed"), (ids[1], "completed")]
    assert [c.id for c in claimed] == [ids[2]] and [e.job_id for e in started] == [ids[2]]
    events = sql(pg_url, "SELECT job_id, type FROM activejob_events WHERE type <> 'enqueued' ORDER BY id")
    assert [tuple(e) for e in events] == [(ids[0], "started"), (ids[1], "started"), (ids[0], "completed"),
                                          (ids[1], "completed"), (ids[2], "started")]


def test_an_outcome_whose_lease_was_lost_is_handed_back_unwritten(pg_url: str) -> None:
    (job_id,) = enqueue(pg_url, 1)

    async def steps(conn: LoopConnection) -> Any:
        await claim(conn, 1)
        return await conn.finish_and_claim([completed(job_id, "not-the-lease")], now(), worker_id="w1",
                                           names=["loop_conn_noop"], queues=None, limit=0, lease=30)

    written, recorded, claimed, _started, rest = run(pg_url, steps)
    assert written == set() and recorded == [] and claimed == []
    assert [o.job_id for o in rest] == [job_id]
    assert sql(pg_url, "SELECT status FROM activejob_jobs")[0][0] == "running"


def test_a_parent_waiting_for_children_is_left_to_the_general_path(pg_url: str) -> None:
    (job_id,) = enqueue(pg_url, 1)

    async def steps(conn: LoopConnection) -> Any:
        claimed, _ = await claim(conn, 1)
        waiting = Outcome(job_id, claimed[0].lease_token, "waiting", "waiting", refund_attempt=True)
        with pytest.raises(WouldBlock):
            await conn.finish_and_claim([waiting], now(), worker_id="w1", names=["loop_conn_noop"], queues=None,
                                        limit=1, lease=30)

    run(pg_url, steps)
    assert sql(pg_url, "SELECT status FROM activejob_jobs")[0][0] == "running", "nothing was written"


def test_a_terminated_connection_fails_one_call_and_the_next_reconnects(pg_url: str) -> None:
    ids = enqueue(pg_url, 2)
    terminate = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND application_name = 'activejob-worker'")

    async def steps(conn: LoopConnection) -> Any:
        first, _ = await claim(conn, 1)
        assert sql(pg_url, terminate)[0][0] == 1
        with pytest.raises(DBAPIError):
            await claim(conn, 1)
        second, _ = await claim(conn, 1)
        return first + second

    assert [c.id for c in run(pg_url, steps)] == ids


def test_a_statement_the_server_refuses_fails_that_call_and_keeps_the_connection(pg_url: str) -> None:
    ids = enqueue(pg_url, 1)

    def backend(conn: LoopConnection) -> int:
        return conn._hot.connection.pgconn.backend_pid  # type: ignore[union-attr,no-any-return]

    async def steps(conn: LoopConnection) -> Any:
        await conn.finish_and_claim([], now(), worker_id="w1", names=["loop_conn_noop"], queues=None, limit=0,
                                    lease=30)
        before = backend(conn)
        with pytest.raises(DBAPIError, match="LIMIT must not be negative"):
            await conn.finish_and_claim([], now(), worker_id="w1", names=["loop_conn_noop"], queues=None,
                                        limit=-1, lease=30)
        claimed, _ = await claim(conn, 1)
        return claimed, backend(conn) == before

    claimed, same = run(pg_url, steps)
    assert [c.id for c in claimed] == ids and same


def test_its_statements_are_planned_once(pg_url: str) -> None:
    enqueue(pg_url, 20)

    async def steps(conn: LoopConnection) -> Any:
        claimed, _ = await claim(conn, 1)
        for _ in range(10):
            _w, _r, claimed, _s, _rest = await conn.finish_and_claim(
                [completed(c.id, c.lease_token) for c in claimed], now(), worker_id="w1",
                names=["loop_conn_noop"], queues=None, limit=1, lease=30)
        cursor = await conn._hot.connection.execute(  # type: ignore[union-attr]
            "SELECT sum(generic_plans), sum(custom_plans) FROM pg_prepared_statements")
        return await cursor.fetchone()

    generic, custom = run(pg_url, steps)
    assert custom == 0 and generic >= 11


def test_every_connection_gives_up_on_a_silent_server(pg_url: str) -> None:
    """Keepalives and a TCP user timeout: a vanished server is noticed in about a minute."""

    async def steps(conn: LoopConnection) -> Any:
        await claim(conn, 1)
        return conn._hot.connection.info.get_parameters()  # type: ignore[union-attr]

    store = Store(pg_url)
    try:
        fairy = store.engine.raw_connection()
        pooled = fairy.driver_connection.info.get_parameters()  # type: ignore[union-attr]
        fairy.close()
    finally:
        store.dispose()
    for params in (pooled, run(pg_url, steps)):
        assert params["keepalives_idle"] == "30" and params["tcp_user_timeout"] == "60000"
        assert params["connect_timeout"] == "10"
