"""`Job.set(timeout=..., max_retries=...)`: one job's own limits, kept with it and honoured by
the worker, by `inline()` and by `perform_now`."""

from __future__ import annotations

import time

import anyio
import pytest
from pydantic import BaseModel
from runner_support import job_info

from activejob import BaseJob, JobQueue, job
from activejob.testing import inline


class N(BaseModel):
    n: int = 0


def test_a_per_call_timeout_fails_a_sync_attempt_in_a_worker(queue: JobQueue) -> None:
    @job("pc_sync_slow", schema=N, max_retries=0)
    class Slow(BaseJob[N]):
        def perform(self, args: N) -> None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not self.cancelled:
                time.sleep(0.01)

    handle = Slow.set(timeout=0.2).perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.error) == ("failed", f"JobTimeout: pc_sync_slow #{handle.id} timed out after 0.2s")


def test_a_per_call_timeout_fails_an_async_attempt_in_a_worker(queue: JobQueue) -> None:
    @job("pc_async_slow", schema=N, max_retries=0)
    class Slow(BaseJob[N]):
        async def perform(self, args: N) -> None:
            await anyio.sleep(5)

    handle = Slow.set(timeout=0.2).perform_later()
    queue.run_until_idle()
    assert job_info(queue, handle.id).error == f"JobTimeout: pc_async_slow #{handle.id} timed out after 0.2s"


def test_a_per_call_timeout_longer_than_the_types_lets_the_job_finish(queue: JobQueue) -> None:
    @job("pc_patient", schema=N, timeout=0.05, max_retries=0)
    class Patient(BaseJob[N]):
        async def perform(self, args: N) -> str:
            await anyio.sleep(0.2)
            return "done"

    handle = Patient.set(timeout=5).perform_later()
    queue.run_until_idle()
    assert (job_info(queue, handle.id).status, job_info(queue, handle.id).result) == ("completed", "done")


def test_a_per_call_timeout_is_kept_in_the_jobs_meta(queue: JobQueue) -> None:
    @job("pc_meta", schema=N)
    class Quick(BaseJob[N]):
        def perform(self, args: N) -> None: ...

    handle = Quick.set(timeout=1.5).perform_later()
    assert job_info(queue, handle.id).meta == {"timeout": 1.5}


def test_per_call_max_retries_is_the_jobs_retry_budget(queue: JobQueue) -> None:
    @job("pc_flaky", schema=N, max_retries=5, backoff=0)
    class Flaky(BaseJob[N]):
        def perform(self, args: N) -> None:
            raise ValueError(f"attempt {self.attempt}")

    handle = Flaky.set(max_retries=1).perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.attempts, info.max_retries, info.error) == ("failed", 2, 1, "ValueError: attempt 2")


def test_per_call_max_retries_of_zero_fails_after_one_attempt(queue: JobQueue) -> None:
    @job("pc_once", schema=N, max_retries=5, backoff=0)
    class Once(BaseJob[N]):
        def perform(self, args: N) -> None:
            raise ValueError("no")

    handle = Once.set(max_retries=0).perform_later()
    queue.run_until_idle()
    assert (job_info(queue, handle.id).status, job_info(queue, handle.id).attempts) == ("failed", 1)


def test_inline_honours_a_per_call_timeout() -> None:
    @job("pc_inline_slow", schema=N, max_retries=0)
    class Slow(BaseJob[N]):
        async def perform(self, args: N) -> None:
            await anyio.sleep(5)

    with inline():
        handle = Slow.set(timeout=0.1).perform_later()
    assert handle.status == "failed"
    assert handle.info().error == "JobTimeout: pc_inline_slow timed out after 0.1s"


def test_inline_honours_per_call_max_retries() -> None:
    @job("pc_inline_flaky", schema=N, max_retries=5)
    class Flaky(BaseJob[N]):
        def perform(self, args: N) -> None:
            raise ValueError("no")

    with inline():
        handle = Flaky.set(max_retries=2).perform_later()
    assert (handle.status, handle.info().attempts) == ("failed", 3)


def test_perform_now_honours_a_per_call_timeout() -> None:
    @job("pc_now_slow", schema=N)
    class Slow(BaseJob[N]):
        async def perform(self, args: N) -> None:
            await anyio.sleep(5)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        Slow.set(timeout=0.1).perform_now()
    assert time.monotonic() - started < 2
