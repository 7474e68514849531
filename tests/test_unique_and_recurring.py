"""Unique keys make enqueue idempotent; cron schedules run each slot once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

import activejob
from activejob import BaseJob, ConfigurationError, JobQueue, job, recurring
from activejob.recurring import schedules


class Args(BaseModel):
    n: int = 0


@job("uniq_noop", schema=Args)
class Noop(BaseJob[Args]):
    def perform(self, args: Args) -> int:
        return args.n


@pytest.fixture(autouse=True)
def no_schedules() -> None:
    saved = dict(schedules)
    yield  # type: ignore[misc]
    schedules.clear()
    schedules.update(saved)


def test_a_unique_key_enqueues_once_and_returns_the_same_job(queue: JobQueue) -> None:
    first = Noop.set(unique_key="invoice-42").perform_later(n=1)
    second = Noop.set(unique_key="invoice-42").perform_later(n=2)
    assert first.id == second.id
    assert queue.stats()["total"] == 1
    assert [e.type for e in queue.events(first.id)] == ["enqueued"]


def test_jobs_without_a_key_are_never_deduplicated(queue: JobQueue) -> None:
    a, b = Noop.perform_later(n=1), Noop.perform_later(n=1)
    assert a.id != b.id


def test_bulk_enqueue_mixes_keyed_and_plain_jobs(queue: JobQueue) -> None:
    keyed = Noop.set(unique_key="k").perform_later(n=0)
    handles = Noop.perform_all_later([{"n": 1}, {"n": 2}])
    again = Noop.set(unique_key="k").perform_all_later([{"n": 3}])
    assert again[0].id == keyed.id
    assert len({h.id for h in handles}) == 2 and queue.stats()["total"] == 3


def test_cron_schedule_runs_each_slot_once(queue: JobQueue) -> None:
    runs: list[datetime] = []

    @job("uniq_every_hour", cron="0 * * * *")
    class Hourly(BaseJob):  # type: ignore[type-arg]
        def perform(self, args: BaseModel) -> None:
            runs.append(activejob.clock.now())

    with freeze_time("2030-01-01 10:30:00") as frozen:
        queue.run_until_idle()
        assert runs == []
        (scheduled,) = queue.list_jobs(name="uniq_every_hour")
        assert scheduled.run_at == datetime(2030, 1, 1, 11, tzinfo=UTC)
        frozen.move_to("2030-01-01 11:00:00")
        queue.run_until_idle()
        queue.run_until_idle()
        assert len(runs) == 1
        frozen.move_to("2030-01-01 12:00:05")
        queue.run_until_idle()
        assert len(runs) == 2


def test_many_workers_enqueue_a_slot_once(db_url: str) -> None:
    @job("uniq_nightly", cron="0 2 * * *")
    class Nightly(BaseJob):  # type: ignore[type-arg]
        def perform(self, args: BaseModel) -> None: ...

    with freeze_time("2030-01-01 00:00:00"):
        for _ in range(3):  # three workers starting up, each scheduling the next slot
            JobQueue(db_url).run_until_idle()
        queue = JobQueue(db_url)
        assert len(queue.list_jobs(name="uniq_nightly")) == 1
        queue.close()


def test_recurring_takes_arguments_and_a_time_zone(queue: JobQueue) -> None:
    schedule = recurring("30 9 * * 1-5", Noop, args={"n": 7}, key="weekday-report", timezone="Europe/Paris")
    assert schedule.next_after(datetime(2030, 1, 7, 8, 0, tzinfo=UTC)) == datetime(2030, 1, 7, 8, 30, tzinfo=UTC)
    assert queue.recurring()[0]["key"] == "weekday-report"


def test_invalid_cron_expressions_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="uniq_noop: 'every day' is not a valid cron expression"):
        recurring("every day", Noop)


def test_invalid_recurring_arguments_are_refused_at_once() -> None:
    with pytest.raises(activejob.JobArgumentsError, match="uniq_noop"):
        recurring("* * * * *", Noop, args={"n": "many"})
