"""Waiting parents: a job that waits for its children runs again once they have all finished."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from ..models import FINISHED, JobStatus
from ..records import EventRecord
from .base import EVENT_COLUMNS, PENDING, jobs
from .dependencies import Dependencies

_child = jobs.alias("child")  # built once: an alias proxies every column of the table


class Parents(Dependencies):
    """Waking waiting parents, within a verb's transaction or as a safety net."""

    def _wake_parents(self, c: Connection, parent_ids: Iterable[int], now: datetime) -> list[dict[str, Any]]:
        """Put waiting parents whose children have all finished back to pending."""
        rows = []
        child = _child
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
                # started_at: a parent has run; a job waiting for dependencies never has.
                .where(jobs.c.id == parent_id, jobs.c.status == JobStatus.WAITING.value, open_children == 0,
                       jobs.c.started_at.isnot(None))
                .values(status=PENDING, run_at=now)
                .returning(*EVENT_COLUMNS)
            ).mappings().first()
            if row is not None:
                rows.append(self._event(row, "enqueued", now, {"reason": "children finished"}))
        return rows

    def wake_waiting(self, now: datetime) -> list[EventRecord]:
        """Safety net: any waiting parent with no unfinished children runs again, and any job
        waiting for dependencies that have all ended is settled (whatever a dead worker left)."""
        with self.read() as c:
            waiting = c.execute(select(jobs.c.id, jobs.c.started_at.is_(None))
                                .where(jobs.c.status == JobStatus.WAITING.value).limit(500)).all()
        if not waiting:
            return []
        dependents = [job_id for job_id, never_ran in waiting if never_ran]
        parents = [job_id for job_id, never_ran in waiting if not never_ran]
        with self.write() as c:
            return self._append(c, [*self._wake_parents(c, parents, now),
                                    *self._settle_dependents(c, dependents, now)])
