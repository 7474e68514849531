"""Cancelling pending and running jobs, in this process and from others."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import jobs_for_workers as wk
import pytest
from pydantic import BaseModel
from runner_support import ROOT, job_info, wait_for

import activejob
from activejob import BaseJob, JobQueue, job


class N(BaseModel):
    n: int = 0



def _status(queue: JobQueue, job_id: int) -> str:
    return str(job_info(queue, job_id).status)


def _ends_cancelled(queue: JobQueue, job_id: int) -> None:
    info = job_info(queue, job_id)
    assert info.status == "cancelled", info
    assert info.error is None
    types = [e.type for e in queue.events(job_id)]
    assert types[-1] == "cancelled" and "failed" not in types and "retrying" not in types, types


def test_cancel_a_pending_job_at_once(queue: JobQueue) -> None:
    ran: list[int] = []

    @job("rt_never_runs", schema=N)
    class NeverRuns(BaseJob[N]):
        async def perform(self, args: N) -> None:
            ran.append(1)

    handle = NeverRuns.perform_later()
    assert handle.cancel() == "cancelled"
    queue.run_until_idle()
    assert ran == []
    _ends_cancelled(queue, handle.id)
    assert [e.type for e in queue.events(handle.id)] == ["enqueued", "cancelled"]


def test_cancel_a_scheduled_job(queue: JobQueue) -> None:
    handle = wk.WkQuick.perform_in(3600)
    assert queue.cancel(handle.id) == "cancelled"
    _ends_cancelled(queue, handle.id)


def test_cancel_a_finished_job_changes_nothing(queue: JobQueue) -> None:
    handle = wk.WkQuick.perform_later()
    queue.run_until_idle()
    assert handle.cancel() == "completed"
    assert handle.status == "completed"


def test_cancel_a_running_async_job_in_process_at_once(queue: JobQueue, tmp_path: Path) -> None:
    queue.start()
    try:
        handle = wk.WkBlock.perform_later(release=str(tmp_path / "never"))
        wait_for(lambda: _status(queue, handle.id) == "running")
        started = time.monotonic()
        assert handle.cancel() == "running"
        handle.wait(timeout=20)
        assert time.monotonic() - started < 5  # no heartbeat needed in-process
    finally:
        queue.stop(timeout=20)
    _ends_cancelled(queue, handle.id)
    info = queue.get_job(handle.id)
    assert info is not None and info.attempts == 1


def test_a_sync_job_sees_cancelled_and_check_cancelled(queue: JobQueue) -> None:
    seen: dict[str, Any] = {}

    @job("rt_polite_sync", schema=N)
    class Polite(BaseJob[N]):
        def perform(self, args: N) -> None:
            deadline = time.monotonic() + 20
            while not self.cancelled and time.monotonic() < deadline:
                time.sleep(0.01)
            seen["cancelled"] = self.cancelled
            self.check_cancelled()
            seen["after_check"] = True  # never reached

    queue.start()
    try:
        handle = Polite.perform_later()
        wait_for(lambda: _status(queue, handle.id) == "running")
        handle.cancel()
        handle.wait(timeout=20)
    finally:
        queue.stop(timeout=20)
    assert seen == {"cancelled": True}
    _ends_cancelled(queue, handle.id)


def test_a_sync_job_that_ignores_cancel_still_ends_cancelled(db_url: str) -> None:
    queue = activejob.configure(db_url, poll_interval=0.05, cancel_grace=0.5)
    done = threading.Event()

    @job("rt_stubborn_sync", schema=N)
    class Stubborn(BaseJob[N]):
        def perform(self, args: N) -> str:
            done.wait(30)  # never looks at self.cancelled
            return "finished anyway"

    try:
        queue.start()
        handle = Stubborn.perform_later()
        wait_for(lambda: _status(queue, handle.id) == "running")
        started = time.monotonic()
        handle.cancel()
        handle.wait(timeout=20)
        elapsed = time.monotonic() - started
        assert elapsed >= 0.4  # it had its cancel_grace to stop by itself
        _ends_cancelled(queue, handle.id)
        assert queue.get_job(handle.id).result is None  # type: ignore[union-attr]
    finally:
        done.set()
        JobQueue.reset()


def test_cancel_from_another_queue_object_is_seen_within_a_heartbeat(queue: JobQueue, db_url: str,
                                                                     tmp_path: Path) -> None:
    queue.start()
    other = JobQueue(db_url)  # e.g. a web process: it runs no jobs
    try:
        handle = wk.WkBlock.perform_later(release=str(tmp_path / "never"))
        wait_for(lambda: _status(queue, handle.id) == "running")
        started = time.monotonic()
        assert other.cancel(handle.id) == "running"
        wait_for(lambda: _status(other, handle.id) == "cancelled")
        assert time.monotonic() - started < 10  # heartbeat is 1 s; generous for a busy machine
    finally:
        other.close()
        queue.stop(timeout=20)
    _ends_cancelled(queue, handle.id)


def test_a_cancel_its_worker_had_not_heard_before_stopping_is_kept(queue: JobQueue, db_url: str,
                                                                  tmp_path: Path) -> None:
    queue.start()
    other = JobQueue(db_url)  # another process's cancel: this worker hears it at its next heartbeat
    try:
        handle = wk.WkBlock.perform_later(release=str(tmp_path / "never"))
        wait_for(lambda: _status(queue, handle.id) == "running")
        assert other.cancel(handle.id) == "running"
    finally:
        other.close()
        queue.stop(grace=0, timeout=20)  # at once: the job is interrupted before the worker hears
    info = job_info(queue, handle.id)
    assert (info.status, info.attempts) == ("cancelled", 1)
    assert [e.type for e in queue.events(handle.id)][-1] == "cancelled"


@job("rt_fails_when_released", schema=N, max_retries=3, backoff=0)
class FailsWhenReleased(BaseJob[N]):
    async def perform(self, args: N) -> None:
        while not Path(RELEASE).exists():
            await anyio.sleep(0.01)
        raise ValueError("failed after the cancel was asked")


RELEASE = ""


def test_a_job_asked_to_cancel_that_fails_is_cancelled_not_retried(queue: JobQueue, db_url: str,
                                                                  tmp_path: Path) -> None:
    global RELEASE
    RELEASE = str(tmp_path / "release")
    queue.start()
    other = JobQueue(db_url)
    try:
        handle = FailsWhenReleased.perform_later()
        wait_for(lambda: _status(queue, handle.id) == "running")
        assert other.cancel(handle.id) == "running"
        Path(RELEASE).touch()  # it fails before its worker hears of the cancel
        wait_for(lambda: _status(queue, handle.id) not in ("running", "pending"))
    finally:
        other.close()
        queue.stop(timeout=20)
    info = job_info(queue, handle.id)
    assert (info.status, info.attempts, info.error) == ("cancelled", 1, "ValueError: failed after the cancel was asked")
    assert [e.type for e in queue.events(handle.id)] == ["enqueued", "started", "cancelled"]


def test_cancel_with_the_cli_reaches_an_in_process_worker(queue: JobQueue, db_url: str, tmp_path: Path) -> None:
    queue.start()
    try:
        handle = wk.WkBlockSync.perform_later(release=str(tmp_path / "never"))
        wait_for(lambda: _status(queue, handle.id) == "running")
        out = subprocess.run([sys.executable, "-m", "activejob", "cancel", "--database-url", db_url, str(handle.id)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "running"
        handle.wait(timeout=20)
    finally:
        queue.stop(timeout=20)
    _ends_cancelled(queue, handle.id)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["wk_block", "wk_block_sync"])
def test_cancel_a_job_running_in_a_worker_subprocess(db_url: str, workers: Any, tmp_path: Path, name: str) -> None:
    queue = activejob.configure(db_url)
    try:
        cls = activejob.registry[name]
        handle = cls.perform_later(release=str(tmp_path / "never"))
        worker = workers.start(db_url)
        wait_for(lambda: _status(queue, handle.id) == "running")
        assert handle.cancel() == "running"
        handle.wait(timeout=20)
        _ends_cancelled(queue, handle.id)
        assert worker.alive()
        # the worker goes on with other jobs
        assert wk.WkQuick.perform_later(n=7).wait(timeout=20).result["n"] == 7
    finally:
        JobQueue.reset()


def test_cancel_during_an_async_perform_runs_its_cleanup(queue: JobQueue) -> None:
    cleaned = threading.Event()

    @job("rt_cleanup", schema=N)
    class Cleanup(BaseJob[N]):
        async def perform(self, args: N) -> None:
            try:
                await anyio.sleep(30)
            finally:
                cleaned.set()

    queue.start()
    try:
        handle = Cleanup.perform_later()
        wait_for(lambda: _status(queue, handle.id) == "running")
        handle.cancel()
        handle.wait(timeout=20)
    finally:
        queue.stop(timeout=20)
    assert cleaned.is_set()
    _ends_cancelled(queue, handle.id)
