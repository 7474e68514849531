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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import DBAPIError

from . import dialects, dispatch
from .errors import InvalidTransition, JobNotFound
from .models import FINISHED, Job, JobEvent, JobStatus, Worker
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
        self._hot: Any = None  # SQLite: the connection the hot paths write on (see _sqlite_tx)
        self._skip_locked = dialects.claim_lock_clause(self.engine)
        self._insert_events = insert(events).returning(*events.c, sort_by_parameter_order=True)
        self._sql: dict[Any, str] = {}  # prebuilt hot-path statements

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
        hot, self._hot = self._hot, None
        if hot is not None and not self._memory:
            hot.close()
        self.engine.dispose()

    @property
    def _memory(self) -> bool:
        return self.engine.url.database in (None, "", ":memory:")

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
        if conn is None and all(j.unique_key is None for j in new):
            return self._enqueue_fast(new, now)
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
              limit: int, now: datetime, lease: float, nowait: bool = False
              ) -> tuple[list[Claimed], list[EventRecord]]:
        """Take up to `limit` due jobs, highest priority then oldest first, in one statement."""
        if limit <= 0 or not names:
            return [], []
        return self._claim_fast(worker_id, names, queues, limit, now, lease, nowait=nowait)

    def finish(self, outcomes: Sequence[Outcome], now: datetime) -> tuple[set[int], list[EventRecord]]:
        """Record how attempts ended, all in one transaction. Returns the ids written;
        an outcome whose lease was lost (recovered, taken over) changes nothing."""
        written, recorded, rest = self._finish_fast(outcomes, now)
        if rest:
            more_written, more = self._finish_general(rest, now)
            written |= more_written
            recorded += more
        return written, recorded

    def _finish_general(self, outcomes: Sequence[Outcome], now: datetime) -> tuple[set[int], list[EventRecord]]:
        written: set[int] = set()
        parents: set[int] = set()
        rows: list[dict[str, Any]] = []
        with self.write() as c:
            for o in sorted(outcomes, key=lambda o: o.job_id):  # lock rows in id order: no deadlocks
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
            select(jobs.c.id, jobs.c.lease_token, jobs.c.attempts, jobs.c.max_retries, jobs.c.worker_id)
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
        """Drop event-log rows older than `cutoff` (the jobs themselves stay).

        Ids grow with time, so the oldest events are the first in id order: walking the
        primary key from the start reads only what is deleted, with no index on time."""
        total = 0
        while True:
            with self.write() as c:
                oldest = c.execute(select(events.c.id, events.c.created_at).order_by(events.c.id).limit(batch)).all()
                ids = [event_id for event_id, at in oldest if at < cutoff]
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

    def refresh_planner_stats(self) -> bool:
        """PostgreSQL: ANALYZE the jobs table when it has grown far past what the planner
        believes (a burst of enqueues into a table last analyzed nearly empty). With stale
        statistics the claim is planned as a scan and sort of every pending row instead of a
        walk down the due index, and each claim then costs O(pending). Autovacuum catches up
        within a minute or so; this makes it seconds. Returns whether it analyzed."""
        if self.dialect != "postgresql":
            return False
        with self.read() as c:
            row = c.exec_driver_sql(
                "SELECT s.n_live_tup, c.reltuples FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                "WHERE s.relid = 'activejob_jobs'::regclass"
            ).first()
        if row is None or row[0] <= 2 * max(float(row[1]), 0.0) + 1000:
            return False
        with self.engine.connect() as c:
            c.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE activejob_jobs")
        return True

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

    # -- hot paths (raw DBAPI; the SQL is at the end of this module) ---------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Raise DBAPI errors as SQLAlchemy's exception classes, like the rest of the store."""
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            yield
        except dbapi.Error as error:
            raise DBAPIError.instance(None, None, error, dbapi.Error) from error

    @contextmanager
    def _sqlite_tx(self, *, nowait: bool = False) -> Iterator[Any]:
        """A cursor in a BEGIN IMMEDIATE transaction on the store's own write connection.

        Writers of one process take turns anyway (the write lock), so one connection
        serves them all, without SQLAlchemy's pool and events in the way.
        """
        assert self._write_lock is not None
        if not self._write_lock.acquire(blocking=not nowait):
            raise WouldBlock("another thread of this process is writing")
        try:
            with self._translated():
                conn = self._hot
                if conn is None:
                    conn = self._hot = self._open_hot()
                cur = conn.cursor()
                if nowait:  # fail at once rather than sleep in SQLite's busy handler
                    cur.execute("PRAGMA busy_timeout=0")
                    try:
                        cur.execute("BEGIN IMMEDIATE")
                    except conn.OperationalError as error:  # another process is writing
                        raise WouldBlock(str(error)) from error
                    finally:
                        cur.execute("PRAGMA busy_timeout=30000")
                else:
                    cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                    cur.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.rollback()
                    raise
        finally:
            self._write_lock.release()

    def _open_hot(self) -> Any:
        if self._memory:  # one shared connection (StaticPool): write on that same one
            fairy = self.engine.raw_connection()
            conn = fairy.driver_connection
            fairy.close()
            return conn
        import sqlite3

        conn = sqlite3.connect(self.engine.url.database or "", isolation_level=None, check_same_thread=False,
                               timeout=30)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _pg_one(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """Run one statement as its own transaction (autocommit): one round trip."""
        fairy = self.engine.raw_connection()
        conn: Any = fairy.driver_connection
        try:
            with self._translated():
                conn.autocommit = True
                try:
                    return list(conn.execute(sql, params).fetchall())
                finally:
                    if not conn.broken:
                        conn.autocommit = False
        except BaseException:
            if conn.broken or conn.closed:
                fairy.invalidate()  # the server went away: never hand this one out again
            raise
        finally:
            fairy.close()

    # -- enqueue

    def _enqueue_fast(self, new: Sequence[NewJob], now: datetime) -> tuple[list[int], list[EventRecord]]:
        datas = [{"run_at": j.run_at.isoformat()} if j.run_at > now else None for j in new]
        if self.dialect == "postgresql" and len(new) == 1:
            j = new[0]
            rows = self._pg_one(_PG_ENQUEUE_ONE, {
                "name": j.name, "queue": j.queue, "priority": j.priority, "args": j.args,
                "max_retries": j.max_retries, "run_at": j.run_at, "owner": j.owner, "parent_id": j.parent_id,
                "data": _dump(datas[0]), "now": now,
            })
            ids, event_ids = [rows[0][0]], [rows[0][1]]
        elif self.dialect == "postgresql":
            rows = self._pg_one(_PG_ENQUEUE, {
                "name": [j.name for j in new], "queue": [j.queue for j in new],
                "priority": [j.priority for j in new], "args": [j.args for j in new],
                "max_retries": [j.max_retries for j in new], "run_at": [j.run_at for j in new],
                "owner": [j.owner for j in new], "parent_id": [j.parent_id for j in new],
                "data": [_dump(d) for d in datas], "now": now,
            })
            ids = [r[0] for r in rows]
            event_ids = [r[1] for r in rows]
        else:
            now_s = _sqlite_ts(now)
            with self._sqlite_tx() as cur:
                if len(new) == 1:
                    j = new[0]
                    cur.execute(_SQLITE_JOB_INSERT, (j.name, j.queue, j.priority, j.args, j.max_retries,
                                                     _sqlite_ts(j.run_at), now_s, j.owner, j.parent_id))
                    ids = [cur.lastrowid]
                    cur.execute(_EVENT_INSERT, (ids[0], "enqueued", j.name, j.queue, j.owner, PENDING, 0,
                                                _dump(datas[0]), now_s))
                    event_ids = [cur.lastrowid]
                else:
                    stamps: dict[datetime, str] = {}  # a bulk enqueue mostly shares one run_at
                    ids = self._sqlite_insert_many(cur, "activejob_jobs", _SQLITE_JOB_INSERT, [
                        (j.name, j.queue, j.priority, j.args, j.max_retries,
                         stamps.get(j.run_at) or stamps.setdefault(j.run_at, _sqlite_ts(j.run_at)), now_s,
                         j.owner, j.parent_id) for j in new])
                    event_ids = self._sqlite_insert_many(cur, "activejob_events", _EVENT_INSERT, [
                        (i, "enqueued", j.name, j.queue, j.owner, PENDING, 0, _dump(d), now_s)
                        for i, j, d in zip(ids, new, datas, strict=True)])
                dispatch.note_written(self.url, event_ids)
        if self.dialect == "postgresql":
            dispatch.note_written(self.url, event_ids)
        recorded = [
            EventRecord(id=e, job_id=i, type="enqueued", name=j.name, queue=j.queue, owner=j.owner,
                        status=PENDING, attempt=0, created_at=now, data=d or {})
            for e, i, j, d in zip(event_ids, ids, new, datas, strict=True)
        ]
        return ids, recorded

    @staticmethod
    def _sqlite_insert_many(cur: Any, table: str, sql: str, rows: list[tuple[Any, ...]]) -> list[int]:
        # Under the write lock nobody else inserts, and SQLite gives a new row max(rowid) + 1:
        # the ids are the consecutive run after the old maximum (checked, not assumed).
        before = cur.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()[0]
        cur.executemany(sql, rows)
        last = cur.execute("SELECT last_insert_rowid()").fetchone()[0]
        if last != before + len(rows):
            raise RuntimeError(f"{table}: rowids are not consecutive ({before} + {len(rows)} != {last})")
        return list(range(before + 1, last + 1))

    # -- claim

    def _claim_fast(self, worker_id: str, names: Sequence[str], queues: Sequence[str] | None, limit: int,
                    now: datetime, lease: float, *, nowait: bool = False, cur: Any = None
                    ) -> tuple[list[Claimed], list[EventRecord]]:
        token = uuid.uuid4().hex
        data = _dump({"worker_id": worker_id})
        expires = now + timedelta(seconds=lease)
        if self.dialect == "postgresql":
            key = ("claim", bool(queues))
            sql = self._sql.get(key)
            if sql is None:
                sql = self._sql[key] = _PG_CLAIM.format(
                    queues="AND queue = ANY(%(queues)s)" if queues else "", notify=_PG_EVENTS_NOTIFY_JOIN)
            rows = self._pg_one(sql, {
                "now": now, "names": list(names), "queues": list(queues or ()), "limit": limit,
                "worker": worker_id, "claim_token": token, "expires": expires, "start_data": data,
            })
        else:
            skey = ("claim", len(names), len(queues or ()))
            sql = self._sql.get(skey)
            if sql is None:
                # INDEXED BY: without statistics SQLite may pick the (status, finished_at) index
                # and sort every pending row; the due index yields them in claim order. And
                # `+status` keeps the outer UPDATE on rowid lookups instead of walking every
                # pending row through that same index.
                queue_filter = f"AND queue IN ({', '.join('?' * len(queues))})" if queues else ""
                sql = self._sql[skey] = (
                    "UPDATE activejob_jobs SET status = 'running', attempts = attempts + 1, worker_id = ?, "
                    "lease_token = ?, lease_expires_at = ?, started_at = ?, cancel_requested = 0 "
                    "WHERE id IN (SELECT id FROM activejob_jobs INDEXED BY ix_activejob_jobs_due "
                    f"WHERE status = 'pending' AND run_at <= ? AND name IN ({', '.join('?' * len(names))}) "
                    f"{queue_filter} ORDER BY priority DESC, run_at, id LIMIT ?) AND +status = 'pending' "
                    "RETURNING id, name, queue, owner, args, attempts, max_retries, checkpoint, parent_id"
                )
            now_s = _sqlite_ts(now)
            with nullcontext(cur) if cur is not None else self._sqlite_tx(nowait=nowait) as cur:
                rows = cur.execute(sql, (worker_id, token, _sqlite_ts(expires), now_s, now_s, *names,
                                         *(queues or ()), limit)).fetchall()
                rows.sort()
                out = []
                for r in rows:
                    cur.execute(_EVENT_INSERT, (r[0], "started", r[1], r[2], r[3], RUNNING, r[5], data, now_s))
                    out.append((*r, cur.lastrowid))
                rows = out
                dispatch.note_written(self.url, (r[9] for r in rows))
        if self.dialect == "postgresql":
            dispatch.note_written(self.url, (r[9] for r in rows))
        claimed = [Claimed(id=r[0], name=r[1], queue=r[2], owner=r[3], args=r[4], attempts=r[5],
                           max_retries=r[6], lease_token=token, checkpoint=r[7], parent_id=r[8]) for r in rows]
        recorded = [EventRecord(id=r[9], job_id=r[0], type="started", name=r[1], queue=r[2], owner=r[3],
                                status=RUNNING, attempt=r[5], created_at=now, data={"worker_id": worker_id})
                    for r in rows]
        return claimed, recorded

    # -- finish

    def _finish_fast(self, outcomes: Sequence[Outcome], now: datetime
                     ) -> tuple[set[int], list[EventRecord], list[Outcome]]:
        """Write what the fast path can; return the outcomes left for the general path."""
        datas = {o.job_id: _finish_data(o) for o in outcomes}
        if self.dialect == "postgresql":
            simple = [o for o in outcomes if o.status != JobStatus.WAITING.value]
            if not simple:
                return set(), [], list(outcomes)
            pending = any(o.status == PENDING for o in simple)
            key = ("finish", pending)
            sql = self._sql.get(key)
            if sql is None:
                sql = self._sql[key] = _PG_FINISH.format(
                    notify=_PG_NOTIFY_JOIN if pending else _PG_EVENTS_NOTIFY_JOIN)
            rows = self._pg_one(sql, {**self._pg_outcome_params(simple, datas), "now": now})
            dispatch.note_written(self.url, (r[0] for r in rows))
            recorded = [EventRecord(id=r[0], job_id=r[1], type=r[2], name=r[3], queue=r[4], owner=r[5],
                                    status=r[6], attempt=r[7], created_at=now, data=datas[r[1]]) for r in rows]
            written = {r[1] for r in rows}
            return written, recorded, [o for o in outcomes if o.job_id not in written]
        if any(o.status == JobStatus.WAITING.value for o in outcomes):
            return set(), [], list(outcomes)  # parents waiting on children: the general path
        try:
            with self._sqlite_tx() as cur:
                done, recorded = self._sqlite_finish(cur, outcomes, now, datas)
        except _General:
            return set(), [], list(outcomes)
        return done, recorded, []

    def _pg_finish_and_claim(self, outcomes: Sequence[Outcome], now: datetime, datas: dict[int, dict[str, Any]],
                             worker_id: str, names: Sequence[str], queues: Sequence[str] | None, limit: int,
                             lease: float) -> tuple[set[int], list[EventRecord], list[Claimed], list[EventRecord]]:
        pending = any(o.status == PENDING for o in outcomes)
        key = ("finish_and_claim", pending, bool(queues))
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = _PG_FINISH_AND_CLAIM.format(
                queues="AND queue = ANY(%(queues)s)" if queues else "",
                notify=_PG_NOTIFY_FROM if pending else _PG_EVENTS_NOTIFY_FROM)
        token = uuid.uuid4().hex
        rows = self._pg_one(sql, {
            **self._pg_outcome_params(outcomes, datas), "now": now,
            "names": list(names), "queues": list(queues or ()), "limit": limit, "worker": worker_id,
            "claim_token": token, "expires": now + timedelta(seconds=lease),
            "start_data": _dump({"worker_id": worker_id}),
        })
        finished = [r for r in rows if r[0] == "f"]
        taken = sorted((r for r in rows if r[0] == "c"), key=lambda r: r[2])
        dispatch.note_written(self.url, (r[1] for r in rows if r[0] != "n"))
        recorded = [EventRecord(id=r[1], job_id=r[2], type=r[3], name=r[4], queue=r[5], owner=r[6], status=r[7],
                                attempt=r[8], created_at=now, data=datas[r[2]]) for r in finished]
        written = {r[2] for r in finished}
        claimed = [Claimed(id=r[2], name=r[4], queue=r[5], owner=r[6], args=r[9], attempts=r[8], max_retries=r[10],
                           lease_token=token, checkpoint=r[11], parent_id=r[12]) for r in taken]
        started = [EventRecord(id=r[1], job_id=r[2], type="started", name=r[4], queue=r[5], owner=r[6],
                               status=RUNNING, attempt=r[8], created_at=now, data={"worker_id": worker_id})
                   for r in taken]
        rest = [o for o in outcomes if o.job_id not in written]
        if rest:  # lost leases, and jobs whose parent may wake: the general path
            more_written, more = self._finish_general(rest, now)
            written |= more_written
            recorded += more
        return written, recorded, claimed, started

    @staticmethod
    def _pg_outcome_params(outcomes: Sequence[Outcome], datas: dict[int, dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": [o.job_id for o in outcomes], "token": [o.token for o in outcomes],
            "status": [o.status for o in outcomes], "result": [o.result for o in outcomes],
            "error": [o.error for o in outcomes], "traceback": [o.traceback for o in outcomes],
            "run_at": [o.run_at for o in outcomes], "refund": [1 if o.refund_attempt else 0 for o in outcomes],
            "event": [o.event for o in outcomes], "data": [_dump(datas[o.job_id]) for o in outcomes],
        }

    def _sqlite_finish(self, cur: Any, outcomes: Sequence[Outcome], now: datetime,
                       datas: dict[int, dict[str, Any]]) -> tuple[set[int], list[EventRecord]]:
        now_s = _sqlite_ts(now)
        done: set[int] = set()
        recorded = []
        event_ids = []
        for o in sorted(outcomes, key=lambda o: o.job_id):
            finished = o.status in FINISHED
            row = cur.execute(_SQLITE_FINISH, (
                o.status, o.result, o.error, o.traceback, now_s if finished else None,
                None if o.run_at is None else _sqlite_ts(o.run_at), o.status == PENDING,
                1 if o.refund_attempt else 0, o.job_id, o.token,
            )).fetchone()
            if row is None:
                continue  # the lease was lost: another worker owns the job now
            if finished and row[5] is not None:
                raise _General  # its parent may wake up: roll back, take the general path
            done.add(o.job_id)
            data = datas[o.job_id]
            cur.execute(_EVENT_INSERT, (o.job_id, o.event, row[0], row[1], row[2], row[3], row[4],
                                        _dump(data), now_s))
            event_ids.append(cur.lastrowid)
            recorded.append(EventRecord(id=cur.lastrowid, job_id=o.job_id, type=o.event, name=row[0],
                                        queue=row[1], owner=row[2], status=row[3], attempt=row[4],
                                        created_at=now, data=data))
        dispatch.note_written(self.url, event_ids)
        return done, recorded

    def finish_and_claim(self, outcomes: Sequence[Outcome], now: datetime, *, worker_id: str,
                         names: Sequence[str], queues: Sequence[str] | None, limit: int, lease: float,
                         nowait: bool = False
                         ) -> tuple[set[int], list[EventRecord], list[Claimed], list[EventRecord]]:
        """Record outcomes and refill the slots they free, in ONE transaction (on
        PostgreSQL one statement; outcomes it cannot take go through `finish` after it).

        Raises WouldBlock, having changed nothing, when an outcome needs the general path
        (`finish`, then `claim`), or on SQLite when `nowait` and the write lock (this
        process's or another's) is taken: so a caller on an event loop can try it inline.
        """
        if any(o.status == JobStatus.WAITING.value for o in outcomes):
            raise WouldBlock("not a hot-path case")
        datas = {o.job_id: _finish_data(o) for o in outcomes}
        if self.dialect == "postgresql":
            return self._pg_finish_and_claim(outcomes, now, datas, worker_id, names, queues, limit, lease)
        try:
            with self._sqlite_tx(nowait=nowait) as cur:
                done, recorded = self._sqlite_finish(cur, outcomes, now, datas)
                claimed, started = self._claim_fast(worker_id, names, queues, limit, now, lease, cur=cur) \
                    if limit > 0 and names else ([], [])
        except _General:
            raise WouldBlock("an outcome needs the general path") from None
        return done, recorded, claimed, started


def hostname() -> str:
    return socket.gethostname()


# -- hot paths ------------------------------------------------------------------------
#
# enqueue, claim and finish run once per job, so they skip SQLAlchemy's statement
# machinery and speak DBAPI directly, with prebuilt SQL. SQLite: a cursor inside the
# usual BEGIN IMMEDIATE transaction (Store.write). PostgreSQL: ONE statement, run in
# autocommit, so the job's change, its event row and the NOTIFY commit together in a
# single round trip (psycopg prepares statements it sees repeatedly). The guarantees do
# not change: state change + event in one transaction, fenced by the lease token, and a
# verb returns only after its commit.

_SQLITE_TS = "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}.{:06d}"


def _sqlite_ts(value: datetime) -> str:
    """The text form UTCDateTime stores in SQLite (naive UTC, always with microseconds)."""
    v = value.astimezone(UTC) if value.tzinfo is not None else value
    return _SQLITE_TS.format(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)


class WouldBlock(Exception):
    """A `nowait` store call would have to wait (or take the general path); nothing changed."""


class _General(Exception):
    """Inside a hot path: this case belongs to the general path (the transaction rolls back)."""


def _finish_data(o: Outcome) -> dict[str, Any]:
    data = dict(o.data)
    if o.error is not None:
        data.setdefault("error", o.error)
    if o.event == "completed" and o.result is not None:
        data["result"] = json.loads(o.result)
    if o.run_at is not None and o.status == PENDING:
        data["run_at"] = o.run_at.isoformat()
    return data


_EVENT_INSERT = (
    "INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_JOB_INSERT = (
    "INSERT INTO activejob_jobs (name, queue, priority, status, args, attempts, max_retries, run_at, created_at, "
    "cancel_requested, owner, parent_id) VALUES (?, ?, ?, 'pending', ?, 0, ?, ?, ?, 0, ?, ?)"
)
_SQLITE_FINISH = (
    "UPDATE activejob_jobs SET status = ?, result = ?, error = ?, traceback = ?, finished_at = ?, "
    "worker_id = NULL, lease_token = NULL, lease_expires_at = NULL, run_at = coalesce(?, run_at), "
    "cancel_requested = CASE WHEN ? THEN 0 ELSE cancel_requested END, attempts = attempts - ? "
    "WHERE id = ? AND status = 'running' AND lease_token = ? "
    "RETURNING name, queue, owner, status, attempts, parent_id"
)

_PG_ENQUEUE = """
WITH t AS (
    SELECT * FROM unnest(%(name)s::text[], %(queue)s::text[], %(priority)s::int[], %(args)s::text[],
                         %(max_retries)s::int[], %(run_at)s::timestamptz[], %(owner)s::text[],
                         %(parent_id)s::bigint[], %(data)s::text[])
           WITH ORDINALITY AS t(name, queue, priority, args, max_retries, run_at, owner, parent_id, data, ord)
), j AS (
    INSERT INTO activejob_jobs (name, queue, priority, status, args, attempts, max_retries, run_at, created_at,
                                cancel_requested, owner, parent_id)
    SELECT name, queue, priority, 'pending', args, 0, max_retries, run_at, %(now)s, false, owner, parent_id
      FROM t ORDER BY ord
    RETURNING id, name, queue, owner
), e AS (
    INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at)
    SELECT j.id, 'enqueued', j.name, j.queue, j.owner, 'pending', 0, t.data, %(now)s
      FROM (SELECT j.*, row_number() OVER (ORDER BY j.id) AS rn FROM j) AS j JOIN t ON t.ord = j.rn
     ORDER BY j.id
    RETURNING id, job_id
)
SELECT e.job_id, e.id FROM e, (SELECT pg_notify('activejob', ''), pg_notify('activejob_events', '')) AS n
ORDER BY e.job_id
"""

_PG_ENQUEUE_ONE = """
WITH j AS (
    INSERT INTO activejob_jobs (name, queue, priority, status, args, attempts, max_retries, run_at, created_at,
                                cancel_requested, owner, parent_id)
    VALUES (%(name)s, %(queue)s, %(priority)s, 'pending', %(args)s, 0, %(max_retries)s, %(run_at)s, %(now)s,
            false, %(owner)s, %(parent_id)s)
    RETURNING id, name, queue, owner
), e AS (
    INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at)
    SELECT id, 'enqueued', name, queue, owner, 'pending', 0, %(data)s, %(now)s FROM j
    RETURNING id, job_id
)
SELECT e.job_id, e.id FROM e, (SELECT pg_notify('activejob', ''), pg_notify('activejob_events', '')) AS n
"""

_PG_CLAIM_CTES = """
picked AS MATERIALIZED (
    SELECT id FROM activejob_jobs
     WHERE status = 'pending' AND run_at <= %(now)s AND name = ANY(%(names)s) {queues}
     ORDER BY priority DESC, run_at, id
     LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), c AS (
    UPDATE activejob_jobs AS j
       SET status = 'running', attempts = j.attempts + 1, worker_id = %(worker)s, lease_token = %(claim_token)s,
           lease_expires_at = %(expires)s, started_at = %(now)s, cancel_requested = false
      FROM picked
     WHERE j.id = picked.id AND j.status = 'pending'
    RETURNING j.id, j.name, j.queue, j.owner, j.args, j.attempts, j.max_retries, j.checkpoint, j.parent_id
), ce AS (
    INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at)
    SELECT id, 'started', name, queue, owner, 'running', attempts, %(start_data)s, %(now)s FROM c ORDER BY id
    RETURNING id, job_id
)"""
_PG_CLAIM = "WITH " + _PG_CLAIM_CTES + """
SELECT c.id, c.name, c.queue, c.owner, c.args, c.attempts, c.max_retries, c.checkpoint, c.parent_id, ce.id
  FROM c JOIN ce ON ce.job_id = c.id {notify}
 ORDER BY c.id
"""

# Jobs with a parent are left to the general path (their parent may have to wake up, in
# the same transaction). Rows are locked in id order, as everywhere, so concurrent
# heartbeats and outcome writes cannot deadlock.
_PG_FINISH_CTES = """
o AS (
    SELECT * FROM unnest(%(id)s::bigint[], %(token)s::text[], %(status)s::text[], %(result)s::text[],
                         %(error)s::text[], %(traceback)s::text[], %(run_at)s::timestamptz[], %(refund)s::int[],
                         %(event)s::text[], %(data)s::text[])
           AS o(id, token, status, result, error, traceback, run_at, refund, event, data)
), locked AS MATERIALIZED (
    SELECT j.id FROM activejob_jobs AS j JOIN o ON o.id = j.id
     WHERE j.status = 'running' AND j.lease_token = o.token AND j.parent_id IS NULL
     ORDER BY j.id FOR UPDATE OF j
), u AS (
    UPDATE activejob_jobs AS j
       SET status = o.status, result = o.result, error = o.error, traceback = o.traceback,
           finished_at = CASE WHEN o.status IN ('completed', 'failed', 'cancelled') THEN %(now)s::timestamptz END,
           worker_id = NULL, lease_token = NULL, lease_expires_at = NULL, run_at = coalesce(o.run_at, j.run_at),
           cancel_requested = CASE WHEN o.status = 'pending' THEN false ELSE j.cancel_requested END,
           attempts = j.attempts - o.refund
      FROM o, locked
     WHERE j.id = o.id AND j.id = locked.id AND j.status = 'running' AND j.lease_token = o.token
    RETURNING j.id, j.name, j.queue, j.owner, j.status, j.attempts, o.event, o.data
), fe AS (
    INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at)
    SELECT id, event, name, queue, owner, status, attempts, data, %(now)s FROM u ORDER BY id
    RETURNING id, job_id, type, name, queue, owner, status, attempt
)"""
_PG_FINISH = "WITH " + _PG_FINISH_CTES + """
SELECT fe.id, fe.job_id, fe.type, fe.name, fe.queue, fe.owner, fe.status, fe.attempt FROM fe {notify}
"""
# Both in one statement: one round trip and one commit per batch of outcomes. The claim
# cannot touch the rows being finished (it takes pending rows of the same snapshot).
_PG_FINISH_AND_CLAIM = "WITH " + _PG_FINISH_CTES + "," + _PG_CLAIM_CTES + """
SELECT 'f' AS kind, fe.id AS event_id, fe.job_id, fe.type, fe.name, fe.queue, fe.owner, fe.status, fe.attempt,
       NULL::text AS args, NULL::int AS max_retries, NULL::text AS checkpoint, NULL::bigint AS parent_id
  FROM fe
UNION ALL
SELECT 'c', ce.id, c.id, 'started', c.name, c.queue, c.owner, 'running', c.attempts, c.args, c.max_retries,
       c.checkpoint, c.parent_id
  FROM c JOIN ce ON ce.job_id = c.id
UNION ALL
SELECT 'n', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM {notify}
"""
_PG_NOTIFY_JOIN = ", (SELECT pg_notify('activejob', ''), pg_notify('activejob_events', '')) AS n"
_PG_EVENTS_NOTIFY_JOIN = ", (SELECT pg_notify('activejob_events', '')) AS n"
_PG_NOTIFY_FROM = "(SELECT pg_notify('activejob', ''), pg_notify('activejob_events', '')) AS n"
_PG_EVENTS_NOTIFY_FROM = "(SELECT pg_notify('activejob_events', '')) AS n"
