"""Pausing a queue: no worker starts its jobs until it is resumed; running ones finish,
enqueueing goes on, and other queues are not affected."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import jobs_for_workers as wk
import pytest
from pydantic import BaseModel
from runner_support import Workers, sql, wait_for

from activejob import BaseJob, JobQueue, job


class Note(BaseModel):
    text: str = ""


@job("pause_note", schema=Note)
class NoteJob(BaseJob[Note]):
    def perform(self, args: Note) -> str:
        return args.text


released = threading.Event()


@job("pause_blocking", schema=Note)
class Blocking(BaseJob[Note]):
    def perform(self, args: Note) -> str:
        released.wait(10)
        return "finished"


def test_a_paused_queues_jobs_wait_while_other_queues_run(queue: JobQueue) -> None:
    assert queue.pause_queue("mail") is True
    held = NoteJob.set(queue="mail").perform_later(text="held")
    other = NoteJob.perform_later(text="other")
    queue.run_until_idle()
    assert held.status == "pending"
    assert other.status == "completed"


def test_resuming_a_queue_lets_its_jobs_run(queue: JobQueue) -> None:
    queue.pause_queue("mail")
    held = NoteJob.set(queue="mail").perform_later(text="held")
    queue.run_until_idle()
    assert queue.resume_queue("mail") is True
    queue.run_until_idle()
    assert held.status == "completed" and held.result == "held"


def test_a_job_running_when_its_queue_is_paused_finishes(queue: JobQueue) -> None:
    released.clear()
    handle = Blocking.set(queue="mail").perform_later()
    queue.start()
    try:
        wait_for(lambda: handle.status == "running", what="the job to start")
        queue.pause_queue("mail")
        released.set()
        assert handle.wait(10).status == "completed"
    finally:
        queue.stop()


def test_pause_and_resume_say_whether_they_changed_anything(queue: JobQueue) -> None:
    assert queue.pause_queue("mail") is True
    assert queue.pause_queue("mail") is False
    assert queue.paused_queues() == ["mail"]
    assert queue.stats()["paused_queues"] == ["mail"]
    assert queue.resume_queue("mail") is True
    assert queue.resume_queue("mail") is False
    assert queue.paused_queues() == []


@pytest.mark.parametrize("bad", ["", "   ", "q" * 201, None])
def test_a_bad_queue_name_is_refused(queue: JobQueue, bad: Any) -> None:
    with pytest.raises(ValueError, match="a queue name is a non-empty string"):
        queue.pause_queue(bad)


def test_a_limited_job_type_waits_in_a_paused_queue_too(queue: JobQueue) -> None:
    @job("pause_limited", schema=Note, concurrency_limit=1)
    class Limited(BaseJob[Note]):
        def perform(self, args: Note) -> str:
            return args.text

    queue.pause_queue("mail")
    held = Limited.set(queue="mail").perform_later(text="held")
    other = Limited.perform_later(text="other")
    queue.run_until_idle()
    assert (held.status, other.status) == ("pending", "completed")


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_resuming_wakes_an_idle_worker_in_another_process(pg_url: str, workers: Workers, tmp_path: Path) -> None:
    queue = JobQueue(pg_url, auto_migrate=False)
    try:
        queue.pause_queue("mail")
        workers.start(pg_url, poll_interval=10.0)  # only a wake-up can beat the poll
        (job_id,) = (h.id for h in queue.enqueue([wk.WkQuick.set(queue="mail").request({}, max_args_bytes=10_000)]))
        time.sleep(1.0)
        assert sql(pg_url, "SELECT status FROM activejob_jobs WHERE id = :id", id=job_id)[0][0] == "pending"
        resumed_at = time.monotonic()
        queue.resume_queue("mail")
        wait_for(lambda: sql(pg_url, "SELECT status FROM activejob_jobs WHERE id = :id", id=job_id)[0][0]
                 == "completed", 8, interval=0.02, what="the job to run after the resume")
        assert time.monotonic() - resumed_at < 5.0
    finally:
        queue.close()

