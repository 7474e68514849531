"""assert_enqueued / assert_not_enqueued / assert_performed, on a capture and on a real queue;
perform_enqueued_jobs(until=...) moving a frozen clock through schedules and backoff."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import anyio
import pytest
from freezegun import freeze_time
from pydantic import BaseModel

import activejob
from activejob import BaseJob, JobQueue, job
from activejob.testing import (
    assert_enqueued,
    assert_not_enqueued,
    assert_performed,
    capture_enqueued,
    perform_enqueued_jobs,
)


class ReportArgs(BaseModel):
    account: int
    day: date
    fmt: str = "pdf"


attempts: list[int] = []


@job("assert_report", schema=ReportArgs, queue="reports")
class Report(BaseJob[ReportArgs]):
    def perform(self, args: ReportArgs) -> str:
        return f"{args.account}-{args.day}"


@job("assert_flaky", schema=ReportArgs, max_retries=3, backoff=60)
class Flaky(BaseJob[ReportArgs]):
    def perform(self, args: ReportArgs) -> int:
        attempts.append(self.attempt)
        if self.attempt < 3:
            raise ConnectionError("try later")
        return self.attempt


@pytest.fixture
def sqlite_queue(sqlite_url: str) -> Iterator[JobQueue]:
    q = activejob.configure(sqlite_url, poll_interval=0.05, progress_interval=0.05)
    attempts.clear()
    yield q
    JobQueue.reset()


# -- inside capture_enqueued --------------------------------------------------------------


def test_assert_enqueued_matches_job_args_subset_queue_and_count() -> None:
    with capture_enqueued():
        Report.perform_later(account=1, day=date(2030, 1, 2))
        Report.perform_later(account=2, day=date(2030, 1, 2), fmt="csv")
        found = assert_enqueued(Report, args={"account": 1})
        assert [j.args["fmt"] for j in found] == ["pdf"]
        assert_enqueued("assert_report", args={"day": date(2030, 1, 2)}, count=2)  # a date matches its ISO form
        assert_enqueued(Report, queue="reports", count=2)
        assert_enqueued(Report, args=lambda a: a["fmt"] == "csv")
        assert_enqueued(Report, args=ReportArgs(account=2, day=date(2030, 1, 2), fmt="csv"))
        assert_enqueued(count=2)
        assert_not_enqueued(Report, args={"account": 3})
        assert_not_enqueued(Flaky)


def test_assert_enqueued_failure_lists_what_was_enqueued_instead() -> None:
    with capture_enqueued():
        Report.perform_later(account=1, day=date(2030, 1, 2))
        with pytest.raises(AssertionError) as failure:
            assert_enqueued(Report, args={"account": 9}, queue="reports")
    message = str(failure.value)
    assert message.startswith("no assert_report job with args {'account': 9} on queue 'reports' was enqueued")
    assert "enqueued instead (1):" in message
    assert "assert_report#1 args={'account': 1, 'day': '2030-01-02', 'fmt': 'pdf'} queue='reports'" in message


def test_assert_enqueued_with_nothing_enqueued_says_so() -> None:
    with capture_enqueued(), pytest.raises(AssertionError, match="enqueued instead: none"):
        assert_enqueued(Report)


def test_assert_enqueued_count_mismatch_lists_the_matches() -> None:
    with capture_enqueued():
        Report.perform_later(account=1, day=date(2030, 1, 2))
        expected = r"(?s)expected 2 enqueued assert_report jobs, found 1.*matching \(1\)"
        with pytest.raises(AssertionError, match=expected):
            assert_enqueued(Report, count=2)


def test_assert_not_enqueued_lists_the_offenders() -> None:
    with capture_enqueued():
        Report.perform_later(account=1, day=date(2030, 1, 2))
        with pytest.raises(AssertionError, match=r"(?s)expected no assert_report job to be enqueued.*found \(1\)"):
            assert_not_enqueued(Report)


def test_assert_enqueued_at_matches_run_at_within_a_second() -> None:
    with freeze_time("2030-01-01 09:00:00"), capture_enqueued():
        Report.perform_in(timedelta(hours=1), account=1, day=date(2030, 1, 1))
        assert_enqueued(Report, at=datetime(2030, 1, 1, 10))  # naive is UTC
        assert_not_enqueued(Report, at=datetime(2030, 1, 1, 9, tzinfo=UTC))


def test_assert_performed_in_a_capture_counts_completed_jobs() -> None:
    with capture_enqueued() as jobs:
        Report.perform_later(account=1, day=date(2030, 1, 2))
        with pytest.raises(AssertionError, match=r"(?s)was performed.*status=pending"):
            assert_performed(Report)
        jobs.perform_all()
        assert_performed(Report, args={"account": 1}, count=1)


def test_args_must_be_a_dict_a_model_or_a_predicate() -> None:
    with capture_enqueued(), pytest.raises(TypeError, match="args="):
        assert_enqueued(Report, args=42)  # type: ignore[arg-type]


# -- against the real queue ---------------------------------------------------------------


def test_assertions_read_the_real_queue(sqlite_queue: JobQueue) -> None:
    Report.perform_later(account=5, day=date(2030, 3, 4))
    assert_enqueued(Report, args={"account": 5, "day": "2030-03-04"}, queue="reports", count=1)
    with pytest.raises(AssertionError, match="no assert_report job was performed"):
        assert_performed(Report)
    perform_enqueued_jobs()
    assert_performed(Report, args={"account": 5})
    assert_enqueued(Report)  # enqueued, whatever its status now
    assert_enqueued(Report, job_queue=sqlite_queue)


def test_assertions_inside_a_capture_can_still_read_a_queue(sqlite_queue: JobQueue) -> None:
    Report.perform_later(account=6, day=date(2030, 3, 4))
    with capture_enqueued():
        assert_not_enqueued(Report)
        assert_enqueued(Report, args={"account": 6}, job_queue=sqlite_queue)


# -- perform_enqueued_jobs(until=...) ------------------------------------------------------


def test_perform_enqueued_jobs_until_moves_the_clock_through_backoff(sqlite_queue: JobQueue) -> None:
    with freeze_time("2030-01-01 12:00:00"):
        handle = Flaky.perform_later(account=1, day=date(2030, 1, 1))
        perform_enqueued_jobs()
        assert (handle.status, attempts) == ("pending", [1])  # retrying in 60 seconds
        perform_enqueued_jobs(until=datetime(2030, 1, 1, 12, 10))
        assert (handle.status, handle.result, attempts) == ("completed", 3, [1, 2, 3])
        assert activejob.clock.now() == datetime(2030, 1, 1, 12, 10, tzinfo=UTC)
    assert_performed(Flaky, count=1)


def test_perform_enqueued_jobs_until_runs_scheduled_jobs_in_order_up_to_until(sqlite_queue: JobQueue) -> None:
    with freeze_time("2030-01-01 00:00:00"):
        for days in (3, 1, 10):
            Report.perform_in(timedelta(days=days), account=days, day=date(2030, 1, 1))
        perform_enqueued_jobs(until=datetime(2030, 1, 5, tzinfo=UTC))
        done = sqlite_queue.list_jobs(status="completed", order="oldest")
        assert sorted(j.args["account"] for j in done) == [1, 3]
        assert [j.args["account"] for j in sqlite_queue.list_jobs(status="pending")] == [10]


def test_perform_enqueued_jobs_until_in_a_capture_runs_due_jobs_as_time_moves() -> None:
    with freeze_time("2030-01-01 00:00:00"), capture_enqueued() as jobs:
        Report.perform_in(timedelta(hours=5), account=1, day=date(2030, 1, 1))
        Report.perform_in(timedelta(hours=50), account=2, day=date(2030, 1, 1))
        perform_enqueued_jobs(until=datetime(2030, 1, 1, 6))
        assert [j.status for j in jobs] == ["completed", "pending"]


def test_perform_enqueued_jobs_until_needs_a_frozen_clock(sqlite_queue: JobQueue) -> None:
    with pytest.raises(RuntimeError, match="freeze_time"):
        perform_enqueued_jobs(until=activejob.clock.now() + timedelta(hours=1))


def test_aperform_enqueued_jobs_until_in_async_code() -> None:
    from activejob.testing import aperform_enqueued_jobs

    async def main() -> list[str]:
        with capture_enqueued() as jobs:
            Report.perform_in(timedelta(minutes=5), account=1, day=date(2030, 1, 1))
            await aperform_enqueued_jobs(until=datetime(2030, 1, 1, 0, 10))
            return [j.status for j in jobs]

    with freeze_time("2030-01-01 00:00:00", real_asyncio=True):
        assert anyio.run(main) == ["completed"]
        assert activejob.clock.now() == datetime(2030, 1, 1, 0, 10, tzinfo=UTC)
