"""Per-queue limits in one worker (`--queues mail:2,default`): a queue's jobs never take
more than its share of the worker's slots, so a flood in one queue cannot starve another."""

from __future__ import annotations

import itertools

import anyio
import jobs_for_workers as wk
import pytest
from pydantic import BaseModel
from runner_support import Workers, wait_for

import activejob
from activejob import BaseJob, ConfigurationError, JobQueue, job
from activejob.config import Settings

running: dict[str, int] = {}
peak: dict[str, int] = {}


class Hold(BaseModel):
    seconds: float = 0.05


@job("queue_limited_hold", schema=Hold)
class HoldJob(BaseJob[Hold]):
    async def perform(self, args: Hold) -> None:
        queue = self.context.queue
        running[queue] = running.get(queue, 0) + 1
        peak[queue] = max(peak.get(queue, 0), running[queue])
        try:
            await anyio.sleep(args.seconds)
        finally:
            running[queue] -= 1


@pytest.fixture(autouse=True)
def _counters() -> None:
    running.clear()
    peak.clear()


def test_queues_with_limits_are_parsed_in_order() -> None:
    settings = Settings.build(queues="mail:2,default,sms:1")
    assert settings.queues == ("mail", "default", "sms")
    assert settings.queue_limits == {"mail": 2, "sms": 1}
    assert Settings.build(queues={"mail": 2, "default": None}).queue_limits == {"mail": 2}


def test_when_every_queue_has_a_limit_they_add_up_to_the_concurrency() -> None:
    assert Settings.build(queues="mail:2,sms:3").concurrency == 5
    assert Settings.build(queues="mail:2,sms:3", concurrency=4).concurrency == 4


@pytest.mark.parametrize("bad", ["mail:0", "mail:x", "mail:-1", "*,mail:2", {"mail": 1.5}])
def test_a_bad_queue_limit_is_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="queues: "):
        Settings.build(queues=bad)


def test_a_limited_queue_never_takes_more_than_its_slots(db_url: str) -> None:
    queue = activejob.configure(db_url, concurrency=6, queues="mail:2,default", poll_interval=0.05)
    try:
        mail = HoldJob.set(queue="mail").perform_all_later([{}] * 8)
        other = HoldJob.perform_all_later([{}] * 8)
        queue.run_until_idle()
        assert all(h.status == "completed" for h in mail + other)
        assert peak["mail"] == 2
        assert peak["default"] >= 3, "the other queue used the remaining slots"
    finally:
        JobQueue.reset()


def test_a_flood_in_one_queue_does_not_starve_another(db_url: str) -> None:
    queue = activejob.configure(db_url, concurrency=4, queues="bulk:3,urgent:1", poll_interval=0.05)
    try:
        bulk = HoldJob.set(queue="bulk", priority=10).perform_all_later([{"seconds": 0.1}] * 9)
        urgent = HoldJob.set(queue="urgent").perform_later(seconds=0.0)
        queue.run_until_idle()
        assert urgent.info().finished_at < max(h.info().started_at for h in bulk), \
            "urgent ran while bulk was still being worked through"
    finally:
        JobQueue.reset()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_the_worker_command_takes_queue_limits(sqlite_url: str, workers: Workers) -> None:
    activejob.configure(sqlite_url)
    try:
        jobs = wk.WkSleep.set(queue="mail").perform_all_later([{"seconds": 0.2}] * 3)
        workers.start(sqlite_url, "--queues", "mail:1,default", "--concurrency", "4")
        wait_for(lambda: all(h.status == "completed" for h in jobs), 30, what="the mail jobs")
        spans = sorted((h.info().started_at, h.info().finished_at) for h in jobs)
        assert all(s2 >= f1 for (_s1, f1), (s2, _f2) in itertools.pairwise(spans)), "one mail job at a time"
    finally:
        JobQueue.reset()
