"""A worker's own PostgreSQL connection on its event loop, for the two statements it runs
for every batch of jobs: claim, and finish-and-claim.

Run through a thread, each of those costs two thread wake-ups (there and back) on top of
the round trip, and with few jobs in flight the worker waits on nothing else: measured,
a third of a concurrency-4 drain. Awaited here, the loop only waits on the socket. The
SQL and the reading of its rows are the store's own (`PgCall`); only the connection is
different. Everything else (progress, heartbeats, the general paths) stays on the pool.
The statements are prepared at once and keep their generic plan (see `_connect`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from anyio import CancelScope

from .. import dialects
from ..models import JobStatus
from ..records import Claimed, EventRecord
from .dbapi import PgCall, WouldBlock, as_sqlalchemy
from .pg_connections import HotConnection
from .values import Outcome

if TYPE_CHECKING:
    from . import Store
    from .finish import HotBatch

T = TypeVar("T")

log = logging.getLogger("activejob.store")


class LoopConnection:
    """One autocommit psycopg AsyncConnection, opened on first use and reopened after a
    failure, its statements run by `HotConnection.arun`, one at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._hot: HotConnection | None = None
        # The claim loop and the outcome loop share the connection. Not fast_acquire (as the
        # recorder's lock is): taking a free lock at once drained slower here, in five of six
        # interleaved pairs (2026-12-07), perhaps as the trip round the loop lets outcomes in.
        self._lock = anyio.Lock()
        self._dsn = dialects.pg_dsn(store.url)

    async def claim(self, *, worker_id: str, names: Sequence[str], queues: Sequence[str] | None, limit: int,
                    now: datetime, lease: float, per_type: bool = False) -> tuple[list[Claimed], list[EventRecord]]:
        """`Store.claim`, awaited."""
        if limit <= 0 or not names:
            return [], []
        return await self._run(self.store.pg_claim_call(worker_id, names, queues, limit, now, lease, per_type))

    async def finish_and_claim(self, outcomes: Sequence[Outcome], now: datetime, *, worker_id: str,
                               names: Sequence[str], queues: Sequence[str] | None, limit: int, lease: float,
                               per_type: bool = False) -> HotBatch:
        """`Store.finish_and_claim`'s one statement, awaited. The outcomes it hands back
        last were not written by it: the caller passes them to `Store.finish`.

        Raises WouldBlock, having changed nothing, for an outcome only the general path
        can write (a job that waits for its children)."""
        if any(o.status == JobStatus.WAITING.value for o in outcomes):
            raise WouldBlock("not a hot-path case")
        return await self._run(self.store.pg_finish_and_claim_call(
            outcomes, now, worker_id, names if limit > 0 else (), queues, limit, lease, per_type))

    async def _run(self, call: PgCall[T]) -> T:
        import psycopg

        # Shielded: a statement that was sent runs to its end and its rows are read, so a
        # claim that committed is never lost to a cancellation (as a thread's would not be).
        with CancelScope(shield=True):
            async with self._lock:
                try:
                    if self._hot is None:
                        self._hot = HotConnection(await self._connect())
                    rows = await self._hot.arun(call.sql, call.params)
                except psycopg.Error as error:
                    await self._drop_unless_idle()
                    raise as_sqlalchemy(error, psycopg.Error) from error
                except BaseException:
                    await self._drop_unless_idle()
                    raise
        return call.read(rows)

    async def _connect(self) -> Any:
        import psycopg

        # Bounded (see pg_connect_args): it runs shielded, and a worker must still be able to stop.
        conn = await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, **dialects.pg_connect_args("activejob-worker"))
        # Only the hot statements run here, written so that their one sensible plan is the
        # generic one: prepared once and never planned again (planning was half their cost).
        try:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
        except psycopg.Error:  # an old server or a pooler that refuses it: plans as usual
            log.info("could not keep generic plans on the worker's connection; planning each statement")
        return conn

    async def _drop_unless_idle(self) -> None:
        """After a failure: keep the connection only if it is open and between statements
        (the server refused one); a broken one, or one left mid-statement, is closed."""
        from psycopg.pq import ConnStatus, TransactionStatus

        hot = self._hot
        if hot is None:
            return
        pgconn = hot.connection.pgconn
        if pgconn.status != ConnStatus.OK or pgconn.transaction_status != TransactionStatus.IDLE:
            self._hot = None
            await hot.connection.close()

    async def aclose(self) -> None:
        hot, self._hot = self._hot, None
        if hot is not None:
            with CancelScope(shield=True):
                await hot.connection.close()
