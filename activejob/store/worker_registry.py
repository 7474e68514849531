"""The worker rows: registration, liveness, and listing."""

from __future__ import annotations

import json
import socket
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from ..records import WorkerInfo
from .base import StoreBase, workers


def hostname() -> str:
    return socket.gethostname()


class WorkerRegistry(StoreBase):
    """register_worker, unregister_worker, remove_dead_workers and workers."""

    @staticmethod
    def _insert_worker(c: Connection, w: WorkerInfo, now: datetime) -> None:
        c.execute(insert(workers).values(
            id=w.id, host=w.host, pid=w.pid, queues=json.dumps(w.queues), job_types=json.dumps(w.job_types),
            concurrency=w.concurrency, started_at=w.started_at, heartbeat_at=now,
            queue_rate_limits=json.dumps(w.queue_rate_limits) if w.queue_rate_limits else None,
        ))

    def register_worker(self, worker: WorkerInfo, now: datetime) -> None:
        with self.write() as c:
            c.execute(delete(workers).where(workers.c.id == worker.id))
            self._insert_worker(c, worker, now)

    def unregister_worker(self, worker_id: str) -> None:
        with self.write() as c:
            c.execute(delete(workers).where(workers.c.id == worker_id))

    def remove_dead_workers(self, cutoff: datetime) -> int:
        with self.write() as c:
            return int(c.execute(delete(workers).where(workers.c.heartbeat_at < cutoff)).rowcount)

    def workers(self, since: datetime | None = None) -> list[WorkerInfo]:
        with self.read() as c:
            return self._workers(c, since)

    @staticmethod
    def _workers(c: Connection, since: datetime | None) -> list[WorkerInfo]:
        """The worker rows (with a heartbeat since `since`), oldest first, read on `c`."""
        stmt = select(workers).order_by(workers.c.started_at)
        if since is not None:
            stmt = stmt.where(workers.c.heartbeat_at >= since)
        return [
            WorkerInfo(
                id=r["id"], host=r["host"], pid=r["pid"], queues=json.loads(r["queues"]),
                job_types=json.loads(r["job_types"]), concurrency=r["concurrency"],
                started_at=r["started_at"], heartbeat_at=r["heartbeat_at"],
                queue_rate_limits=json.loads(r["queue_rate_limits"] or "{}"),
            )
            for r in c.execute(stmt).mappings()
        ]
