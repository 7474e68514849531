"""Timeouts, retries and backoff, with freezegun moving the wall clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from freezegun import freeze_time
from pydantic import BaseModel
from runner_support import job_info

from activejob import BaseJob, Discard, JobQueue, Retry, job

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class N(BaseModel):
    n: int = 0


def _failing(name: str, *, error: type[Exception] = ValueError, **options: Any) -> type[BaseJob[N]]:
    @job(name, schema=N, **options)
    class Failing(BaseJob[N]):
        async def perform(self, args: N) -> None:
            raise error(f"attempt {self.attempt} broke")

    return Failing


# -- timeouts -----------------------------------------------------------------------------


def test_timeout_fails_the_attempt_with_a_clear_error(queue: JobQueue) -> None:
    @job("rt_slow", schema=N, timeout=0.2, max_retries=0)
    class Slow(BaseJob[N]):
        async def perform(self, args: N) -> None:
            await anyio.sleep(30)

    handle = Slow.perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert info.status == "failed"
    assert info.error == f"JobTimeout: rt_slow #{handle.id} timed out after 0.2s"


def test_timeout_is_retried_per_policy(queue: JobQueue) -> None:
    @job("rt_slow_retried", schema=N, timeout=0.2, max_retries=2, backoff=0)
    class Slow(BaseJob[N]):
        async def perform(self, args: N) -> int:
            if self.attempt < 3:
                await anyio.sleep(30)
            return self.attempt

    handle = Slow.perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.result, info.attempts) == ("completed", 3, 3)
    retrying = [e for e in queue.events(handle.id) if e.type == "retrying"]
    assert [e.data["error"] for e in retrying] == [f"JobTimeout: rt_slow_retried #{handle.id} timed out after 0.2s"] * 2


def test_timeout_of_a_sync_job(queue: JobQueue) -> None:
    import time

    @job("rt_slow_sync", schema=N, timeout=0.2, max_retries=0)
    class SlowSync(BaseJob[N]):
        def perform(self, args: N) -> None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not self.cancelled:
                time.sleep(0.01)

    handle = SlowSync.perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert info.status == "failed"
    assert "timed out after 0.2s" in info.error


# -- attempts and the event log -----------------------------------------------------------


def test_max_retries_3_means_four_attempts_each_logged_with_its_traceback(queue: JobQueue) -> None:
    failing = _failing("rt_always_fails", max_retries=3, backoff=0)
    handle = failing.perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert info.status == "failed"
    assert info.attempts == 4
    events = queue.events(handle.id)
    assert [e.type for e in events] == ["enqueued"] + ["started", "retrying"] * 3 + ["started", "failed"]
    failures = [e for e in events if e.type in ("retrying", "failed")]
    assert [e.data["error"] for e in failures] == [f"ValueError: attempt {i} broke" for i in (1, 2, 3, 4)]
    assert [e.attempt for e in failures] == [1, 2, 3, 4]
    for e in failures:
        assert "Traceback (most recent call last)" in e.data["traceback"], e
        assert "raise error(" in e.data["traceback"]
    # the job keeps the last
    assert info.error == "ValueError: attempt 4 broke"
    assert "ValueError: attempt 4 broke" in info.traceback


def test_max_retries_0_means_one_attempt(queue: JobQueue) -> None:
    handle = _failing("rt_once", max_retries=0).perform_later()
    queue.run_until_idle()
    assert (job_info(queue, handle.id).status, job_info(queue, handle.id).attempts) == ("failed", 1)


def test_retry_on_retries_only_the_listed_errors(queue: JobQueue) -> None:
    listed = _failing("rt_retry_on_listed", error=ConnectionError, retry_on=[ConnectionError],
                      max_retries=2, backoff=0)
    other = _failing("rt_retry_on_other", error=TypeError, retry_on=[ConnectionError], max_retries=2, backoff=0)
    a, b = listed.perform_later(), other.perform_later()
    queue.run_until_idle()
    assert (job_info(queue, a.id).status, job_info(queue, a.id).attempts) == ("failed", 3)
    assert (job_info(queue, b.id).status, job_info(queue, b.id).attempts) == ("failed", 1)


def test_discard_on_fails_at_once(queue: JobQueue) -> None:
    handle = _failing("rt_discard_on", error=KeyError, discard_on=[KeyError], max_retries=5, backoff=0).perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.attempts) == ("failed", 1)
    assert queue.events(handle.id)[-1].data["reason"] == "discard_on"


def test_raise_discard_fails_at_once_with_its_message(queue: JobQueue) -> None:
    @job("rt_discards", schema=N, max_retries=5)
    class Discards(BaseJob[N]):
        async def perform(self, args: N) -> None:
            raise Discard("the account was closed")

    handle = Discards.perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.attempts) == ("failed", 1)
    assert info.error == "Discard: the account was closed"


# -- time: freezegun ----------------------------------------------------------------------


def _run_at(queue: JobQueue, job_id: int) -> datetime:
    value: datetime = job_info(queue, job_id).run_at
    return value


def test_a_retry_waits_for_its_backoff(queue: JobQueue) -> None:
    failing = _failing("rt_backoff_wait", max_retries=2, backoff="fixed", backoff_base=60)
    with freeze_time(T0) as frozen:
        handle = failing.perform_later()
        queue.run_until_idle()
        info = job_info(queue, handle.id)
        assert (info.status, info.attempts) == ("pending", 1)
        assert info.run_at == T0 + timedelta(seconds=60)
        frozen.tick(59)
        queue.run_until_idle()
        assert job_info(queue, handle.id).attempts == 1  # not before its time
        frozen.tick(1)
        queue.run_until_idle()
        info = job_info(queue, handle.id)
        assert (info.status, info.attempts) == ("pending", 2)
        assert info.run_at == T0 + timedelta(seconds=120)


@pytest.mark.parametrize(
    ("backoff", "options", "delays"),
    [
        ("exponential", {"backoff_base": 10, "backoff_cap": 25}, [10, 20, 25]),
        ("linear", {"backoff_base": 7}, [7, 14, 21]),
        ("fixed", {"backoff_base": 30}, [30, 30, 30]),
        (lambda attempt: attempt * 100, {}, [100, 200, 300]),
        (45, {}, [45, 45, 45]),
    ],
    ids=["exponential-capped", "linear", "fixed", "callable", "seconds"],
)
def test_backoff_policies_set_the_next_run(queue: JobQueue, backoff: Any, options: dict[str, Any],
                                           delays: list[float]) -> None:
    failing = _failing("rt_backoff", max_retries=3, backoff=backoff, **options)
    with freeze_time(T0) as frozen:
        handle = failing.perform_later()
        seen = []
        for _ in delays:
            queue.run_until_idle()
            run_at = _run_at(queue, handle.id)
            seen.append((run_at - frozen().replace(tzinfo=UTC)).total_seconds())
            frozen.move_to(run_at)
        queue.run_until_idle()
    assert seen == delays
    info = job_info(queue, handle.id)
    assert (info.status, info.attempts) == ("failed", 4)


def test_backoff_jitter_adds_up_to_its_fraction(queue: JobQueue) -> None:
    failing = _failing("rt_jitter", max_retries=1, backoff="fixed", backoff_base=100, backoff_jitter=0.5)
    with freeze_time(T0):
        handles = failing.perform_all_later([{"n": i} for i in range(8)])
        queue.run_until_idle()
        delays = [(_run_at(queue, h.id) - T0).total_seconds() for h in handles]
    assert all(100 <= d <= 150 for d in delays), delays
    assert len(set(delays)) > 1  # spread out, not all at once


def test_raise_retry_in_sets_its_own_delay(queue: JobQueue) -> None:
    @job("rt_retry_in", schema=N, max_retries=3, backoff="fixed", backoff_base=5)
    class RetryIn(BaseJob[N]):
        async def perform(self, args: N) -> int:
            if self.attempt == 1:
                raise Retry("not yet", in_=timedelta(minutes=10))
            return self.attempt

    with freeze_time(T0) as frozen:
        handle = RetryIn.perform_later()
        queue.run_until_idle()
        info = job_info(queue, handle.id)
        assert (info.status, info.run_at) == ("pending", T0 + timedelta(minutes=10))
        assert info.error == "Retry: not yet"
        frozen.tick(timedelta(minutes=9))
        queue.run_until_idle()
        assert job_info(queue, handle.id).status == "pending"
        frozen.tick(timedelta(minutes=1))
        queue.run_until_idle()
    assert job_info(queue, handle.id).result == 2


def test_raise_retry_at_a_time(queue: JobQueue) -> None:
    at = T0 + timedelta(hours=3)

    @job("rt_retry_at", schema=N, max_retries=3)
    class RetryAt(BaseJob[N]):
        async def perform(self, args: N) -> str:
            if self.attempt == 1:
                raise Retry(at=at)
            return "done"

    with freeze_time(T0) as frozen:
        handle = RetryAt.perform_later()
        queue.run_until_idle()
        assert _run_at(queue, handle.id) == at
        frozen.move_to(at)
        queue.run_until_idle()
    assert job_info(queue, handle.id).result == "done"


def test_raise_retry_counts_an_attempt_and_fails_when_spent(queue: JobQueue) -> None:
    @job("rt_retry_forever", schema=N, max_retries=2)
    class RetryForever(BaseJob[N]):
        async def perform(self, args: N) -> None:
            raise Retry(in_=0)

    handle = RetryForever.perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.attempts) == ("failed", 3)


def test_perform_at_tomorrow_runs_tomorrow_not_before(queue: JobQueue) -> None:
    ran: list[datetime] = []

    @job("rt_tomorrow", schema=N)
    class Tomorrow(BaseJob[N]):
        async def perform(self, args: N) -> None:
            ran.append(datetime.now(UTC))

    tomorrow = T0 + timedelta(days=1)
    with freeze_time(T0) as frozen:
        handle = Tomorrow.perform_at(tomorrow)
        queue.run_until_idle()
        frozen.move_to(tomorrow - timedelta(minutes=1))
        queue.run_until_idle()
        assert ran == []
        assert job_info(queue, handle.id).status == "pending"
        frozen.move_to(tomorrow)
        queue.run_until_idle()
    assert job_info(queue, handle.id).status == "completed"
    assert ran == [tomorrow]


def test_a_started_worker_runs_a_retry_once_time_moves(queue: JobQueue) -> None:
    """The in-process worker (not run_until_idle) under frozen time: polling picks up the retry."""
    attempts: list[int] = []

    @job("rt_frozen_worker", schema=N, max_retries=1, backoff="fixed", backoff_base=300)
    class Flaky(BaseJob[N]):
        async def perform(self, args: N) -> None:
            attempts.append(self.attempt)
            if self.attempt == 1:
                raise ValueError("first")

    from runner_support import wait_for

    with freeze_time(T0) as frozen:
        queue.start()
        try:
            handle = Flaky.perform_later()

            def failure_recorded() -> bool:
                # Pending again after one attempt. (Pending and `attempts == [1]` read one
                # after the other could see it pending before its claim, and move time
                # before its failure and retry time are written.)
                info = job_info(queue, handle.id)
                return (info.status, info.attempts) == ("pending", 1)

            wait_for(failure_recorded)
            frozen.tick(301)
            handle.wait(timeout=20)
        finally:
            from activejob import clock

            stopping = clock.monotonic()  # real time, not frozen
            queue.stop(timeout=20)
            # the PostgreSQL listener must not hang on a frozen clock (it used to take 5 s and leak)
            assert clock.monotonic() - stopping < 3
    assert attempts == [1, 2]
    assert job_info(queue, handle.id).status == "completed"


Factory = Callable[..., type[BaseJob[N]]]
