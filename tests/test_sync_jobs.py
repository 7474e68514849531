"""Sync jobs (`def perform`) run on threads of the worker's own: in parallel, one slot a
thread, with `finally:`, thread-local state and context variables behaving as in any
thread pool, and timeouts and cancellation kept by the worker."""

from __future__ import annotations

import contextvars
import logging
import threading
import time

import pytest
from pydantic import BaseModel
from runner_support import job_info, wait_for

import activejob
from activejob import BaseJob, JobQueue, NoArgs, job

seen_threads: set[int] = set()
side_effects: list[str] = []
local = threading.local()
marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


class Wait(BaseModel):
    seconds: float = 0.3


@job("sync_parallel", schema=Wait)
class Parallel(BaseJob[Wait]):
    def perform(self, args: Wait) -> None:
        seen_threads.add(threading.get_ident())
        time.sleep(args.seconds)


@job("sync_cleans_up", max_retries=0)
class CleansUp(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        try:
            while True:
                self.check_cancelled()  # raises JobCancelled once asked
                time.sleep(0.01)
        finally:
            side_effects.append(f"finally ran for #{self.job_id}")


@job("sync_context")
class Context(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> dict[str, str]:
        before = marker.get()
        marker.set(f"set by #{self.job_id}")
        local.jobs = [*getattr(local, "jobs", []), self.job_id]
        return {"before": before}


@job("sync_overstays", timeout=0.3, max_retries=0)
class Overstays(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        time.sleep(2)  # ignores its timeout: a thread cannot be interrupted
        side_effects.append("overstayer returned")


@job("sync_overstays_then_raises", timeout=0.2, max_retries=3, backoff=lambda _attempt: 60)
class OverstaysThenRaises(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        time.sleep(0.6)
        side_effects.append("overstayer raised")
        raise ValueError("too late to matter")


@job("sync_quick")
class Quick(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> str:
        return "quick"


def test_sync_jobs_run_in_parallel_on_threads_of_their_own(db_url: str) -> None:
    seen_threads.clear()
    queue = activejob.configure(db_url, concurrency=4, poll_interval=0.05)
    try:
        handles = Parallel.perform_all_later([{"seconds": 0.3}] * 4)
        started = time.monotonic()
        queue.run_until_idle()
        elapsed = time.monotonic() - started
        assert [job_info(queue, h.id).status for h in handles] == ["completed"] * 4
        assert len(seen_threads) == 4 and threading.get_ident() not in seen_threads
        assert elapsed < 1.0, "four 0.3 s jobs side by side, not one after another"
    finally:
        JobQueue.reset()


def test_a_cancelled_sync_job_runs_its_finally(queue: JobQueue) -> None:
    side_effects.clear()
    handle = CleansUp.perform_later()
    queue.start()
    try:
        wait_for(lambda: job_info(queue, handle.id).status == "running")
        queue.cancel(handle.id)
        wait_for(lambda: job_info(queue, handle.id).status == "cancelled")
        assert side_effects == [f"finally ran for #{handle.id}"]
    finally:
        queue.stop()


def test_context_variables_do_not_leak_between_sync_jobs(db_url: str) -> None:
    queue = activejob.configure(db_url, concurrency=1, poll_interval=0.05)
    try:
        handles = [Context.perform_later() for _ in range(3)]
        queue.run_until_idle()
        assert [job_info(queue, h.id).result for h in handles] == [{"before": "unset"}] * 3
    finally:
        JobQueue.reset()


def test_a_sync_job_past_its_timeout_fails_and_its_slot_is_taken_by_the_next(db_url: str) -> None:
    side_effects.clear()
    queue = activejob.configure(db_url, concurrency=1, poll_interval=0.05)
    try:
        slow = Overstays.perform_later()
        quick = Quick.perform_later()
        started = time.monotonic()
        queue.run_until_idle()
        assert time.monotonic() - started < 1.5, "the next job did not wait for the overstaying thread"
        info = job_info(queue, slow.id)
        assert (info.status, info.error.split(":")[0]) == ("failed", "JobTimeout")
        assert job_info(queue, quick.id).status == "completed"
        assert side_effects == []  # its thread still runs, and what it returns will be dropped
        wait_for(lambda: side_effects == ["overstayer returned"], 5)
        assert job_info(queue, slow.id).status == "failed"
    finally:
        JobQueue.reset()


def test_a_sync_job_that_ends_after_its_timeout_is_judged_once(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    side_effects.clear()
    queue = activejob.configure(db_url, concurrency=1, poll_interval=0.05)
    try:
        with caplog.at_level(logging.INFO, logger="activejob.worker"):
            handle = OverstaysThenRaises.perform_later()
            queue.start()
            wait_for(lambda: side_effects == ["overstayer raised"], 5)
            time.sleep(0.2)  # what its thread returned has reached the worker's loop
        queue.stop()
        about = [r.getMessage() for r in caplog.records if f"#{handle.id} " in r.getMessage()]
        assert len(about) == 1 and "JobTimeout" in about[0], about
        info = job_info(queue, handle.id)
        assert (info.status, info.error.split(":")[0], info.attempts) == ("pending", "JobTimeout", 1)
    finally:
        JobQueue.reset()
