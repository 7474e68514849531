"""The verbs of running jobs, fenced by their lease: progress, heartbeats, and putting back
the jobs of workers that stopped heartbeating."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from ..models import JobStatus
from ..records import EventRecord, WorkerInfo
from ..retry import attempts_spent
from .base import EVENT_COLUMNS, PENDING, RUNNING, jobs, workers
from .parents import Parents
from .values import Heartbeat, ProgressUpdate
from .worker_registry import WorkerRegistry


class Leases(Parents, WorkerRegistry):
    """save_progress, heartbeat and recover_expired."""

    def save_progress(self, updates: Sequence[ProgressUpdate], now: datetime
                      ) -> tuple[set[int], list[EventRecord]]:
        """Write the latest progress, checkpoint and log lines of running jobs (fenced).
        Returns the ids whose lease was lost."""
        lost: set[int] = set()
        rows: list[dict[str, Any]] = []
        with self.write() as c:
            for u in updates:
                values: dict[str, Any] = {}
                if u.progress is not None:
                    values.update({
                        "progress": u.progress.get("progress"),
                        "progress_message": u.progress.get("message"),
                        "progress_phase": u.progress.get("phase"),
                        "progress_current": u.progress.get("current"),
                        "progress_total": u.progress.get("total"),
                    })
                if u.checkpoint is not None:
                    values["checkpoint"] = u.checkpoint
                guard = (jobs.c.id == u.job_id, jobs.c.status == RUNNING, jobs.c.lease_token == u.token)
                cols = EVENT_COLUMNS
                if values:
                    stmt = update(jobs).where(*guard).values(**values).returning(*cols)
                    row = c.execute(stmt).mappings().first()
                else:
                    row = c.execute(select(*cols).where(*guard)).mappings().first()
                if row is None:
                    lost.add(u.job_id)
                    continue
                if u.progress is not None:
                    rows.append(self._event(row, "progress", now, u.progress))
                rows.extend(self._event(row, "log", log.pop("at", now), log) for log in u.logs)
            recorded = self._append(c, rows)
        return lost, recorded

    def heartbeat(self, worker: WorkerInfo, running: dict[int, str], now: datetime, lease: float
                  ) -> Heartbeat:
        """Extend the leases of this worker's jobs and tell which were lost or cancelled."""
        with self.write() as c:
            updated = c.execute(
                update(workers).where(workers.c.id == worker.id).values(heartbeat_at=now)
            ).rowcount
            if not updated:  # cleaned up while we were paused: register again
                self._insert_worker(c, worker, now)
            if not running:
                return Heartbeat(set(), set())
            mine = (
                select(jobs.c.id)
                .where(
                    jobs.c.id.in_(list(running)), jobs.c.status == RUNNING,
                    jobs.c.worker_id == worker.id, jobs.c.lease_token.in_(set(running.values())),
                )
                .order_by(jobs.c.id)
            )
            if self._skip_locked:
                # Lock in id order, as finish does: otherwise a heartbeat and an outcome
                # write of the same worker can deadlock on PostgreSQL.
                mine = mine.with_for_update()
            stmt = (
                update(jobs)
                .where(jobs.c.id.in_(mine.scalar_subquery()), jobs.c.status == RUNNING)
                .values(lease_expires_at=now + timedelta(seconds=lease))
                .returning(jobs.c.id, jobs.c.lease_token, jobs.c.cancel_requested)
            )
            rows = c.execute(stmt).all()
        held = {r[0] for r in rows if running.get(r[0]) == r[1]}
        return Heartbeat(lost=set(running) - held, cancel={r[0] for r in rows if r[2] and r[0] in held})

    def recover_expired(self, now: datetime, limit: int = 100) -> list[EventRecord]:
        """Put back jobs whose worker stopped heartbeating; fail those out of attempts."""
        pick = (
            select(jobs.c.id, jobs.c.lease_token, jobs.c.attempts, jobs.c.max_retries, jobs.c.worker_id,
                   jobs.c.cancel_requested)
            .where(jobs.c.status == RUNNING, jobs.c.lease_expires_at < now)
            .order_by(jobs.c.lease_expires_at)
            .limit(limit)
        )
        # Idle workers run this every poll: look first, so the usual answer ("none")
        # costs a read, not a turn at SQLite's single write lock.
        with self.read() as c:
            if c.execute(pick.limit(1)).first() is None:
                return []
        if self._skip_locked:
            pick = pick.with_for_update(skip_locked=True)
        rows: list[dict[str, Any]] = []
        parents: set[int] = set()
        with self.write() as c:
            for job_id, token, attempts, max_retries, worker_id, asked in c.execute(pick).all():
                spent = attempts_spent(attempts, max_retries)  # the lost attempt counts
                error = f"worker lost: {worker_id} stopped heartbeating and its lease expired"
                # A job someone asked to cancel is cancelled, not run again (as in finish).
                event, status = ("cancelled", JobStatus.CANCELLED.value) if asked else \
                    ("failed", JobStatus.FAILED.value) if spent else ("retrying", PENDING)
                values: dict[str, Any] = {
                    "status": status, "worker_id": None, "lease_token": None, "lease_expires_at": None,
                    "error": error,
                }
                if status != PENDING:
                    values["finished_at"] = now
                else:
                    values["run_at"] = now  # (its cancel_requested is false: one asked is cancelled above)
                row = c.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == RUNNING, jobs.c.lease_token == token)
                    .values(**values)
                    .returning(*EVENT_COLUMNS)
                ).mappings().first()
                if row is not None:
                    rows.append(self._event(row, event, now, {"error": error, "reason": "requested" if asked
                                                              else "worker_lost", "worker_id": worker_id}))
                    if status != PENDING and row["parent_id"] is not None:
                        parents.add(row["parent_id"])
            rows.extend(self._wake_parents(c, parents, now))
            recorded = self._append(c, rows, wake=True)
        return recorded
