"""A blocking call in `async def perform` holds up the worker's event loop: the worker says
so, naming the async jobs that were running (its late heartbeat is how it knows)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import anyio
import pytest

import activejob
from activejob import BaseJob, JobQueue, NoArgs, job


@job("bl_blocks", schema=NoArgs, max_retries=0)
class Blocks(BaseJob[NoArgs]):
    async def perform(self, args: NoArgs) -> None:
        time.sleep(2.5)  # the mistake: a blocking call on the event loop


@job("bl_blocks_thrice", schema=NoArgs, max_retries=0)
class BlocksThrice(BaseJob[NoArgs]):
    async def perform(self, args: NoArgs) -> None:
        for _ in range(3):
            time.sleep(2.0)
            await anyio.sleep(0.3)  # the loop runs between: the heartbeat comes, late each time


@job("bl_sleeps_in_a_thread", schema=NoArgs, max_retries=0)
class SleepsInAThread(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        time.sleep(2.5)  # fine: a sync job runs on a thread of its own


@pytest.fixture
def queue(sqlite_url: str) -> Iterator[JobQueue]:
    yield activejob.configure(sqlite_url, poll_interval=0.05, heartbeat_interval=0.2, lease=10)
    JobQueue.reset()


def blocked(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "activejob.worker"
            and r.levelno == logging.WARNING and "held up the event loop" in r.getMessage()]


def test_an_async_job_that_blocks_the_loop_is_named_in_a_warning(queue: JobQueue,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="activejob.worker")
    handle = Blocks.perform_later()
    queue.run_until_idle()
    assert handle.status == "completed"
    (warning,) = blocked(caplog)
    assert f"bl_blocks #{handle.id} has held up the event loop" in warning
    assert f"{__file__}:20 in perform" in warning, "the line that blocks"
    assert "def perform" in warning and "to_thread" in warning


def test_a_job_that_blocks_again_and_again_is_named_once(queue: JobQueue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="activejob.worker")
    handle = BlocksThrice.perform_later()
    queue.run_until_idle()
    assert handle.status == "completed"
    assert len(blocked(caplog)) == 1, blocked(caplog)


def test_a_sync_job_that_sleeps_does_not_block_the_loop(queue: JobQueue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="activejob.worker")
    handle = SleepsInAThread.perform_later()
    queue.run_until_idle()
    assert handle.status == "completed"
    assert blocked(caplog) == []


def test_a_hold_up_outside_any_job_gives_the_line(queue: JobQueue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="activejob.worker")

    def slow_receiver(sender: object, **payload: object) -> None:
        time.sleep(2.5)  # a signal receiver that blocks: it runs on the worker's loop

    activejob.signals.job_started.connect(slow_receiver)
    try:
        SleepsInAThread.perform_later()
        queue.run_until_idle()
    finally:
        activejob.signals.job_started.disconnect(slow_receiver)
    (warning,) = blocked(caplog)
    assert "bl_sleeps_in_a_thread" not in warning, "no job is blamed"
    assert f"{__file__}:" in warning and "in slow_receiver" in warning
