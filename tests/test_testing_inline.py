"""activejob.testing.inline(): jobs run as they are enqueued, in the caller, with no database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from freezegun import freeze_time
from pydantic import BaseModel

import activejob
from activejob import BaseJob, Discard, JobArgumentsError, JobQueue, NoArgs, job
from activejob.testing import (
    InlineJobs,
    MemoryJobHandle,
    assert_performed,
    capture_enqueued,
    enqueued_jobs,
    inline,
    perform_enqueued_jobs,
    recorded_signals,
)


class MailArgs(BaseModel):
    to: str
    subject: str = "Hi"


sent: list[tuple[str, int]] = []
failures_left: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    sent.clear()
    failures_left.clear()
    yield
    sent.clear()
    failures_left.clear()


@job("inline_mail", schema=MailArgs, queue="mail", backoff=30, max_retries=2)
class Mail(BaseJob[MailArgs]):
    def perform(self, args: MailArgs) -> dict[str, Any]:
        self.progress(0.5, message="rendering")
        if failures_left.get(args.to, 0) > 0:
            failures_left[args.to] -= 1
            raise ConnectionError("smtp down")
        sent.append((args.to, self.attempt))
        return {"sent": args.to, "job_id": self.job_id}


class SignupArgs(BaseModel):
    email: str


@job("inline_signup", schema=SignupArgs)
class Signup(BaseJob[SignupArgs]):
    async def perform(self, args: SignupArgs) -> str:
        await Mail.aperform_later(to=args.email, subject="Welcome")
        return "ok"


@job("inline_fan_out")
class FanOut(BaseJob[NoArgs]):
    async def perform(self, args: NoArgs) -> list[Any]:
        if not self.children():
            for to in ("p@example.com", "q@example.com"):
                await Mail.set(parent=self).aperform_later(to=to)
            self.wait_for_children()
        return [child.result["sent"] for child in self.children()]


def test_perform_later_runs_the_job_at_once_and_returns_a_final_handle() -> None:
    with inline() as jobs:
        handle = Mail.perform_later(to="a@example.com")
    assert isinstance(jobs, InlineJobs) and isinstance(handle, MemoryJobHandle)
    assert handle.status == "completed"
    assert handle.result == {"sent": "a@example.com", "job_id": handle.id}
    assert (handle.error, handle.attempts, handle.name) == (None, 1, "inline_mail")
    assert handle.wait().status == "completed" and handle.info().args["subject"] == "Hi"
    assert sent == [("a@example.com", 1)]
    assert jobs[0].status == "completed"


def test_arguments_are_validated_before_anything_runs() -> None:
    with inline() as jobs, pytest.raises(JobArgumentsError, match="field 'to'"):
        Mail.perform_later(subject="nobody")
    assert len(jobs) == 0 and sent == []


def test_a_job_that_fails_then_succeeds_is_retried_per_its_policy() -> None:
    failures_left["b@example.com"] = 1
    with recorded_signals() as log, inline():
        handle = Mail.perform_later(to="b@example.com")
    assert (handle.status, handle.attempts, handle.error) == ("completed", 2, None)
    assert sent == [("b@example.com", 2)]
    assert log.names(handle.id) == ["job_enqueued", "job_started", "job_progress", "job_retrying",
                                    "job_started", "job_progress", "job_completed"]
    retrying = log.payloads("job_retrying")[0]
    assert retrying["error"] == "ConnectionError: smtp down" and retrying["attempt"] == 1


def test_a_job_that_fails_for_good_ends_failed_and_perform_later_returns() -> None:
    failures_left["c@example.com"] = 10
    with inline():
        handle = Mail.perform_later(to="c@example.com")
    assert (handle.status, handle.attempts) == ("failed", 3)  # max_retries=2: three attempts
    assert handle.error == "ConnectionError: smtp down"
    assert handle.info().traceback is not None and "smtp down" in handle.info().traceback


def test_raise_errors_raises_the_final_error_from_perform_later() -> None:
    @job("inline_discarded")
    class Discarded(BaseJob[NoArgs]):
        def perform(self, args: NoArgs) -> None:
            raise Discard("account closed")

    with inline(raise_errors=True) as jobs, pytest.raises(Discard, match="account closed"):
        Discarded.perform_later()
    assert jobs[0].status == "failed" and jobs[0].attempts == 1  # Discard is never retried


def test_children_enqueued_from_a_job_run_inline_and_the_parent_resumes() -> None:
    with inline() as jobs:
        handle = FanOut.perform_later()
    assert handle.status == "completed" and handle.result == ["p@example.com", "q@example.com"]
    assert [j.parent_id for j in jobs.named(Mail)] == [handle.id, handle.id]
    assert handle.attempts == 1  # waiting for children is not a spent attempt


def test_a_job_enqueued_from_an_async_job_runs_inline_too() -> None:
    with inline() as jobs:
        handle = Signup.perform_later(email="d@example.com")
    assert handle.result == "ok"
    assert [(j.name, j.status) for j in jobs] == [("inline_signup", "completed"), ("inline_mail", "completed")]
    assert sent == [("d@example.com", 1)]


def test_scheduled_jobs_run_at_once_by_default() -> None:
    with inline():
        handle = Mail.perform_in(timedelta(days=3), to="e@example.com")
        at = Mail.perform_at(datetime(2099, 1, 1, tzinfo=UTC), to="f@example.com")
    assert handle.status == at.status == "completed"


def test_scheduled_false_keeps_scheduled_jobs_until_their_time() -> None:
    with freeze_time("2030-01-01 12:00:00"), inline(scheduled=False):
        now = Mail.perform_later(to="g@example.com")
        later = Mail.perform_in(timedelta(hours=2), to="h@example.com")
        assert now.status == "completed" and later.status == "pending"
        assert [j.args["to"] for j in enqueued_jobs()] == ["h@example.com"]
        with pytest.raises(TimeoutError, match="perform_enqueued_jobs"):
            later.wait()
        perform_enqueued_jobs(until=datetime(2030, 1, 1, 13, tzinfo=UTC))
        assert later.status == "pending"
        perform_enqueued_jobs(until=datetime(2030, 1, 1, 15, tzinfo=UTC))
        assert later.status == "completed"
        assert activejob.clock.now() == datetime(2030, 1, 1, 15, tzinfo=UTC)


def test_scheduled_false_waits_out_retry_backoff_under_a_frozen_clock() -> None:
    failures_left["i@example.com"] = 1
    with freeze_time("2030-01-01 12:00:00"), inline(scheduled=False):
        handle = Mail.perform_later(to="i@example.com")
        assert (handle.status, handle.attempts) == ("pending", 1)  # retrying in 30 seconds
        perform_enqueued_jobs(until=datetime(2030, 1, 1, 12, 1, tzinfo=UTC))
        assert (handle.status, handle.attempts) == ("completed", 2)


def test_inline_as_a_decorator_of_a_sync_function() -> None:
    @inline()
    def run() -> str:
        return Mail.perform_later(to="j@example.com").status

    assert run() == "completed"
    assert run() == "completed"  # each call its own backend
    assert sent == [("j@example.com", 1), ("j@example.com", 1)]


def test_inline_as_a_decorator_of_an_async_function_with_aperform_later() -> None:
    @inline()
    async def run() -> Any:
        handle = await Signup.aperform_later(email="k@example.com")
        return handle.status, (await handle.await_finished()).result

    assert anyio.run(run) == ("completed", "ok")
    assert sent == [("k@example.com", 1)]


def test_inline_in_async_code_runs_async_and_sync_jobs() -> None:
    async def main() -> list[str]:
        async with inline():
            first = await FanOut.aperform_later()
            second = Mail.perform_later(to="l@example.com")  # sync enqueue from a running loop
            return [first.status, second.status]

    assert anyio.run(main) == ["completed", "completed"]


def test_inline_restores_the_previous_backend(sqlite_url: str) -> None:
    queue = activejob.configure(sqlite_url)
    try:
        with capture_enqueued() as captured:
            with inline():
                Mail.perform_later(to="m@example.com")
            Mail.perform_later(to="n@example.com")
        handle = Mail.perform_later(to="o@example.com")
        assert [j.args["to"] for j in captured] == ["n@example.com"]
        assert handle.status == "pending" and queue.get_job(handle.id) is not None
    finally:
        JobQueue.reset()


def test_assert_performed_sees_jobs_run_inline() -> None:
    failures_left["p@example.com"] = 10
    with inline():
        Mail.perform_later(to="q@example.com")
        Mail.perform_later(to="p@example.com")
        assert_performed(Mail, args={"to": "q@example.com"}, count=1)
        with pytest.raises(AssertionError, match=r"(?s)no inline_mail job .* was performed.*status=failed"):
            assert_performed(Mail, args={"to": "p@example.com"})


def test_a_unique_key_held_for_a_time_runs_the_job_once() -> None:
    with inline() as jobs:
        first = Mail.set(unique_key="welcome-1", unique_until=timedelta(hours=1)).perform_later(to="r@example.com")
        again = Mail.set(unique_key="welcome-1", unique_until=timedelta(hours=1)).perform_later(to="r@example.com")
    assert first == again and len(jobs) == 1 and sent == [("r@example.com", 1)]


def test_a_unique_key_is_free_again_once_the_inline_job_has_finished() -> None:
    # As with a database: unique_until="finished" (the default) lets go when the job ends,
    # and an inline job has ended by the time perform_later returns.
    with inline() as jobs:
        first = Mail.set(unique_key="welcome-2").perform_later(to="s@example.com")
        again = Mail.set(unique_key="welcome-2").perform_later(to="s@example.com")
    assert first != again and len(jobs) == 2


def test_a_job_can_cancel_a_running_job_and_it_stops_at_its_next_check() -> None:
    @job("inline_cancel_me")
    class CancelMe(BaseJob[NoArgs]):
        def perform(self, args: NoArgs) -> None:
            assert self.job_id is not None
            MemoryJobHandle(self.job_id, "inline_cancel_me", activejob.testing._captures[-1]).cancel()
            self.check_cancelled()

    with inline():
        handle = CancelMe.perform_later()
    assert handle.status == "cancelled"


def test_an_async_job_is_retried_on_the_callers_loop_and_its_timeout_applies() -> None:
    @job("inline_async_flaky", max_retries=1, backoff=0)
    class AsyncFlaky(BaseJob[NoArgs]):
        async def perform(self, args: NoArgs) -> int:
            if self.attempt == 1:
                raise ConnectionError("first time")
            return self.attempt

    @job("inline_slow", timeout=0.05, max_retries=0)
    class Slow(BaseJob[NoArgs]):
        async def perform(self, args: NoArgs) -> None:
            await anyio.sleep(5)

    async def main() -> list[Any]:
        with inline():
            flaky = await AsyncFlaky.aperform_later()
            slow = await Slow.aperform_later()
            return [flaky.status, flaky.result, slow.status, slow.error]

    assert anyio.run(main) == ["completed", 2, "failed", "JobTimeout: inline_slow timed out after 0.05s"]
