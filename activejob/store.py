"""Every SQL statement of activejob, spoken as job verbs.

enqueue, claim, finish (complete / retry / fail / cancel / requeue), save_progress,
heartbeat, recover_expired, request_cancel, retry_job, delete, prune, and the reads.
Each change of a job's state is one UPDATE guarded by the state (and, for running
jobs, the lease token) it expects, and appends its event row in the same transaction.
Verbs return the events they wrote; the caller turns them into signals after commit.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection, Engine, RowMapping

from . import dialects, dispatch
from .errors import InvalidTransition, JobNotFound
from .models import FINISHED, Job, JobEvent, JobStatus, UTCDateTime, Worker
from .records import STATUSES, Claimed, EventRecord, JobInfo, WorkerInfo

jobs: Table = Job.__table__  # type: ignore[attr-defined]
events: Table = JobEvent.__table__  # type: ignore[attr-defined]
workers: Table = Worker.__table__  # type: ignore[attr-defined]

EVENTS_CHANNEL = "activejob_events"
"""PostgreSQL channel NOTIFYed by every transaction that appends events (EventRelay listens)."""

RUNNING = JobStatus.RUNNING.value
PENDING = JobStatus.PENDING.value


@dataclass(slots=True)
class NewJob:
    name: str
    args: str
    queue: str
    priority: int
    run_at: datetime
    max_retries: int
    owner: str | None = None
    parent_id: int | None = None
    unique_key: str | None = None


@dataclass(slots=True)
class Outcome:
    """How one attempt ended, to be written by `finish` if the lease still holds."""

    job_id: int
    token: str
    status: str  # completed | failed | cancelled | pending (retry or requeue)
    event: str  # completed | failed | cancelled | retrying | requeued
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    run_at: datetime | None = None
    refund_attempt: bool = False  # a shutdown requeue does not count the attempt
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ProgressUpdate:
    job_id: int
    token: str
    progress: dict[str, Any] | None = None  # progress, message, phase, current, total
    checkpoint: str | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Heartbeat:
    lost: set[int]  # jobs this worker no longer owns
    cancel: set[int]  # jobs someone asked to cancel


def _dump(data: dict[str, Any] | None) -> str | None:
    return json.dumps(data, default=str, separators=(",", ":")) if data else None


class Store:
    """The database behind a JobQueue. Thread-safe; every method is synchronous."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = dialects.normalize_url(url)
        self.engine: Engine = dialects.create(self.url, pool_size=pool_size)
        self.dialect = self.engine.dialect.name
        # SQLite allows one writer; taking turns here is far cheaper than letting
        # threads of one process collide in SQLite's sleeping busy handler.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None
        self._skip_locked = dialects.claim_lock_clause(self.engine)
        self._insert_events = insert(events).returning(*events.c, sort_by_parameter_order=True)

    # -- plumbing ---------------------------------------------------------------------

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
        with self._write_lock, self.engine.begin() as c:
            yield c

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as c:
            yield c.execution_options(activejob_read=True)

    def dispose(self) -> None:
        self.engine.dispose()

    def upgrade(self) -> None:
        """Bring the schema to the newest migration shipped with this package."""
        from .migrate import upgrade

        upgrade(self.engine)

    def _append(self, conn: Connection, rows: list[dict[str, Any]]) -> list[EventRecord]:
        if not rows:
            return []
        result = conn.execute(self._insert_events, rows)
        recorded = [EventRecord.from_row(r) for r in result.mappings()]
        # This process emits these itself: an EventRelay here must not send them again.
        dispatch.note_written(self.url, (r.id for r in recorded))
        if conn.dialect.name == "postgresql":  # wake EventRelays (delivered at commit)
            conn.exec_driver_sql(f"NOTIFY {EVENTS_CHANNEL}")
        return recorded

    @staticmethod
    def _event(row: RowMapping | dict[str, Any], type_: str, now: datetime, data: dict[str, Any] | None = None,
               status: str | None = None) -> dict[str, Any]:
        return {
            "job_id": row["id"], "type": type_, "name": row["name"], "queue": row["queue"],
            "owner": row["owner"], "status": status or row["status"], "attempt": row["attempts"],
            "data": _dump(data), "created_at": now,
        }

    # -- enqueue ----------------------------------------------------------------------

    def enqueue(self, new: Sequence[NewJob], now: datetime, *, conn: Connection | None = None
                ) -> tuple[list[int], list[EventRecord]]:
        """Insert jobs (one transaction) with their `enqueued` events. Returns every job's
        id, in order; a job whose unique key is taken gets the existing job's id and no event."""
        if not new:
            return [], []
        params = [
            {
                "name": j.name, "queue": j.queue, "priority": j.priority, "status": PENDING,
                "args": j.args, "attempts": 0, "max_retries": j.max_retries, "run_at": j.run_at,
                "created_at": now, "cancel_requested": False, "owner": j.owner,
                "parent_id": j.parent_id, "unique_key": j.unique_key,
            }
            for j in new
        ]
        ids: list[int] = [0] * len(new)
        fresh: list[int] = []
        plain = [i for i, j in enumerate(new) if j.unique_key is None]
        with self.write(conn) as c:
            if plain:
                stmt = insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True)
                for i, row in zip(plain, c.execute(stmt, [params[i] for i in plain]), strict=True):
                    ids[i] = row[0]
                fresh.extend(plain)
            for i, j in enumerate(new):
                if j.unique_key is None:
                    continue
                stmt = dialects.insert_unless_exists(jobs, "unique_key", self.dialect)
                got = c.execute(stmt.values(**params[i]).returning(jobs.c.id)).scalar()
                if got is None:  # the key is taken: hand back the job that holds it
                    ids[i] = c.execute(select(jobs.c.id).where(jobs.c.unique_key == j.unique_key)).scalar_one()
                else:
                    ids[i] = got
                    fresh.append(i)
            fresh.sort()
            rows = [
                self._event({**params[i], "id": ids[i]}, "enqueued", now,
                            {"run_at": new[i].run_at.isoformat()} if new[i].run_at > now else None)
                for i in fresh
            ]
            recorded = self._append(c, rows)
            if rows:
                dialects.notify(c)
        return ids, recorded

    # -- claim and run ----------------------------------------------------------------

    def claim(self, *, worker_id: str, names: Sequence[str], queues: Sequence[str] | None,
              limit: int, now: datetime, lease: float) -> tuple[list[Claimed], list[EventRecord]]:
        """Take up to `limit` due jobs, highest priority then oldest first, in one statement."""
        if limit <= 0 or not names:
            return [], []
        token = uuid.uuid4().hex
        queue_filter = "AND queue IN :queues" if queues else ""
        # The pick is a CTE, MATERIALIZED on PostgreSQL: as a plain `IN (subquery)` the
        # planner may rescan the LIMIT ... SKIP LOCKED subquery per row and claim more
        # than `limit` jobs. A CTE is evaluated once.
        materialized = " MATERIALIZED" if self._skip_locked else ""
        stmt = text(
            f"""
            WITH picked AS{materialized} (
                   SELECT id FROM activejob_jobs
                    WHERE status = 'pending' AND run_at <= :now AND name IN :names {queue_filter}
                    ORDER BY priority DESC, run_at, id
                    LIMIT :limit{self._skip_locked})
            UPDATE activejob_jobs
               SET status = 'running', attempts = attempts + 1, worker_id = :worker,
                   lease_token = :token, lease_expires_at = :expires, started_at = :now,
                   cancel_requested = :false
             WHERE id IN (SELECT id FROM picked)
               AND status = 'pending'
            RETURNING id, name, queue, owner, args, attempts, max_retries, lease_token,
                      checkpoint, parent_id
            """
        ).bindparams(
            bindparam("names", expanding=True),
            # Typed, so SQLite compares the same text form the columns were written in.
            bindparam("now", type_=UTCDateTime()),
            bindparam("expires", type_=UTCDateTime()),
        )
        params: dict[str, Any] = {
            "worker": worker_id, "token": token, "expires": now + timedelta(seconds=lease),
            "now": now, "names": list(names), "limit": limit, "false": False,
        }
        if queues:
            stmt = stmt.bindparams(bindparam("queues", expanding=True))
            params["queues"] = list(queues)
        with self.write() as c:
            rows = c.execute(stmt, params).mappings().all()
            claimed = sorted((Claimed(**r) for r in rows), key=lambda j: j.id)
            recorded = self._append(c, [
                self._event({**r, "status": RUNNING}, "started", now, {"worker_id": worker_id})
                for r in rows
            ])
        return claimed, recorded

    def finish(self, outcomes: Sequence[Outcome], now: datetime) -> tuple[set[int], list[EventRecord]]:
        """Record how attempts ended, all in one transaction. Returns the ids written;
        an outcome whose lease was lost (recovered, taken over) changes nothing."""
        written: set[int] = set()
        parents: set[int] = set()
        rows: list[dict[str, Any]] = []
        with self.write() as c:
            for o in outcomes:
                finished = o.status in FINISHED
                values: dict[str, Any] = {
                    "status": o.status, "result": o.result, "error": o.error,
                    "traceback": o.traceback, "finished_at": now if finished else None,
                    "worker_id": None, "lease_token": None, "lease_expires_at": None,
                }
                if o.run_at is not None:
                    values["run_at"] = o.run_at
                if o.status == PENDING:
                    values["cancel_requested"] = False
                if o.refund_attempt:
                    values["attempts"] = jobs.c.attempts - 1
                stmt = (
                    update(jobs)
                    .where(jobs.c.id == o.job_id, jobs.c.status == RUNNING, jobs.c.lease_token == o.token)
                    .values(**values)
                    .returning(jobs.c.id, jobs.c.name, jobs.c.queue, jobs.c.owner, jobs.c.status, jobs.c.attempts,
                               jobs.c.parent_id)
                )
                row = c.execute(stmt).mappings().first()
                if row is None:
                    continue
                written.add(o.job_id)
                if o.status == JobStatus.WAITING.value:
                    parents.add(o.job_id)  # its children may all be done already
                elif finished and row["parent_id"] is not None:
                    parents.add(row["parent_id"])
                data = dict(o.data)
                if o.error is not None:
                    data.setdefault("error", o.error)
                if o.event == "completed" and o.result is not None:
                    data["result"] = json.loads(o.result)
                if o.run_at is not None and o.status == PENDING:
                    data["run_at"] = o.run_at.isoformat()
                rows.append(self._event(row, o.event, now, data))
            woken = self._wake_parents(c, parents, now)
            recorded = self._append(c, rows + woken)
            if woken or any(o.status == PENDING for o in outcomes):
                dialects.notify(c)
        return written, recorded

    def _wake_parents(self, c: Connection, parent_ids: Iterable[int], now: datetime) -> list[dict[str, Any]]:
        """Put waiting parents whose children have all finished back to pending."""
        rows = []
        child = jobs.alias("child")
        for parent_id in sorted(parent_ids):
            if self._skip_locked:
                # Children finishing at once in separate transactions take turns here, so
                # the last one to commit is sure to see all the others finished.
                c.execute(select(jobs.c.id).where(jobs.c.id == parent_id).with_for_update())
            open_children = (
                select(func.count()).select_from(child)
                .where(child.c.parent_id == parent_id, child.c.status.not_in([s.value for s in FINISHED]))
                .scalar_subquery()
            )
            row = c.execute(
                update(jobs)
                .where(jobs.c.id == parent_id, jobs.c.status == JobStatus.WAITING.value, open_children == 0)
                .values(status=PENDING, run_at=now)
                .returning(jobs.c.id, jobs.c.name, jobs.c.queue, jobs.c.owner, jobs.c.status, jobs.c.attempts)
            ).mappings().first()
            if row is not None:
                rows.append(self._event(row, "enqueued", now, {"reason": "children finished"}))
        return rows

    def wake_waiting(self, now: datetime) -> list[EventRecord]:
        """Safety net: any waiting parent with no unfinished children runs again."""
        with self.read() as c:
            waiting = select(jobs.c.id).where(jobs.c.status == JobStatus.WAITING.value).limit(500)
            ids = c.execute(waiting).scalars().all()
        if not ids:
            return []
        with self.write() as c:
            return self._append(c, self._wake_parents(c, ids, now))

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
                cols = (jobs.c.id, jobs.c.name, jobs.c.queue, jobs.c.owner, jobs.c.status, jobs.c.attempts)
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
            stmt = (
                update(jobs)
                .where(
                    jobs.c.id.in_(list(running)), jobs.c.status == RUNNING,
                    jobs.c.worker_id == worker.id, jobs.c.lease_token.in_(set(running.values())),
                )
                .values(lease_expires_at=now + timedelta(seconds=lease))
                .returning(jobs.c.id, jobs.c.lease_token, jobs.c.cancel_requested)
            )
            rows = c.execute(stmt).all()
        held = {r[0] for r in rows if running.get(r[0]) == r[1]}
        return Heartbeat(lost=set(running) - held, cancel={r[0] for r in rows if r[2] and r[0] in held})

    def recover_expired(self, now: datetime, limit: int = 100) -> list[EventRecord]:
        """Put back jobs whose worker stopped heartbeating; fail those out of attempts."""
        pick = (
            select(jobs.c.id, jobs.c.lease_token, jobs.c.attempts, jobs.c.max_retries, jobs.c.worker_id)
            .where(jobs.c.status == RUNNING, jobs.c.lease_expires_at < now)
            .order_by(jobs.c.lease_expires_at)
            .limit(limit)
        )
        if self._skip_locked:
            pick = pick.with_for_update(skip_locked=True)
        rows: list[dict[str, Any]] = []
        parents: set[int] = set()
        with self.write() as c:
            for job_id, token, attempts, max_retries, worker_id in c.execute(pick).all():
                spent = attempts > max_retries
                error = f"worker lost: {worker_id} stopped heartbeating and its lease expired"
                values: dict[str, Any] = {
                    "status": JobStatus.FAILED.value if spent else PENDING,
                    "worker_id": None, "lease_token": None, "lease_expires_at": None,
                    "error": error,
                }
                if spent:
                    values["finished_at"] = now
                else:
                    values.update(run_at=now, cancel_requested=False)
                row = c.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == RUNNING, jobs.c.lease_token == token)
                    .values(**values)
                    .returning(jobs.c.id, jobs.c.name, jobs.c.queue, jobs.c.owner, jobs.c.status, jobs.c.attempts,
                               jobs.c.parent_id)
                ).mappings().first()
                if row is not None:
                    rows.append(self._event(row, "failed" if spent else "retrying", now,
                                            {"error": error, "reason": "worker_lost", "worker_id": worker_id}))
                    if spent and row["parent_id"] is not None:
                        parents.add(row["parent_id"])
            rows.extend(self._wake_parents(c, parents, now))
            recorded = self._append(c, rows)
            if rows:
                dialects.notify(c)
        return recorded

    # -- operator verbs ---------------------------------------------------------------

    def request_cancel(self, job_id: int, now: datetime) -> tuple[str, list[EventRecord]]:
        """Cancel a pending/waiting job at once; mark a running one for its worker. The
        job's unfinished descendants are cancelled with it. Returns the job's status now."""
        rows: list[dict[str, Any]] = []
        parents: set[int] = set()
        with self.write() as c:
            status = self._cancel_one(c, job_id, now, rows, parents, "requested")
            if status is None:
                raise JobNotFound(f"no job with id {job_id}")
            frontier = [job_id]
            while frontier:
                children = c.execute(
                    select(jobs.c.id).where(jobs.c.parent_id.in_(frontier), jobs.c.status.not_in(list(FINISHED)))
                ).scalars().all()
                for child_id in children:
                    self._cancel_one(c, child_id, now, rows, parents, "parent cancelled")
                frontier = list(children)
            rows.extend(self._wake_parents(c, parents - {job_id}, now))
            return status, self._append(c, rows)

    def _cancel_one(self, c: Connection, job_id: int, now: datetime, rows: list[dict[str, Any]],
                    parents: set[int], reason: str) -> str | None:
        row = c.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_([PENDING, JobStatus.WAITING.value]))
            .values(status=JobStatus.CANCELLED.value, finished_at=now, cancel_requested=True)
            .returning(jobs.c.id, jobs.c.name, jobs.c.queue, jobs.c.owner, jobs.c.status, jobs.c.attempts,
                       jobs.c.parent_id)
        ).mappings().first()
        if row is not None:
            rows.append(self._event(row, "cancelled", now, {"reason": reason}))
            if row["parent_id"] is not None:
                parents.add(row["parent_id"])
            return str(row["status"])
        status = c.execute(
            update(jobs).where(jobs.c.id == job_id, jobs.c.status == RUNNING)
            .values(cancel_requested=True).returning(jobs.c.status)
        ).scalar()
        if status is None:
            status = c.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
        return None if status is None else str(status)

    def retry_job(self, job_id: int, now: datetime, *, expect: Sequence[str] | None = None
                  ) -> list[EventRecord]:
        """Run a failed or cancelled job again, with a fresh set of attempts."""
        allowed = [s for s in (expect or (JobStatus.FAILED.value, JobStatus.CANCELLED.value))
                   if s in (JobStatus.FAILED.value, JobStatus.CANCELLED.value)]
        with self.write() as c:
            row = c.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status.in_(allowed))
                .values(status=PENDING, run_at=now, attempts=0, finished_at=None, error=None,
                        traceback=None, cancel_requested=False, result=None)
                .returning(jobs.c.id, jobs.c.name, jobs.c.queue, jobs.c.owner, jobs.c.status, jobs.c.attempts)
            ).mappings().first()
            if row is None:
                status = c.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
                if status is None:
                    raise JobNotFound(f"no job with id {job_id}")
                raise InvalidTransition(f"job {job_id} is {status}; only {' or '.join(allowed)} jobs can be retried")
            recorded = self._append(c, [self._event(row, "enqueued", now, {"reason": "retried by request"})])
            dialects.notify(c)
        return recorded

    def delete(self, job_id: int, now: datetime) -> list[EventRecord]:
        """Remove a job that is not running, and its events; log that it was deleted."""
        with self.write() as c:
            row = c.execute(
                delete(jobs).where(jobs.c.id == job_id, jobs.c.status != RUNNING)
                .returning(jobs.c.id, jobs.c.name, jobs.c.queue, jobs.c.owner, jobs.c.status, jobs.c.attempts,
                           jobs.c.parent_id)
            ).mappings().first()
            if row is None:
                status = c.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
                if status is None:
                    raise JobNotFound(f"no job with id {job_id}")
                raise InvalidTransition(f"job {job_id} is running; cancel it before deleting it")
            # Append first, then drop the job's older events: on SQLite, deleting the newest
            # rows before the insert would hand their ids out again, and a reader that
            # already saw those ids (EventRelay, `since=`) would never see "deleted".
            woken = self._wake_parents(c, [row["parent_id"]] if row["parent_id"] is not None else [], now)
            recorded = self._append(c, [self._event(row, "deleted", now), *woken])
            c.execute(delete(events).where(events.c.job_id == job_id, events.c.id < recorded[0].id))
            return recorded

    def prune(self, cutoffs: dict[str, datetime], *, batch: int = 1000) -> int:
        """Delete finished jobs (and their events) older than each status's cutoff."""
        total = 0
        for status, cutoff in cutoffs.items():
            while True:
                with self.write() as c:
                    ids = c.execute(
                        select(jobs.c.id).where(jobs.c.status == status, jobs.c.finished_at < cutoff)
                        .limit(batch)
                    ).scalars().all()
                    if not ids:
                        break
                    c.execute(delete(events).where(events.c.job_id.in_(ids)))
                    c.execute(delete(jobs).where(jobs.c.id.in_(ids)))
                total += len(ids)
                if len(ids) < batch:
                    break
        return total

    def prune_events(self, cutoff: datetime, *, batch: int = 5000) -> int:
        """Drop event-log rows older than `cutoff` (the jobs themselves stay)."""
        total = 0
        while True:
            with self.write() as c:
                ids = c.execute(select(events.c.id).where(events.c.created_at < cutoff).limit(batch)).scalars().all()
                if ids:
                    c.execute(delete(events).where(events.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < batch:
                return total

    # -- workers ----------------------------------------------------------------------

    @staticmethod
    def _insert_worker(c: Connection, w: WorkerInfo, now: datetime) -> None:
        c.execute(insert(workers).values(
            id=w.id, host=w.host, pid=w.pid, queues=json.dumps(w.queues), job_types=json.dumps(w.job_types),
            concurrency=w.concurrency, started_at=w.started_at, heartbeat_at=now,
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
        stmt = select(workers).order_by(workers.c.started_at)
        if since is not None:
            stmt = stmt.where(workers.c.heartbeat_at >= since)
        with self.read() as c:
            return [
                WorkerInfo(
                    id=r["id"], host=r["host"], pid=r["pid"], queues=json.loads(r["queues"]),
                    job_types=json.loads(r["job_types"]), concurrency=r["concurrency"],
                    started_at=r["started_at"], heartbeat_at=r["heartbeat_at"],
                )
                for r in c.execute(stmt).mappings()
            ]

    def due_count(self, now: datetime, names: Sequence[str], queues: Sequence[str] | None = None) -> int:
        stmt = select(func.count()).select_from(jobs).where(
            jobs.c.status.in_([PENDING, RUNNING]), jobs.c.run_at <= now, jobs.c.name.in_(list(names)))
        if queues:
            stmt = stmt.where(jobs.c.queue.in_(list(queues)))
        with self.read() as c:
            return int(c.execute(stmt).scalar_one())

    def unclaimable(self, now: datetime, live_since: datetime) -> dict[str, int]:
        """Due pending jobs, by name, of types that no live worker has registered."""
        known: set[str] = set()
        for w in self.workers(since=live_since):
            known.update(w.job_types)
        with self.read() as c:
            rows = c.execute(
                select(jobs.c.name, func.count())
                .where(jobs.c.status == PENDING, jobs.c.run_at <= now)
                .group_by(jobs.c.name)
            ).all()
        return {name: n for name, n in rows if name not in known}

    # -- reads ------------------------------------------------------------------------

    def get(self, job_id: int) -> JobInfo | None:
        with self.read() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return JobInfo.from_row(row) if row is not None else None

    def statuses(self, ids: Iterable[int]) -> dict[int, str]:
        with self.read() as c:
            return dict(c.execute(select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(list(ids)))).all())

    def list_jobs(self, *, status: str | Sequence[str] | None = None, name: str | None = None,
             queue: str | None = None, owner: str | None = None, parent_id: int | None = None,
             search: str | None = None, limit: int = 50, offset: int = 0,
             order: str = "newest") -> list[JobInfo]:
        stmt = select(jobs)
        if status:
            stmt = stmt.where(jobs.c.status.in_([status] if isinstance(status, str) else list(status)))
        for column, value in ((jobs.c.name, name), (jobs.c.queue, queue), (jobs.c.owner, owner),
                              (jobs.c.parent_id, parent_id)):
            if value is not None:
                stmt = stmt.where(column == value)
        if search:
            like = f"%{search}%"
            stmt = stmt.where(or_(jobs.c.name.like(like), jobs.c.args.like(like), jobs.c.error.like(like)))
        stmt = stmt.order_by(jobs.c.id.asc() if order == "oldest" else jobs.c.id.desc())
        stmt = stmt.limit(limit).offset(offset)
        with self.read() as c:
            return [JobInfo.from_row(r) for r in c.execute(stmt).mappings()]

    def count(self, **filters: Any) -> int:
        stmt = select(func.count()).select_from(jobs)
        for key, value in filters.items():
            if value is not None:
                stmt = stmt.where(jobs.c[key] == value)
        with self.read() as c:
            return int(c.execute(stmt).scalar_one())

    def stats(self, now: datetime) -> dict[str, Any]:
        """Counts per status, and per status for each job name and queue."""
        with self.read() as c:
            grouped = c.execute(
                select(jobs.c.name, jobs.c.queue, jobs.c.status, func.count())
                .group_by(jobs.c.name, jobs.c.queue, jobs.c.status)
            ).all()
            scheduled = c.execute(
                select(func.count()).select_from(jobs).where(jobs.c.status == PENDING, jobs.c.run_at > now)
            ).scalar_one()
        out: dict[str, Any] = dict.fromkeys(STATUSES, 0)
        by_name: dict[str, dict[str, int]] = {}
        by_queue: dict[str, dict[str, int]] = {}
        for name, queue, status, n in grouped:
            out[status] = out.get(status, 0) + n
            for table, key in ((by_name, name), (by_queue, queue)):
                bucket = table.setdefault(key, dict.fromkeys(STATUSES, 0))
                bucket[status] = bucket.get(status, 0) + n
        out["total"] = sum(out[s] for s in STATUSES)
        out["scheduled"] = int(scheduled)
        out["by_name"] = by_name
        out["by_queue"] = by_queue
        return out

    def events(self, *, after: int = 0, job_id: int | None = None, owner: str | None = None,
               types: Sequence[str] | None = None, exclude: Sequence[str] = (), limit: int = 500
               ) -> list[EventRecord]:
        """Events with id > `after`, oldest first."""
        stmt = select(events).where(events.c.id > after)
        if job_id is not None:
            stmt = stmt.where(events.c.job_id == job_id)
        if owner is not None:
            stmt = stmt.where(events.c.owner == owner)
        if types:
            stmt = stmt.where(events.c.type.in_(list(types)))
        if exclude:
            stmt = stmt.where(events.c.type.not_in(list(exclude)))
        stmt = stmt.order_by(events.c.id).limit(limit)
        with self.read() as c:
            return [EventRecord.from_row(r) for r in c.execute(stmt).mappings()]

    def events_by_id(self, ids: Sequence[int]) -> list[EventRecord]:
        if not ids:
            return []
        with self.read() as c:
            rows = c.execute(select(events).where(events.c.id.in_(list(ids))).order_by(events.c.id)).mappings()
            return [EventRecord.from_row(r) for r in rows]

    def last_event_id(self) -> int:
        with self.read() as c:
            return int(c.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())


def hostname() -> str:
    return socket.gethostname()
