"""What becomes of the cron slots that pass while no worker runs (`catch_up`), on a SQLite
file and on PostgreSQL. Each `run_until_idle()` is a worker starting afresh, so what a
worker knows of earlier slots comes from the database, as after a real restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

from activejob import BaseJob, ConfigurationError, JobQueue, job, recurring
from activejob.recurring import CATCH_UP_LIMIT


class Args(BaseModel):
    n: int = 0


@job("catch_up_tick", schema=Args)
class Tick(BaseJob[Args]):
    def perform(self, args: Args) -> int:
        return args.n


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2030, 1, 1, hour, minute, tzinfo=UTC)


def slots(queue: JobQueue, status: str) -> list[datetime]:
    """The slots of the `hourly` schedule whose job is in `status`, oldest first."""
    return sorted(datetime.fromisoformat((j.unique_key or "").removeprefix("cron:hourly:"))
                  for j in queue.list_jobs(name="catch_up_tick", status=status, limit=500))


def down_from_10_30_to_15_10(queue: JobQueue) -> None:
    """A worker runs at 10:30 (enqueueing the 11:00 slot), then none until 15:10."""
    with freeze_time("2030-01-01 10:30:00") as frozen:
        queue.run_until_idle()
        frozen.move_to("2030-01-01 15:10:00")
        queue.run_until_idle()


def test_catch_up_none_runs_no_missed_slot_and_enqueues_the_next(queue: JobQueue) -> None:
    recurring("0 * * * *", Tick, key="hourly")
    down_from_10_30_to_15_10(queue)
    assert slots(queue, "completed") == []
    assert slots(queue, "cancelled") == [at(11)]  # enqueued before the outage, superseded since
    assert slots(queue, "pending") == [at(16)]


def test_catch_up_latest_runs_the_most_recent_missed_slot_once(queue: JobQueue) -> None:
    recurring("0 * * * *", Tick, key="hourly", catch_up="latest")
    down_from_10_30_to_15_10(queue)
    assert slots(queue, "completed") == [at(15)]
    assert slots(queue, "cancelled") == [at(11)]
    assert slots(queue, "pending") == [at(16)]


def test_catch_up_all_runs_every_missed_slot(queue: JobQueue) -> None:
    recurring("0 * * * *", Tick, key="hourly", catch_up="all")
    down_from_10_30_to_15_10(queue)
    assert slots(queue, "completed") == [at(h) for h in range(11, 16)]
    assert slots(queue, "pending") == [at(16)]


def test_catch_up_all_enqueues_at_most_the_latest_limit_of_slots(queue: JobQueue) -> None:
    recurring("* * * * *", Tick, key="hourly", catch_up="all")  # every minute
    with freeze_time("2030-01-01 10:00:30") as frozen:
        queue.run_until_idle()
        frozen.move_to("2030-01-01 13:00:30")  # 180 minutes later
        queue.run_until_idle()
        done = slots(queue, "completed")
    assert len(done) == CATCH_UP_LIMIT + 1  # 10:01, enqueued before, and the latest 100
    assert done[0] == at(10, 1) and done[1] == at(11, 21) and done[-1] == at(13)


def test_a_slot_whose_next_slot_has_not_come_still_runs_late(queue: JobQueue) -> None:
    recurring("0 3 * * *", Tick, key="nightly")  # catch_up none
    with freeze_time("2030-01-01 02:50:00") as frozen:
        queue.run_until_idle()
        frozen.move_to("2030-01-01 09:00:00")  # back six hours late, before the next night
        queue.run_until_idle()
    (done,) = queue.list_jobs(name="catch_up_tick", status="completed")
    assert done.unique_key == "cron:nightly:2030-01-01T03:00:00+00:00"


def test_a_worker_that_keeps_up_runs_every_slot_once(queue: JobQueue) -> None:
    recurring("0 * * * *", Tick, key="hourly")
    with freeze_time("2030-01-01 10:30:00") as frozen:
        queue.run_until_idle()
        for hour in (11, 12, 13):
            frozen.move_to(at(hour, 0))
            queue.run_until_idle()
    assert slots(queue, "completed") == [at(11), at(12), at(13)]
    assert slots(queue, "cancelled") == []


def test_workers_starting_together_after_an_outage_enqueue_the_missed_slot_once(db_url: str) -> None:
    recurring("0 * * * *", Tick, key="hourly", catch_up="latest")
    with freeze_time("2030-01-01 10:30:00") as frozen:
        JobQueue(db_url).run_until_idle()
        frozen.move_to("2030-01-01 15:10:00")
        for _ in range(3):
            JobQueue(db_url).run_until_idle()
        queue = JobQueue(db_url)
        assert slots(queue, "completed") == [at(15)]
        assert slots(queue, "pending") == [at(16)]
        queue.close()


def test_a_new_schedule_catches_up_nothing(queue: JobQueue) -> None:
    recurring("0 * * * *", Tick, key="hourly", catch_up="all")
    with freeze_time("2030-01-01 15:10:00"):
        queue.run_until_idle()
    assert slots(queue, "completed") == []
    assert slots(queue, "pending") == [at(16)]


def test_an_unknown_catch_up_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="catch_up_tick: catch_up must be one of 'none', 'latest', 'all'"):
        recurring("0 * * * *", Tick, catch_up="some")


def test_a_running_worker_skips_a_missed_slot_before_claiming_it(queue: JobQueue) -> None:
    from runner_support import wait_for

    from activejob import clock

    schedule = recurring("* * * * *", Tick, key="minutely")
    now = clock.now()
    (stale,), _ = schedule.missed(now - timedelta(minutes=5), now - timedelta(minutes=3), limit=1)
    # What a worker left behind when it stopped three minutes ago: the slot it had enqueued.
    Tick.set(unique_key=f"cron:minutely:{stale.isoformat()}", wait_until=stale).perform_later()
    queue.start()
    try:
        wait_for(lambda: queue.list_jobs(name="catch_up_tick", status="cancelled")
                 or queue.list_jobs(name="catch_up_tick", status="completed"), timeout=10)
    finally:
        queue.stop()
    assert [j.unique_key for j in queue.list_jobs(name="catch_up_tick", status="cancelled")] == [
        f"cron:minutely:{stale.isoformat()}"]
    assert queue.list_jobs(name="catch_up_tick", status="completed") == []
