"""Dependencies: a job enqueued with `depends_on` waits until every job it names has completed.

A dependent is written `waiting`, with one row per edge in activejob_dependencies, and the
jobs it waits for are marked `has_dependents`. It is settled by `_settle_dependents`, in the
transaction of whatever finished the last of them (the recorder calls
`release_dependents` after its outcomes commit, for the jobs whose write found them
marked; a cancel calls it inside its own), and by the waiting-jobs safety net
(`wake_waiting`) for anything a dead worker left behind. The mark is set under the lock
of the jobs waited for, so a finish either reads it or commits first, and then the
dependent, written after, finds its dependency ended and settles itself.
Settling reads the dependencies' states as committed, so the last of several dependencies
to finish, whichever transaction that is, is the one that settles the dependent; and the
UPDATE that settles it is guarded by `status = 'waiting'`, so it happens once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, exists, insert, select, update
from sqlalchemy.engine import Connection

from ..errors import JobNotFound
from ..models import FINISHED, Dependency, JobStatus
from ..records import EventRecord
from .base import EVENT_COLUMNS, PENDING, StoreBase, jobs

dependencies = Dependency.__table__  # type: ignore[attr-defined]
_dep = jobs.alias("dep")  # built once: an alias proxies every column of the table
_MARK_DEPENDED_ON = (update(jobs).where(jobs.c.id.in_(bindparam("ids", expanding=True)))
                     .values(has_dependents=True).returning(jobs.c.id, jobs.c.status))


class _Edge(NamedTuple):
    """What settling a waiting job reads of each job it depends on."""

    id: int
    status: str
    run_on_failure: bool

WAITING = JobStatus.WAITING.value
COMPLETED = JobStatus.COMPLETED.value
CANCELLED = JobStatus.CANCELLED.value
_FINISHED = [s.value for s in FINISHED]

DEPENDENCY_FAILED = "dependency_failed"
"""The reason a dependent is cancelled with when a job it waits for failed or was cancelled."""


def has_dependencies(job_id: Any) -> Any:
    """SQL: the job `job_id` (a column or value) waits for other jobs."""
    return exists().where(dependencies.c.job_id == job_id)


class Dependencies(StoreBase):
    """Writing a dependent's edges, and settling dependents once their dependencies end."""

    def _add_dependencies(self, c: Connection, job_id: int, on: Sequence[int], run_on_failure: bool,
                          now: datetime, name: str = "") -> list[dict[str, Any]]:
        """Record that `job_id` (just inserted, `waiting`) waits for `on`, and settle it at once
        if they have all ended (or one failed). Returns the event rows of that settling."""
        # One UPDATE marks the dependencies as having a dependent and takes their row locks:
        # a dependency finishing at this moment either committed before (its status comes
        # back here, finished) or waits for this commit (and then sees the edge, and settles
        # this job itself). What it returns also tells which exist, and how each stands.
        status = {row.id: row.status for row in c.execute(_MARK_DEPENDED_ON, {"ids": sorted(set(on))})}
        missing = [i for i in on if i not in status]
        if missing:
            raise JobNotFound(f"{name + ': ' if name else ''}depends_on names job(s) {missing}, which do not exist")
        c.execute(insert(dependencies), [
            {"job_id": job_id, "depends_on_id": d, "run_on_failure": run_on_failure} for d in on])
        # Settled alone: a job just inserted has no dependents yet to cascade to (a later job
        # of the same call that waits for it gets its edge after this).
        row = self._settle_one(c, job_id, now, [_Edge(d, status[d], run_on_failure) for d in sorted(status)])
        return [] if row is None else [row]

    def _settle_dependents(self, c: Connection, job_ids: Iterable[int], now: datetime) -> list[dict[str, Any]]:
        """Settle the waiting jobs among `job_ids` whose dependencies have all ended (or one
        failed): pending again, or cancelled with reason `dependency_failed`, cascading to
        their own dependents. Returns the event rows to append."""
        rows: list[dict[str, Any]] = []
        frontier = sorted(set(job_ids))
        while frontier:
            cancelled: list[int] = []
            for job_id in frontier:
                row = self._settle_one(c, job_id, now)
                if row is not None:
                    rows.append(row)
                    if row["status"] == CANCELLED:
                        cancelled.append(job_id)
            frontier = self._dependents_of(c, cancelled) if cancelled else []
        return rows

    def _settle_one(self, c: Connection, job_id: int, now: datetime, states: Sequence[Any] | None = None
                    ) -> dict[str, Any] | None:
        """Settle one waiting job, from `states` (its edges: id, status and run_on_failure of
        each dependency, in id order) when the caller has just read them under lock."""
        if states is None:
            dep = _dep  # (short: the statement below names it five times)
            states = c.execute(
                select(dep.c.id, dep.c.status, dependencies.c.run_on_failure)
                .join(dep, dep.c.id == dependencies.c.depends_on_id)
                .where(dependencies.c.job_id == job_id).order_by(dep.c.id)
            ).all()
        if not states or any(s.status not in _FINISHED for s in states):
            failed = [s for s in states if s.status in (JobStatus.FAILED.value, CANCELLED) and not s.run_on_failure]
            if not failed:
                return None  # still waiting (a failure ends the wait before the others finish)
        else:
            failed = [s for s in states if s.status != COMPLETED and not s.run_on_failure]
        guard = and_(jobs.c.id == job_id, jobs.c.status == WAITING)
        if failed:
            first = failed[0]
            error = f"{DEPENDENCY_FAILED}: job {first.id} it depends on was {first.status}"
            row = c.execute(update(jobs).where(guard).values(
                status=CANCELLED, finished_at=now, error=error).returning(*EVENT_COLUMNS)).mappings().first()
            data = {"reason": DEPENDENCY_FAILED, "dependency": first.id, "dependency_status": first.status}
            return None if row is None else self._event(row, "cancelled", now, data)
        row = c.execute(update(jobs).where(guard).values(status=PENDING, run_at=now)
                        .returning(*EVENT_COLUMNS)).mappings().first()
        return None if row is None else self._event(row, "enqueued", now, {"reason": "dependencies completed"})

    @staticmethod
    def _dependents_of(c: Connection, job_ids: Sequence[int]) -> list[int]:
        if not job_ids:
            return []
        return sorted(set(c.execute(
            select(dependencies.c.job_id).join(jobs, jobs.c.id == dependencies.c.job_id)
            .where(dependencies.c.depends_on_id.in_(list(job_ids)), jobs.c.status == WAITING)).scalars()))

    def release_dependents(self, finished: Iterable[int], now: datetime) -> list[EventRecord]:
        """After jobs ended (their outcomes committed): settle the jobs waiting for them."""
        ids = sorted(set(finished))
        if not ids:
            return []
        with self.read() as c:
            waiting = self._dependents_of(c, ids)
        if not waiting:
            return []
        with self.write() as c:
            return self._append(c, self._settle_dependents(c, waiting, now))

    def dependencies_of(self, job_id: int) -> list[int]:
        """The ids of the jobs `job_id` waits for (or waited for)."""
        with self.read() as c:
            return list(c.execute(select(dependencies.c.depends_on_id).where(dependencies.c.job_id == job_id)
                                  .order_by(dependencies.c.depends_on_id)).scalars())
