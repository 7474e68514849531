"""Leases: workers that die or stall, recovery by another worker, and fencing."""

from __future__ import annotations

import logging
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import jobs_for_workers as wk
import pytest
from runner_support import job_info, pause, wait_for

import activejob
from activejob import JobQueue, clock

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]



@pytest.fixture
def recovering(db_url: str) -> Any:
    """The test's own queue, with a short lease like the worker subprocesses (not started yet)."""
    queue = activejob.configure(db_url, poll_interval=0.05, progress_interval=0.05, lease=2)
    yield queue
    JobQueue.reset()


def _running(queue: JobQueue, ids: list[int]) -> bool:
    return all(job_info(queue, i).status == "running" for i in ids)


def test_jobs_of_a_killed_worker_are_recovered_and_completed(recovering: JobQueue, db_url: str, workers: Any,
                                                             tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    caplog.set_level(logging.INFO, logger="activejob")
    release = tmp_path / "release"
    handles = [wk.WkBlock.perform_later(release=str(release)) for _ in range(3)]
    ids = [h.id for h in handles]
    worker = workers.start(db_url, "--concurrency", "3", lease=2)
    wait_for(lambda: _running(recovering, ids), what="the worker to run all three")
    for job_id in ids:
        left = (job_info(recovering, job_id).lease_expires_at - clock.now()).total_seconds()
        assert 0 < left <= 2.5  # --lease 2
    worker.signal(signal.SIGKILL)
    worker.wait()
    release.touch()
    recovering.start()
    try:
        for h in handles:
            info = h.wait(timeout=30)
            assert info.status == "completed"
            assert info.result["pid"] == os.getpid()  # finished here, not in the dead worker
            assert info.result["attempt"] == info.attempts == 2
            types = [e.type for e in recovering.events(h.id)]
            assert types == ["enqueued", "started", "retrying", "started", "completed"]
            lost = next(e for e in recovering.events(h.id) if e.type == "retrying")
            assert lost.data["reason"] == "worker_lost"
            assert "worker lost" in lost.data["error"]
    finally:
        recovering.stop(timeout=20)
    recovered = [r.getMessage() for r in caplog.records if "recovered from a lost worker" in r.getMessage()]
    assert len(recovered) == 3, recovered


def test_a_job_that_kills_its_worker_every_time_ends_failed_worker_lost(recovering: JobQueue, db_url: str,
                                                                        workers: Any) -> None:
    handle = wk.WkKillWorker.perform_later()  # max_retries=1: two attempts
    started = 0
    while True:
        info = job_info(recovering, handle.id)
        if info.status == "failed":
            break
        if not any(w.alive() for w in workers.started):
            assert started < 6, f"still {info.status} after {started} workers"
            workers.start(db_url, lease=2, wait_ready=False)
            started += 1
        time.sleep(0.1)  # polling the job and the workers
    assert info.attempts == 2
    assert info.error.startswith("worker lost:")
    assert "stopped heartbeating" in info.error
    types = [e.type for e in recovering.events(handle.id)]
    assert types == ["enqueued", "started", "retrying", "started", "failed"]


def test_checkpoint_resumes_after_a_crash(recovering: JobQueue, db_url: str, workers: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    handle = wk.WkBlock.perform_later(release=str(release), checkpoint=5)
    worker = workers.start(db_url, lease=2)
    wait_for(lambda: job_info(recovering, handle.id).checkpoint == {"offset": 5}, what="the checkpoint to be saved")
    worker.signal(signal.SIGKILL)
    worker.wait()
    release.touch()
    recovering.start()
    try:
        info = handle.wait(timeout=30)
    finally:
        recovering.stop(timeout=20)
    assert info.result == {"pid": os.getpid(), "attempt": 2, "checkpoint": {"offset": 5}}


def test_a_paused_worker_that_resumes_changes_nothing_about_a_finished_job(recovering: JobQueue, db_url: str,
                                                                            workers: Any, tmp_path: Path) -> None:
    release = tmp_path / "release"
    handle = wk.WkBlock.perform_later(release=str(release))
    stalled = workers.start(db_url, lease=2)
    wait_for(lambda: job_info(recovering, handle.id).status == "running")
    pause(stalled, db_url, handle.id)  # SIGSTOP: paused past its lease (a GC pause, a frozen VM...)
    try:
        recovering.start()
        wait_for(lambda: job_info(recovering, handle.id).worker_id == recovering.status()["worker_id"], 30,
                 what="this worker to take the job over")
        release.touch()
        finished = handle.wait(timeout=30)
        assert finished.result["pid"] == os.getpid()
        events_before = [e.id for e in recovering.events(handle.id)]
    finally:
        stalled.signal(signal.SIGCONT)
    # The stalled worker wakes up believing it still runs the job, which is now released.
    wait_for(lambda: "lease lost" in stalled.output() or "lost the job's lease" in stalled.output(), 30,
             what=f"the resumed worker to notice it lost the lease:\n{stalled.output()}")
    recovering.stop(timeout=20)
    after = job_info(recovering, handle.id)
    assert after == finished
    assert [e.id for e in recovering.events(handle.id)] == events_before
    assert stalled.alive()


def test_lease_option_sets_how_long_a_job_stays_ours(db_url: str, tmp_path: Path) -> None:
    queue = activejob.configure(db_url, poll_interval=0.05, lease=3)
    release = tmp_path / "release"
    try:
        queue.start()
        handle = wk.WkBlock.perform_later(release=str(release))
        wait_for(lambda: job_info(queue, handle.id).status == "running")
        info = job_info(queue, handle.id)
        assert timedelta(0) < info.lease_expires_at - clock.now() <= timedelta(seconds=3)
        # heartbeats keep extending it while the job runs
        first = info.lease_expires_at
        wait_for(lambda: job_info(queue, handle.id).lease_expires_at > first, 10)
        release.touch()
        assert handle.wait(timeout=20).status == "completed"
        assert job_info(queue, handle.id).attempts == 1
    finally:
        JobQueue.reset()
