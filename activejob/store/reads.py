"""The reads: jobs, counts, stats and the event log (none of them writes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from ..records import STATUSES, EventRecord, JobInfo, WorkerInfo
from .base import PENDING, RUNNING, events, jobs
from .worker_registry import WorkerRegistry


class Reads(WorkerRegistry):
    """The reads, and the counts the worker's maintenance asks for."""

    def due_count(self, now: datetime, names: Sequence[str], queues: Sequence[str] | None = None) -> int:
        stmt = select(func.count()).select_from(jobs).where(
            jobs.c.status.in_([PENDING, RUNNING]), jobs.c.run_at <= now, jobs.c.name.in_(list(names)))
        if queues:
            stmt = stmt.where(jobs.c.queue.in_(list(queues)))
        with self.read() as c:
            return int(c.execute(stmt).scalar_one())

    def due_by_name(self, now: datetime) -> dict[str, int]:
        """Due pending jobs, by name."""
        with self.read() as c:
            rows = c.execute(
                select(jobs.c.name, func.count())
                .where(jobs.c.status == PENDING, jobs.c.run_at <= now)
                .group_by(jobs.c.name)
            ).all()
        return {name: n for name, n in rows}

    def unclaimable(self, now: datetime, live: Iterable[WorkerInfo]) -> dict[str, int]:
        """Due pending jobs, by name, of types that none of the `live` workers has registered."""
        return unknown_to(live, self.due_by_name(now))

    def get(self, job_id: int) -> JobInfo | None:
        with self.read() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return JobInfo.from_row(row) if row is not None else None

    def list_jobs(self, *, status: str | Sequence[str] | None = None, name: str | None = None,
             queue: str | None = None, owner: str | None = None, parent_id: int | None = None,
             search: str | None = None, limit: int = 50, offset: int = 0,
             order: str = "newest") -> list[JobInfo]:
        stmt = _filtered(select(jobs), name=name, queue=queue, owner=owner, parent_id=parent_id, search=search)
        if status:
            stmt = stmt.where(jobs.c.status.in_([status] if isinstance(status, str) else list(status)))
        stmt = stmt.order_by(jobs.c.id.asc() if order == "oldest" else jobs.c.id.desc())
        stmt = stmt.limit(limit).offset(offset)
        with self.read() as c:
            return [JobInfo.from_row(r) for r in c.execute(stmt).mappings()]

    def count_by_status(self, *, name: str | None = None, queue: str | None = None, owner: str | None = None,
                        parent_id: int | None = None, search: str | None = None) -> dict[str, int]:
        """Jobs per status among those these filters match (list_jobs's, but the status)."""
        stmt = _filtered(select(jobs.c.status, func.count()).group_by(jobs.c.status),
                         name=name, queue=queue, owner=owner, parent_id=parent_id, search=search)
        with self.read() as c:
            return {str(status): int(n) for status, n in c.execute(stmt).all()}

    def oldest_due(self, now: datetime) -> dict[str, datetime]:
        """Per queue, the run time of its longest-waiting due pending job (queues with none
        due are left out): how far behind the workers are."""
        with self.read() as c:
            rows = c.execute(select(jobs.c.queue, func.min(jobs.c.run_at))
                             .where(jobs.c.status == PENDING, jobs.c.run_at <= now)
                             .group_by(jobs.c.queue)).all()
        return {str(queue): run_at for queue, run_at in rows}

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
               types: Sequence[str] | None = None, exclude: Sequence[str] = (), limit: int = 500,
               batch_id: int | None = None) -> list[EventRecord]:
        """Events with id > `after`, oldest first. `batch_id`: a batch's own events and its
        members' events."""
        stmt = self._events_query().where(events.c.id > after)
        if job_id is not None:
            stmt = stmt.where(events.c.job_id == job_id)
        if owner is not None:
            stmt = stmt.where(events.c.owner == owner)
        if batch_id is not None:
            members = select(jobs.c.id).where(jobs.c.batch_id == batch_id)
            stmt = stmt.where(or_(events.c.batch_id == batch_id, events.c.job_id.in_(members)))
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
            rows = c.execute(self._events_query().where(events.c.id.in_(list(ids))).order_by(events.c.id)).mappings()
            return [EventRecord.from_row(r) for r in rows]

    @staticmethod
    def _events_query() -> Any:
        """Events with the batch each is about: a batch's own events name it, a member's
        events name it through their job (one primary-key lookup each)."""
        own = [c for c in events.c if c.name != "batch_id"]
        batch = func.coalesce(events.c.batch_id, jobs.c.batch_id).label("batch_id")
        return select(*own, batch).select_from(events.outerjoin(jobs, jobs.c.id == events.c.job_id))

    def last_stamped_jobs(self, prefixes: Sequence[str]) -> dict[str, JobInfo]:
        """For each prefix, the job (still stored) with the greatest unique key that is the
        prefix followed by an ISO date-time (`cron:nightly:2030-01-01T03:00:00+00:00`): how
        the cron chore learns the last slot enqueued for each schedule. Same-offset ISO times
        sort as they are ordered in time, so the greatest key is the latest slot."""
        found: dict[str, JobInfo] = {}
        with self.read() as c:
            for prefix in prefixes:
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                latest = select(func.max(jobs.c.unique_key)).where(
                    jobs.c.unique_key.like(f"{escaped}____-__-__T%", escape="\\")).scalar_subquery()
                row = c.execute(select(jobs).where(jobs.c.unique_key == latest)
                                .order_by(jobs.c.id.desc()).limit(1)).mappings().first()
                if row is not None:
                    found[prefix] = JobInfo.from_row(row)
        return found

    def last_event_id(self) -> int:
        with self.read() as c:
            return int(c.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())


def _filtered(stmt: Any, *, name: str | None, queue: str | None, owner: str | None, parent_id: int | None,
              search: str | None) -> Any:
    """`stmt` narrowed by the job list's filters (one definition for the list and its counts)."""
    for column, value in ((jobs.c.name, name), (jobs.c.queue, queue), (jobs.c.owner, owner),
                          (jobs.c.parent_id, parent_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    if search:
        like = f"%{search}%"
        stmt = stmt.where(or_(jobs.c.name.like(like), jobs.c.args.like(like), jobs.c.error.like(like)))
    return stmt


def unknown_to(live: Iterable[WorkerInfo], due: Mapping[str, int]) -> dict[str, int]:
    """The entries of `due` (counts by job name) of types none of the `live` workers has registered."""
    known = {name for w in live for name in w.job_types}
    return {name: n for name, n in due.items() if name not in known}
