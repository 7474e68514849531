"""explain_facts: everything the database knows about why one job is, or is not, running.

One read, no writes: the job, its queue's pause, the running jobs its concurrency limit
counts, the due jobs claimed before it, its unfinished children and dependencies, the starts
its rate limits count, and the live workers. The decision itself is `activejob.explain`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, case, func, or_, select
from sqlalchemy.engine import Connection

from ..errors import JobNotFound
from ..models import FINISHED, Dependency, JobStatus, RateStart
from ..records import JobInfo, WorkerInfo
from .base import PENDING, RUNNING, jobs, paused
from .worker_registry import WorkerRegistry

dependencies: Table = Dependency.__table__  # type: ignore[attr-defined]
rate_starts: Table = RateStart.__table__  # type: ignore[attr-defined]

_FINISHED = [s.value for s in FINISHED]
_SHOWN = 20
"""At most this many unfinished children or dependencies are named; the count says the rest."""

KeyLimits = Mapping[str, tuple[int, timedelta]]
"""Rate-limit keys (`type:<name>`, `type:<name>:<rate_key>`, `queue:<queue>`) and their
(starts, window)."""


@dataclass(frozen=True, slots=True)
class RateUse:
    """Starts counted under one rate-limit key within its window, as of `now`.

    `frees_at`: when a start leaves the window so that fewer than `limit` remain (None while
    the window has room).
    """

    key: str
    starts: int
    limit: int
    window: timedelta
    frees_at: datetime | None = None

    @property
    def full(self) -> bool:
        return self.starts >= self.limit


@dataclass(frozen=True, slots=True)
class Blocker:
    """An unfinished job another one waits for: a child, or a dependency."""

    id: int
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class ExplainFacts:
    """What the database says about one job at `now` (`Store.explain_facts`)."""

    job: JobInfo
    now: datetime
    paused_since: datetime | None = None  # its queue's pause, if the queue is paused
    running_of_type: int = 0  # running jobs of its type, anywhere
    running_of_key: int = 0  # ... of its type with its concurrency key (NULL with NULL)
    ahead: int = 0  # due pending jobs of its queue that the claim order puts before it
    children: tuple[Blocker, ...] = ()  # unfinished children, the first few
    open_children: int = 0
    dependencies: tuple[Blocker, ...] = ()  # dependencies still holding it, the first few
    open_dependencies: int = 0
    rates: tuple[RateUse, ...] = ()
    workers: tuple[WorkerInfo, ...] = field(default=())  # live workers, oldest first


class Explaining(WorkerRegistry):
    """explain_facts."""

    def explain_facts(self, job_id: int, now: datetime, *, live_since: datetime,
                      rate_limits: Callable[[JobInfo, Sequence[WorkerInfo]], KeyLimits] | None = None
                      ) -> ExplainFacts:
        """The facts about job `job_id` at `now`; workers count as live from `live_since` on
        (`liveness.live_since`). `rate_limits(job, live_workers)` names the rate-limit keys
        that apply to the job and their limits (from `@job`, the settings and the queue
        limits the live workers keep). Raises JobNotFound for an unknown id.

            facts = store.explain_facts(12, now, live_since=now - timedelta(minutes=1))
            facts.job.status, facts.paused_since, facts.running_of_type
        """
        with self.read() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
            if row is None:
                raise JobNotFound(f"no job with id {job_id}")
            job = JobInfo.from_row(row)
            live = self._workers(c, live_since)
            paused_since = c.execute(select(paused.c.paused_at).where(paused.c.queue == job.queue)).scalar()
            of_type = jobs.c.name == job.name
            running_of_type, running_of_key = c.execute(select(
                func.count(),
                func.coalesce(func.sum(_one_if(_same_key(job.concurrency_key))), 0),
            ).where(jobs.c.status == RUNNING, of_type)).one()
            children, open_children = _blockers(c, select(jobs.c.id, jobs.c.name, jobs.c.status).where(
                jobs.c.parent_id == job.id, jobs.c.status.not_in(_FINISHED)))
            deps, open_deps = _blockers(c, _holding_dependencies(job.id))
            rates = tuple(_rate_use(c, key, count, window, now)
                          for key, (count, window) in (rate_limits(job, live) if rate_limits else {}).items())
            ahead = _ahead(c, job, now) if job.status == PENDING and job.run_at <= now else 0
        return ExplainFacts(
            job=job, now=now, paused_since=paused_since, running_of_type=int(running_of_type),
            running_of_key=int(running_of_key), ahead=ahead, children=children, open_children=open_children,
            dependencies=deps, open_dependencies=open_deps, rates=rates,
            workers=tuple(live),
        )


def _same_key(key: str | None) -> ColumnElement[bool]:
    return jobs.c.concurrency_key.is_(None) if key is None else jobs.c.concurrency_key == key


def _one_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _blockers(c: Connection, stmt: Select[Any]) -> tuple[tuple[Blocker, ...], int]:
    """The first few jobs `stmt` selects (id, name, status), and how many it selects."""
    sub = stmt.subquery()
    count = int(c.execute(select(func.count()).select_from(sub)).scalar_one())
    if count == 0:
        return (), 0
    rows = c.execute(select(sub).order_by(sub.c.id).limit(_SHOWN)).all()
    return tuple(Blocker(id=r.id, name=r.name, status=r.status) for r in rows), count


def _holding_dependencies(job_id: int) -> Select[Any]:
    """The jobs `job_id` waits for that have not ended as it needs: not completed, and not
    (for `run_on_failure`) failed or cancelled."""
    dep = jobs.alias("dep")
    ended_well = or_(dep.c.status == JobStatus.COMPLETED.value,
                     and_(dependencies.c.run_on_failure.is_(True), dep.c.status.in_(_FINISHED)))
    return (select(dep.c.id, dep.c.name, dep.c.status)
            .join(dependencies, dependencies.c.depends_on_id == dep.c.id)
            .where(dependencies.c.job_id == job_id, ~ended_well))


def _rate_use(c: Connection, key: str, limit: int, window: timedelta, now: datetime) -> RateUse:
    inside = and_(rate_starts.c.key == key, rate_starts.c.started_at > now - window)
    starts = int(c.execute(select(func.count()).select_from(rate_starts).where(inside)).scalar_one())
    frees_at = None
    if starts >= limit:
        # Fewer than `limit` remain once the limit-th newest start has left the window.
        kth = c.execute(select(rate_starts.c.started_at).where(inside)
                        .order_by(rate_starts.c.started_at.desc()).offset(limit - 1).limit(1)).scalar()
        frees_at = kth + window if kth is not None else None
    return RateUse(key=key, starts=starts, limit=limit, window=window, frees_at=frees_at)


def _ahead(c: Connection, job: JobInfo, now: datetime) -> int:
    """Due pending jobs of the job's queue that a claim takes before it (priority, then run
    time, then id: the claim's own order)."""
    before = or_(
        jobs.c.priority > job.priority,
        and_(jobs.c.priority == job.priority, jobs.c.run_at < job.run_at),
        and_(jobs.c.priority == job.priority, jobs.c.run_at == job.run_at, jobs.c.id < job.id),
    )
    return int(c.execute(select(func.count()).select_from(jobs).where(
        jobs.c.status == PENDING, jobs.c.run_at <= now, jobs.c.queue == job.queue, before)).scalar_one())
