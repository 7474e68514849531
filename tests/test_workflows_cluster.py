"""Batches and dependencies with four worker processes on one PostgreSQL database."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import workflow_jobs
from runner_support import Workers, wait_for

import activejob
from activejob import Batch, JobQueue, chain

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def pg_queue(pg_url: str) -> JobQueue:
    queue = activejob.configure(pg_url)
    yield queue  # type: ignore[misc]
    JobQueue.reset()


def start_four(workers: Workers, url: str) -> None:
    for _ in range(4):
        workers.start(url, "--concurrency", "8", imports="tests.workflow_jobs", lease=5.0, poll_interval=0.2)


def test_each_batch_callback_runs_once_with_four_workers(pg_queue: JobQueue, workers: Workers,
                                                         tmp_path: Path) -> None:
    log = str(tmp_path / "runs.log")
    ids = []
    for b in range(15):
        done = (workflow_jobs.BatchDone, {"tag": f"b{b}", "log": log})
        with Batch(on_complete=done, description=f"batch {b}") as batch:
            workflow_jobs.MarkRun.perform_all_later([{"tag": f"{b}.{i}", "log": log} for i in range(12)])
        ids.append(batch.id)
    start_four(workers, pg_queue.database_url)

    def callbacks() -> list[list[str]]:
        return [line for line in workflow_jobs.lines(log) if line[0] == "callback"]

    wait_for(lambda: len(callbacks()) >= 15 and all(pg_queue.get_batch(i).finished for i in ids),  # type: ignore
             60, what="every batch's callback")
    wait_for(lambda: not pg_queue.list_jobs(status=["pending", "running"]), 20, what="nothing left to run")
    ran = Counter(int(line[1]) for line in callbacks())
    assert ran == Counter({i: 1 for i in ids})
    assert all(line[2] == line[3] == "12" for line in callbacks())  # every member counted, all completed
    assert len(pg_queue.list_jobs(name="wf_batch_done", limit=100)) == 15
    finished = Counter(e.batch_id for e in pg_queue.store.events(types=["batch_finished"], limit=1000))
    assert finished == Counter({i: 1 for i in ids})  # and each batch's own event, once


def test_chains_keep_their_order_with_four_workers(pg_queue: JobQueue, workers: Workers, tmp_path: Path) -> None:
    log = str(tmp_path / "runs.log")
    for c in range(20):
        chain(*[(workflow_jobs.MarkRun, {"tag": f"{c}.{s}", "log": log, "seconds": 0.01}) for s in range(3)])
    start_four(workers, pg_queue.database_url)
    wait_for(lambda: sum(1 for line in workflow_jobs.lines(log) if line[0] == "end") == 60, 60,
             what="every step of every chain")
    times = {(line[0], line[1]): float(line[2]) for line in workflow_jobs.lines(log)}
    for c in range(20):
        for s in (1, 2):
            assert times[("start", f"{c}.{s}")] >= times[("end", f"{c}.{s - 1}")], f"chain {c} step {s} ran early"


def test_each_concurrency_key_keeps_its_limit_with_four_workers(pg_queue: JobQueue, workers: Workers,
                                                                tmp_path: Path) -> None:
    log = str(tmp_path / "runs.log")
    start_four(workers, pg_queue.database_url)
    workflow_jobs.KeyedRun.perform_all_later([{"key": f"k{i % 3}", "tag": str(i), "log": log, "seconds": 0.05}
                                              for i in range(60)])
    wait_for(lambda: sum(1 for line in workflow_jobs.lines(log) if line[0] == "end") == 60, 60,
             what="every keyed job")
    # Recorded start and end times: never more than two of a key at once, and the limit used.
    assert workflow_jobs.most_at_once(log) == {"k0": 2, "k1": 2, "k2": 2}
    ran_on = pg_queue.store.events(types=["started"], limit=1000)
    assert len({e.data["worker_id"] for e in ran_on}) >= 2, "the work was shared between processes"


def test_each_unique_key_is_held_once_with_four_workers(pg_queue: JobQueue, workers: Workers,
                                                        tmp_path: Path) -> None:
    log = str(tmp_path / "runs.log")
    start_four(workers, pg_queue.database_url)
    # 80 spawners in four worker processes race to enqueue follow-ups for three keys.
    workflow_jobs.Spawner.perform_all_later([{"key": f"u{i % 3}", "tag": str(i), "log": log, "seconds": 0.1}
                                             for i in range(80)])
    wait_for(lambda: not pg_queue.list_jobs(status=["pending", "running"]), 60, what="every spawner and follow-up")
    # A key's follow-ups never overlapped: each was enqueued only once the last had finished.
    assert workflow_jobs.most_at_once(log) == {"u0": 1, "u1": 1, "u2": 1}
    follows = pg_queue.list_jobs(name="wf_unique_follow", limit=200)
    assert 3 <= len(follows) < 80  # duplicates were handed the holder instead of a new job
