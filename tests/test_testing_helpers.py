"""activejob.testing: recorded signals, the in-memory capture backend, and the queue helpers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest
from blinker import NamedSignal
from pydantic import BaseModel

import activejob
from activejob import BaseJob, JobArgumentsError, JobQueue, job, signals
from activejob.testing import (
    ALL_SIGNALS,
    aperform_enqueued_jobs,
    capture_enqueued,
    enqueued_jobs,
    perform_enqueued_jobs,
    recorded_signals,
)


class EmailArgs(BaseModel):
    to: str
    subject: str = "Hi"


sent: list[str] = []


@pytest.fixture(autouse=True)
def _clear_sent() -> Iterator[None]:
    sent.clear()
    yield
    sent.clear()


@job("testing_send_email", schema=EmailArgs, queue="mail")
class SendEmail(BaseJob[EmailArgs]):
    def perform(self, args: EmailArgs) -> dict[str, Any]:
        self.progress(0.5, message="rendering")
        sent.append(args.to)
        return {"sent": args.to}


class SignupArgs(BaseModel):
    email: str


@job("testing_signup", schema=SignupArgs)
class Signup(BaseJob[SignupArgs]):
    async def perform(self, args: SignupArgs) -> None:
        await SendEmail.aperform_later(to=args.email, subject="Welcome")


@pytest.fixture
def sqlite_queue(sqlite_url: str) -> Iterator[JobQueue]:
    q = activejob.configure(sqlite_url, poll_interval=0.05, progress_interval=0.05)
    yield q
    JobQueue.reset()


# -- capture_enqueued ------------------------------------------------------------------


def test_capture_keeps_jobs_in_memory_with_validated_args() -> None:
    with capture_enqueued() as jobs:
        handle = SendEmail.set(priority=3, owner="user-1").perform_later(to="a@example.com")
    assert len(jobs) == 1
    assert (jobs[0].name, jobs[0].args) == ("testing_send_email", {"to": "a@example.com", "subject": "Hi"})
    assert (jobs[0].queue, jobs[0].priority, jobs[0].owner) == ("mail", 3, "user-1")
    assert handle.id == jobs[0].id and handle.status == "pending"


def test_capture_refuses_invalid_args_like_the_database_backend() -> None:
    with capture_enqueued() as jobs, pytest.raises(JobArgumentsError, match="field 'to'"):
        SendEmail.perform_later(subject="no recipient")
    assert len(jobs) == 0


def test_capture_applies_max_args_bytes() -> None:
    with capture_enqueued(max_args_bytes=20) as jobs, pytest.raises(JobArgumentsError, match="over the limit"):
        SendEmail.perform_later(to="a-long-address@example.com")
    assert len(jobs) == 0


def test_perform_all_runs_captured_jobs_and_the_jobs_they_enqueue() -> None:
    with capture_enqueued() as jobs:
        Signup.perform_later(email="b@example.com")
        jobs.perform_all()
    assert [j.name for j in jobs] == ["testing_signup", "testing_send_email"]
    assert [j.status for j in jobs] == ["completed", "completed"]
    assert jobs.named(SendEmail)[0].result == {"sent": "b@example.com"}
    assert sent == ["b@example.com"]


def test_perform_all_propagates_a_jobs_error_and_marks_it_failed() -> None:
    @job("testing_broken")
    class Broken(BaseJob[activejob.NoArgs]):
        def perform(self, args: activejob.NoArgs) -> None:
            raise RuntimeError("boom")

    with capture_enqueued() as jobs:
        Broken.perform_later()
        with pytest.raises(RuntimeError, match="boom"):
            jobs.perform_all()
    assert jobs[0].status == "failed" and jobs[0].error == "RuntimeError: boom"


def test_capture_honours_unique_keys() -> None:
    with capture_enqueued() as jobs:
        first = SendEmail.set(unique_key="welcome-1").perform_later(to="o@example.com")
        again = SendEmail.set(unique_key="welcome-1").perform_later(to="o@example.com")
    assert len(jobs) == 1 and first == again


def test_capture_raise_mode_refuses_a_duplicate_and_keeps_nothing_of_the_call() -> None:
    with capture_enqueued() as jobs:
        held = SendEmail.set(unique_key="welcome-2").perform_later(to="r@example.com")
        with pytest.raises(activejob.DuplicateJobError, match="welcome-2") as refused:
            SendEmail.set(unique_key="welcome-2", unique_mode="raise").perform_all_later(
                [{"to": "first-of-the-call@example.com"}, {"to": "r@example.com"}])
    assert refused.value.existing.id == held.id
    assert [j.args["to"] for j in jobs] == ["r@example.com"]


def test_capture_replace_and_debounce_change_the_pending_holder() -> None:
    with capture_enqueued() as jobs:
        first = SendEmail.set(unique_key="digest").perform_later(to="a@example.com")
        second = SendEmail.set(unique_key="digest", unique_mode="replace").perform_later(to="b@example.com")
        third = SendEmail.set(unique_key="digest", unique_mode="debounce",
                              wait=timedelta(minutes=5)).perform_later(to="c@example.com")
    assert first == second == third and len(jobs) == 1
    assert jobs[0].args["to"] == "c@example.com"
    assert jobs[0].run_at > jobs[0].created_at + timedelta(minutes=4)


def test_capture_frees_a_unique_key_once_its_job_has_finished() -> None:
    with capture_enqueued() as jobs:
        SendEmail.set(unique_key="welcome-3").perform_later(to="t@example.com")
        jobs.perform_all()
        SendEmail.set(unique_key="welcome-3").perform_later(to="t@example.com")
    assert [j.status for j in jobs] == ["completed", "pending"]


def test_capture_cancel_through_the_handle() -> None:
    with capture_enqueued() as jobs:
        handle = SendEmail.perform_in(timedelta(hours=1), to="c@example.com")
        assert handle.cancel() == "cancelled"
        jobs.perform_all()
    assert sent == []


def test_capture_restores_the_previous_backend(sqlite_queue: JobQueue) -> None:
    with capture_enqueued():
        SendEmail.perform_later(to="captured@example.com")
    handle = SendEmail.perform_later(to="stored@example.com")
    info = sqlite_queue.get_job(handle.id)
    assert info is not None and info.args["to"] == "stored@example.com"


def test_capture_with_async_enqueue() -> None:
    async def main() -> None:
        with capture_enqueued() as jobs:
            await SendEmail.aperform_later(to="d@example.com")
            await aperform_enqueued_jobs()
        assert jobs[0].status == "completed"

    anyio.run(main)


def test_helpers_read_the_capture_inside_it() -> None:
    with capture_enqueued():
        SendEmail.perform_later(to="e@example.com")
        Signup.perform_later(email="f@example.com")
        assert [j.args for j in enqueued_jobs(SendEmail)] == [{"to": "e@example.com", "subject": "Hi"}]
        assert [j.name for j in enqueued_jobs(queue="default")] == ["testing_signup"]
        perform_enqueued_jobs()
        assert enqueued_jobs() == []
    assert sorted(sent) == ["e@example.com", "f@example.com"]


# -- recorded_signals ------------------------------------------------------------------


def test_recorded_signals_under_perform_now() -> None:
    with recorded_signals() as log:
        SendEmail.perform_now(to="g@example.com")
    assert log.names() == ["job_started", "job_progress", "job_completed"]
    assert log.payloads("job_completed")[0]["result"] == {"sent": "g@example.com"}


def test_recorded_signals_can_be_narrowed() -> None:
    with recorded_signals(signals.job_completed, "job_started") as log:
        SendEmail.perform_now(to="h@example.com")
    assert [name for name, _ in log] == ["job_started", "job_completed"]
    with recorded_signals(exclude=["job_progress", "job_status_changed"]) as log:
        SendEmail.perform_now(to="h@example.com")
    assert [name for name, _ in log] == ["job_started", "job_completed"]


def test_recorded_signals_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="not an activejob signal"), recorded_signals("job_finished"):
        pass


def test_recorded_signals_know_every_signal_the_signals_module_declares() -> None:
    declared = [value for value in vars(signals).values() if isinstance(value, NamedSignal)]
    assert list(ALL_SIGNALS) == declared
    assert declared[-1] is signals.job_checkpoint


def test_recorded_signals_stop_at_the_end_of_the_block() -> None:
    with recorded_signals() as log:
        pass
    SendEmail.perform_now(to="i@example.com")
    assert log == []


# -- the real queue ----------------------------------------------------------------------


def test_enqueued_jobs_reads_pending_jobs_oldest_first(sqlite_queue: JobQueue) -> None:
    SendEmail.perform_later(to="j@example.com")
    SendEmail.perform_in(timedelta(hours=1), to="k@example.com")
    Signup.perform_later(email="l@example.com")
    assert [j.args["to"] for j in enqueued_jobs(SendEmail)] == ["j@example.com", "k@example.com"]
    assert [j.name for j in enqueued_jobs(queue="default")] == ["testing_signup"]


def test_perform_enqueued_jobs_runs_the_queue_until_idle_with_signals_in_order(sqlite_queue: JobQueue) -> None:
    with recorded_signals() as log:
        handle = SendEmail.perform_later(to="m@example.com")
        perform_enqueued_jobs()
    assert handle.status == "completed"
    assert log.names(handle.id) == ["job_enqueued", "job_started", "job_progress", "job_completed"]
    assert log.names(handle.id, status_changed=True).count("job_status_changed") == 3
    scheduled = SendEmail.perform_in(timedelta(hours=1), to="n@example.com")
    perform_enqueued_jobs(sqlite_queue)
    assert [j.id for j in enqueued_jobs()] == [scheduled.id]
