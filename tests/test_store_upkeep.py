"""The store keeps its tables fit while workers run: pruning on SQLite leaves room for
the workers' writes, and PostgreSQL's jobs table is vacuumed once dead rows pile up."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

import activejob
from activejob import BaseJob, JobQueue, NoArgs, clock, job
from activejob.store import maintenance as upkeep


@job("upkeep_noop")
class Noop(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        return None


def test_a_prune_on_sqlite_takes_small_batches_and_deletes_them_all(sqlite_url: str) -> None:
    queue = activejob.configure(sqlite_url)
    try:
        Noop.perform_all_later([{}] * (2 * upkeep.SQLITE_PRUNE_BATCH + 7))
        queue.run_until_idle()
        pruned = queue.store.prune({"completed": clock.now() + timedelta(seconds=1)})
        assert pruned == 2 * upkeep.SQLITE_PRUNE_BATCH + 7
        assert queue.stats()["completed"] == 0
    finally:
        JobQueue.reset()


@pytest.mark.postgres
def test_the_jobs_table_is_vacuumed_once_dead_rows_pile_up(pg_url: str) -> None:
    queue = activejob.configure(pg_url)
    try:
        Noop.perform_all_later([{}] * (upkeep.VACUUM_DEAD_ROWS + 5_000))
        stats = ("SELECT vacuum_count + autovacuum_count, n_dead_tup FROM pg_stat_user_tables "
                 "WHERE relid = 'activejob_jobs'::regclass")
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("UPDATE activejob_jobs SET priority = 1")  # a dead version of every row
            conn.execute("SELECT pg_stat_force_next_flush()")
            before = conn.execute(stats).fetchone()
            assert before is not None and before[1] >= upkeep.VACUUM_DEAD_ROWS
            assert queue.store.refresh_planner_stats() is True
            after = conn.execute(stats).fetchone()
        assert after is not None and after[0] > before[0] and after[1] < upkeep.VACUUM_DEAD_ROWS
        assert queue.store.refresh_planner_stats() is False  # nothing left to do
    finally:
        JobQueue.reset()


@pytest.mark.postgres
def test_a_bulk_enqueue_is_analyzed_before_its_counts_reach_the_statistics(pg_url: str) -> None:
    """A worker's first look comes right after the jobs were enqueued, before PostgreSQL's
    statistics have the new rows (a backend reports them a second or more later): the
    file's growth is enough to analyze, so the claims are planned for the real table."""
    queue = activejob.configure(pg_url)
    reltuples = "SELECT reltuples FROM pg_class WHERE oid = 'activejob_jobs'::regclass"
    try:
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("ANALYZE activejob_jobs")  # the planner believes the table is empty
            Noop.perform_all_later([{}] * 10_000)
            # As if the enqueue's counts were not reported yet: pg_stat says 0 live rows.
            conn.execute("SELECT pg_stat_reset_single_table_counters('activejob_jobs'::regclass)")
            assert queue.store.refresh_planner_stats() is True
            believed = conn.execute(reltuples).fetchone()
        assert believed is not None and believed[0] >= 9_000
    finally:
        JobQueue.reset()
