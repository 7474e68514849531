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
