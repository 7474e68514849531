"""Graceful shutdown: SIGTERM lets in-flight jobs finish within the grace, requeues the
rest without counting the attempt; a second signal stops at once."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import jobs_for_workers as wk
import pytest
from runner_support import job_info, wait_for

import activejob
from activejob import JobQueue

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]



@pytest.fixture
def reader(db_url: str) -> Any:
    queue = activejob.configure(db_url, poll_interval=0.05)
    yield queue
    JobQueue.reset()


def _all(queue: JobQueue, ids: list[int], status: str) -> bool:
    return all(job_info(queue, i).status == status for i in ids)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_first_signal_lets_running_jobs_finish_and_claims_nothing_more(reader: JobQueue, db_url: str,
                                                                       workers: Any, signum: int) -> None:
    running = [wk.WkSleep.perform_later(seconds=1.5) for _ in range(2)]
    waiting = wk.WkSleep.perform_later(seconds=0)
    worker = workers.start(db_url, "--concurrency", "2", "--shutdown-grace", "30")
    wait_for(lambda: _all(reader, [h.id for h in running], "running"))
    worker.signal(signum)
    assert worker.wait(30) == 0
    for h in running:
        info = job_info(reader, h.id)
        assert (info.status, info.result["pid"], info.attempts) == ("completed", worker.pid, 1)
    assert job_info(reader, waiting.id).status == "pending"
    assert reader.workers() == []  # it unregistered on the way out


@pytest.mark.parametrize("name", ["wk_block", "wk_block_sync"])
def test_jobs_unfinished_after_the_grace_go_back_to_pending_without_an_attempt(
        reader: JobQueue, db_url: str, workers: Any, tmp_path: Path, name: str) -> None:
    cls = activejob.registry[name]
    handles = [cls.perform_later(release=str(tmp_path / "never")) for _ in range(2)]
    ids = [h.id for h in handles]
    worker = workers.start(db_url, "--concurrency", "2", "--shutdown-grace", "0.5")
    wait_for(lambda: _all(reader, ids, "running"))
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert time.monotonic() - started < 15
    for job_id in ids:
        info = job_info(reader, job_id)
        assert (info.status, info.attempts, info.worker_id, info.error) == ("pending", 0, None, None)
        assert [e.type for e in reader.events(job_id)] == ["enqueued", "started", "requeued"]
        assert reader.events(job_id)[-1].data["reason"] == "shutdown"
    # another worker picks them up again as first attempts
    (tmp_path / "never").touch()
    reader.run_until_idle()
    assert [job_info(reader, i).attempts for i in ids] == [1, 1]
    assert _all(reader, ids, "completed")


def test_a_second_signal_stops_at_once(reader: JobQueue, db_url: str, workers: Any, tmp_path: Path) -> None:
    handle = wk.WkBlock.perform_later(release=str(tmp_path / "never"))
    worker = workers.start(db_url, "--shutdown-grace", "60")
    wait_for(lambda: job_info(reader, handle.id).status == "running")
    worker.signal(signal.SIGTERM)
    wait_for(lambda: "finishing running jobs" in worker.output(), what="the first signal to be handled")
    assert worker.alive()  # waiting out its 60 s grace
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert time.monotonic() - started < 15
    info = job_info(reader, handle.id)
    assert (info.status, info.attempts) == ("pending", 0)


def test_in_process_stop_requeues_what_outlasts_the_grace(reader: JobQueue, tmp_path: Path) -> None:
    finishes = wk.WkSleep.perform_later(seconds=0.3)
    outlasts = wk.WkBlock.perform_later(release=str(tmp_path / "never"))
    reader.start()
    wait_for(lambda: _all(reader, [finishes.id, outlasts.id], "running"))
    reader.stop(grace=2, timeout=30)
    assert reader.state == "stopped"
    assert job_info(reader, finishes.id).status == "completed"
    info = job_info(reader, outlasts.id)
    assert (info.status, info.attempts) == ("pending", 0)
