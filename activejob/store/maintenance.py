"""Housekeeping: pruning finished jobs and old events, and the planner's statistics."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from .base import StoreBase, events, jobs


class Maintenance(StoreBase):
    """prune, prune_events and refresh_planner_stats."""

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
