"""A blocking call in `async def perform` holds up the worker's event loop: the worker says
so, naming the job and the line it is stuck on (a thread of the worker watches the loop).

The jobs that block hold the loop until the warning is out (or 20 s), so a slow machine
cannot let a hold-up end before the watch has looked."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import anyio
import pytest

import activejob
from activejob import BaseJob, JobQueue, NoArgs, job

warned = threading.Event()


class Warned(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if "held up the event loop" in record.getMessage():
            warned.set()


def hold_until_warned() -> None:
    deadline = time.monotonic() + 20
    while not warned.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)  # the mistake: a blocking call on the event loop


@job("bl_blocks", schema=NoArgs, max_retries=0)
class Blocks(BaseJob[NoArgs]):
    async def perform(self, args: NoArgs) -> None:
        hold_until_warned()


@job("bl_blocks_twice", schema=NoArgs, max_retries=0)
class BlocksTwice(BaseJob[NoArgs]):
    async def perform(self, args: NoArgs) -> None:
        hold_until_warned()
        await anyio.sleep(0.3)  # the loop runs again, and the watch sees it answer
        time.sleep(3.0)  # held up again, as long: named once all the same


@job("bl_sleeps_in_a_thread", schema=NoArgs, max_retries=0)
class SleepsInAThread(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        time.sleep(2.5)  # fine: a sync job runs on a thread of its own


@pytest.fixture
def queue(sqlite_url: str) -> Iterator[JobQueue]:
    handler = Warned()
    logging.getLogger("activejob.worker").addHandler(handler)
    warned.clear()
    yield activejob.configure(sqlite_url, poll_interval=0.05, heartbeat_interval=0.2, lease=10)
    JobQueue.reset()
    logging.getLogger("activejob.worker").removeHandler(handler)


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
    # The job's own line, and the call it is inside of.
    assert f"at {__file__}:" in warning and "in perform (inside " in warning and "in hold_until_warned)" in warning
    assert "def perform" in warning and "to_thread" in warning


def test_the_hold_up_is_a_line_of_the_job_s_own_log(queue: JobQueue) -> None:
    handle = Blocks.perform_later()
    queue.run_until_idle()
    (line,) = [e.data for e in queue.events(handle.id) if e.type == "log"]
    assert line["message"].startswith("held up the worker's event loop for over 1s")
    assert f"{__file__}:" in line["where"] and "in perform" in line["where"]


def test_a_job_that_blocks_again_and_again_is_named_once(queue: JobQueue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="activejob.worker")
    handle = BlocksTwice.perform_later()
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
        hold_until_warned()  # a signal receiver that blocks: it runs on the worker's loop

    activejob.signals.job_started.connect(slow_receiver)
    try:
        SleepsInAThread.perform_later()
        queue.run_until_idle()
    finally:
        activejob.signals.job_started.disconnect(slow_receiver)
    (warning,) = blocked(caplog)
    assert "bl_sleeps_in_a_thread" not in warning, "no job is blamed"
    assert f"{__file__}:" in warning and "in hold_until_warned" in warning


def test_a_stopped_worker_leaves_no_watch_behind(queue: JobQueue) -> None:
    SleepsInAThread.perform_later()
    queue.run_until_idle()
    assert not [t for t in threading.enumerate() if t.name == "activejob-loop-watch"]
