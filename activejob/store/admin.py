"""The operator's verbs: cancel, retry and delete one job, or many at once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, literal, select, update
from sqlalchemy.engine import Connection

from ..errors import JobNotFound
from ..models import FINISHED, JobStatus
from ..records import EventRecord
from .base import EVENT_COLUMNS, PENDING, RUNNING, events, jobs
from .parents import Parents
from .reads import _filtered as job_filters

CANCELLED_AT_ONCE = (PENDING, JobStatus.WAITING.value)
"""States a cancel ends on the spot; a running job is only marked, and its worker ends it."""

CANCELLABLE = (*CANCELLED_AT_ONCE, RUNNING)


class Admin(Parents):
    """request_cancel, retry_job and delete; retry_failed, cancel_many and delete_many."""

    def request_cancel(self, job_id: int, now: datetime, *, expect: Sequence[str] | None = None
                       ) -> tuple[str, list[EventRecord]]:
        """Cancel a pending/waiting job at once; mark a running one for its worker. The
        job's unfinished descendants are cancelled with it. Returns the job's status now.

        `expect` narrows the states the job may be in (what a person saw on a page): the
        UPDATE that cancels it is guarded by them, so a job that moved on meanwhile is left
        alone, with nothing written, and InvalidTransition names its state. Without it, a
        finished job is left as it is, and its status returned."""
        allowed = list(CANCELLABLE if expect is None else [s for s in expect if s in CANCELLABLE])
        rows: list[dict[str, Any]] = []
        parents: set[int] = set()
        with self.write() as c:
            status = self._cancel(c, [job_id], now, rows, parents, "requested", allowed).get(job_id)
            if status is None and expect is not None:
                self._refuse(c, job_id, lambda actual: (
                    f"job {job_id} is {actual}, not {' or '.join(expect)}; it was not cancelled"))
            if status is None:
                status = c.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
            if status is None:
                raise JobNotFound(f"no job with id {job_id}")
            self._carry_cancel(c, [job_id], now, rows, parents)
            return status, self._append(c, rows)

    def _cancel(self, c: Connection, job_ids: Sequence[int], now: datetime, rows: list[dict[str, Any]],
                parents: set[int], reason: str, allowed: Sequence[str] = CANCELLABLE) -> dict[int, str]:
        """Cancel the jobs whose state is one of `allowed`, in one guarded UPDATE: pending or
        waiting become cancelled, running ones are marked. Returns the status after of each
        job it changed (others: no such job, or in another state)."""
        if not job_ids:
            return {}
        # One statement whatever the state: the guard is the WHERE of the UPDATE that makes
        # the change, so no claim or outcome of a worker can fall between a check and a write.
        at_once = jobs.c.status.in_(CANCELLED_AT_ONCE)
        changed = c.execute(
            update(jobs)
            .where(jobs.c.id.in_(list(job_ids)), jobs.c.status.in_(list(allowed)))
            .values(status=case((at_once, JobStatus.CANCELLED.value), else_=jobs.c.status),
                    finished_at=case((at_once, literal(now, jobs.c.finished_at.type)), else_=jobs.c.finished_at),
                    cancel_requested=True)
            .returning(*EVENT_COLUMNS)
        ).mappings().all()
        for row in sorted(changed, key=lambda r: r["id"]):
            if row["status"] == JobStatus.CANCELLED.value:
                rows.append(self._event(row, "cancelled", now, {"reason": reason}))
                if row["parent_id"] is not None:
                    parents.add(row["parent_id"])
        return {int(r["id"]): str(r["status"]) for r in changed}

    def _carry_cancel(self, c: Connection, cancelled: Sequence[int], now: datetime, rows: list[dict[str, Any]],
                      parents: set[int]) -> None:
        """What cancelling these jobs carries with it, in the same transaction: their
        unfinished descendants are cancelled, the parents of those that ended are woken (not
        the cancelled jobs themselves), and the jobs depending on them are settled."""
        frontier = list(cancelled)
        while frontier:
            children = c.execute(
                select(jobs.c.id).where(jobs.c.parent_id.in_(frontier), jobs.c.status.not_in(list(FINISHED)))
            ).scalars().all()
            self._cancel(c, children, now, rows, parents, "parent cancelled")
            frontier = list(children)
        rows.extend(self._wake_parents(c, parents - set(cancelled), now))
        ended = [r["job_id"] for r in rows if r["type"] == "cancelled"]
        rows.extend(self._settle_dependents(c, self._dependents_of(c, ended), now))

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
                .returning(*EVENT_COLUMNS)
            ).mappings().first()
            if row is None:
                self._refuse(c, job_id, lambda status: (
                    f"job {job_id} is {status}; only {' or '.join(allowed)} jobs can be retried"))
            recorded = self._append(c, [self._event(row, "enqueued", now, {"reason": "retried by request"})],
                                    wake=True)
        return recorded

    def delete(self, job_id: int, now: datetime, *, expect: Sequence[str] | None = None) -> list[EventRecord]:
        """Remove a job that is not running, and its events; log that it was deleted.
        `expect` narrows the states it may be in, checked by the DELETE itself."""
        guard = jobs.c.status != RUNNING if expect is None else jobs.c.status.in_([s for s in expect if s != RUNNING])
        with self.write() as c:
            row = c.execute(delete(jobs).where(jobs.c.id == job_id, guard).returning(*EVENT_COLUMNS)).mappings().first()
            if row is None:
                self._refuse(c, job_id, lambda status: (
                    f"job {job_id} is running; cancel it before deleting it" if status == RUNNING
                    else f"job {job_id} is {status}, not {' or '.join(expect or ())}; it was not deleted"))
            # Append first, then drop the job's older events: on SQLite, deleting the newest
            # rows before the insert would hand their ids out again, and a reader that
            # already saw those ids (EventRelay, `since=`) would never see "deleted".
            woken = self._wake_parents(c, [row["parent_id"]] if row["parent_id"] is not None else [], now)
            recorded = self._append(c, [self._event(row, "deleted", now), *woken], wake=bool(woken))
            c.execute(delete(events).where(events.c.job_id == job_id, events.c.id < recorded[0].id))
            return recorded

    # -- many at once: one guarded statement each, the guard in its WHERE --------------------

    def retry_failed(self, now: datetime, *, name: str | None = None, queue: str | None = None,
                     owner: str | None = None, search: str | None = None) -> list[EventRecord]:
        """Run every failed job again (of one type, queue, owner, or matching a text search,
        as the job list filters), with fresh attempts; returns their `enqueued` events.

            events = store.retry_failed(now, name="send_email")
            print(len(events), "jobs will run again")

        One UPDATE, guarded by `status = 'failed'` in its own WHERE: a job that is not
        failed by the time it runs (retried by someone else meanwhile) is left alone."""
        stmt = job_filters(update(jobs).where(jobs.c.status == JobStatus.FAILED.value),
                           name=name, queue=queue, owner=owner, parent_id=None, search=search)
        with self.write() as c:
            rows = c.execute(
                stmt.values(status=PENDING, run_at=now, attempts=0, finished_at=None, error=None, traceback=None,
                            cancel_requested=False, result=None)
                .returning(*EVENT_COLUMNS)
            ).mappings().all()
            recorded = self._append(c, [self._event(r, "enqueued", now, {"reason": "retried by request"})
                                        for r in sorted(rows, key=lambda r: r["id"])], wake=True)
        return recorded

    def cancel_many(self, job_ids: Sequence[int], now: datetime) -> tuple[dict[int, str], list[EventRecord]]:
        """Cancel these jobs where they are pending or waiting, and mark the running ones for
        their workers; finished or missing ones are left alone. Returns the status of each
        job it changed (`cancelled`, or `running` for a marked one) and the events written.

            statuses, events = store.cancel_many([4, 5, 6], now)   # {4: "cancelled", 6: "running"}

        One UPDATE, guarded by the cancellable states in its own WHERE; then, as for one job,
        the unfinished descendants of those it changed go with them, and the jobs depending
        on those it cancelled are settled."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}, []
        with self.write() as c:
            return self._cancel_in(c, ids, now)

    def _cancel_in(self, c: Connection, ids: Sequence[int], now: datetime) -> tuple[dict[int, str], list[EventRecord]]:
        """`cancel_many` inside the caller's transaction (`cancel_batch` cancels its members
        in the transaction that marks the batch)."""
        rows: list[dict[str, Any]] = []
        parents: set[int] = set()
        statuses = self._cancel(c, ids, now, rows, parents, "requested")
        self._carry_cancel(c, list(statuses), now, rows, parents)
        return statuses, self._append(c, rows)

    def delete_many(self, job_ids: Sequence[int], now: datetime) -> list[EventRecord]:
        """Delete these jobs where they are finished (completed, failed or cancelled), with
        their events; others are left alone. Returns the `deleted` events, one per job gone.

            gone = store.delete_many([7, 8], now)

        One DELETE, guarded by the finished states in its own WHERE: a job retried meanwhile
        is pending again and stays."""
        ids = sorted(set(job_ids))
        if not ids:
            return []
        with self.write() as c:
            gone = c.execute(
                delete(jobs).where(jobs.c.id.in_(ids), jobs.c.status.in_([s.value for s in FINISHED]))
                .returning(*EVENT_COLUMNS)
            ).mappings().all()
            if not gone:
                return []
            # As for one job: append first, then drop the older events (see `delete`).
            recorded = self._append(c, [self._event(r, "deleted", now) for r in sorted(gone, key=lambda r: r["id"])])
            c.execute(delete(events).where(events.c.job_id.in_([r["id"] for r in gone]),
                                           events.c.id < recorded[0].id))
            return recorded
