"""Housekeeping: pruning finished jobs and old events, and the planner's statistics."""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy import delete, select

from .base import StoreBase, events, jobs

SQLITE_PRUNE_BATCH = 250
SQLITE_PRUNE_PAUSE = 0.003
"""SQLite has one writer: a prune of a million jobs in back-to-back transactions held the
write lock 85% of the time and stalled the workers' claims for seconds (bench --scale).
Small batches with a pause between them let every waiting writer in: claim p99 during
such a prune went from 111 ms to under 10 ms, the prune itself taking twice as long."""

VACUUM_DEAD_ROWS = 20_000
VACUUM_DEAD_SHARE = 0.05
VACUUM_INTERVAL_S = 60
"""PostgreSQL: vacuum the jobs table once this many dead row versions (and this share of
the live ones) piled up, at most once a minute (see `refresh_planner_stats`)."""

ANALYZE_GROWTH_PAGES = 128
"""PostgreSQL: analyze the jobs table once its file has grown by this many pages (1 MB) past
twice what the planner last measured (see `refresh_planner_stats`)."""

VACUUM_LOCK = 0x61_6A_76_61  # "ajva": the advisory lock one vacuuming worker holds


class Maintenance(StoreBase):
    """prune, prune_events and refresh_planner_stats."""

    def prune(self, cutoffs: dict[str, datetime], *, batch: int | None = None) -> int:
        """Delete finished jobs (and their events) older than each status's cutoff."""
        sqlite = self.dialect == "sqlite"
        batch = batch or (SQLITE_PRUNE_BATCH if sqlite else 1000)
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
                if sqlite:
                    time.sleep(SQLITE_PRUNE_PAUSE)  # let the workers' writes in (see SQLITE_PRUNE_PAUSE)
        return total

    def prune_events(self, cutoff: datetime, *, batch: int | None = None) -> int:
        """Drop event-log rows older than `cutoff` (the jobs themselves stay).

        Ids grow with time, so the oldest events are the first in id order: walking the
        primary key from the start reads only what is deleted, with no index on time."""
        sqlite = self.dialect == "sqlite"
        batch = batch or (4 * SQLITE_PRUNE_BATCH if sqlite else 5000)
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
            if sqlite:
                time.sleep(SQLITE_PRUNE_PAUSE)

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
                "SELECT s.n_live_tup, c.reltuples, s.n_dead_tup, "
                "extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum)), "
                "pg_relation_size(c.oid) / current_setting('block_size')::bigint, c.relpages "
                "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                "WHERE s.relid = 'activejob_jobs'::regclass"
            ).first()
        if row is None:
            return False
        live, believed, dead, since_vacuum, pages, believed_pages = row
        # Every claim and outcome leaves a dead row version at the head of the due index, and
        # each claim walks past them: over a long drain a claim read 8, then 957 buffers
        # (bench --scale). Autovacuum catches up eventually (if it is on); this keeps it bounded.
        if dead > max(VACUUM_DEAD_ROWS, VACUUM_DEAD_SHARE * live) and (
                since_vacuum is None or since_vacuum > VACUUM_INTERVAL_S):
            return self._vacuum()
        # The row counts above reach pg_stat a second or more after the writes (a backend
        # sends its counts when it next ends a transaction, or idles): a worker's first look,
        # just after a bulk enqueue, would still see an empty table. The file's size is
        # current, so growth in pages counts too.
        grown = (live > 2 * max(float(believed), 0.0) + 1000
                 or pages > 2 * max(believed_pages, 0) + ANALYZE_GROWTH_PAGES)
        if not grown:
            return False
        with self.engine.connect() as c:
            c.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE activejob_jobs")
        return True

    def _vacuum(self) -> bool:
        """VACUUM (ANALYZE) the jobs table, by one worker at a time (a try-lock: the others
        skip it). It takes no lock that claims or outcomes wait for."""
        with self.engine.connect() as c:
            c = c.execution_options(isolation_level="AUTOCOMMIT")
            if not c.exec_driver_sql(f"SELECT pg_try_advisory_lock({VACUUM_LOCK})").scalar():
                return False
            try:
                c.exec_driver_sql("VACUUM (ANALYZE) activejob_jobs")
            finally:
                c.exec_driver_sql(f"SELECT pg_advisory_unlock({VACUUM_LOCK})")
        return True
