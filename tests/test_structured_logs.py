"""Structured logs: every log record made while a worker runs a job carries `job_id`,
`job_name` and `attempt` (None outside a job), whatever logger made it."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from runner_support import wait_for

from activejob import BaseJob, JobQueue, job
from activejob.logs import JobLogFilter, JsonFormatter, current_job, running_job

app_log = logging.getLogger("tests.structured")


class Line(BaseModel):
    text: str = "hello"


@job("sl_sync", schema=Line, max_retries=0)
class SyncLogs(BaseJob[Line]):
    def perform(self, args: Line) -> None:
        app_log.info("sync says %s", args.text)


@job("sl_async", schema=Line, max_retries=0)
class AsyncLogs(BaseJob[Line]):
    async def perform(self, args: Line) -> None:
        await anyio.sleep(0)
        app_log.info("async says %s", args.text)


@job("sl_flaky", schema=Line, max_retries=1, backoff=0)
class FlakyLogs(BaseJob[Line]):
    def perform(self, args: Line) -> None:
        app_log.info("trying %s", args.text)
        raise RuntimeError("nope")


@job("sl_slow", schema=Line, max_retries=0, timeout=0.2)
class SlowLogs(BaseJob[Line]):
    def perform(self, args: Line) -> None:
        threading.Event().wait(0.6)


_together = threading.Barrier(3, timeout=10)


@job("sl_together", schema=Line, max_retries=0)
class TogetherLogs(BaseJob[Line]):
    def perform(self, args: Line) -> None:
        _together.wait()  # all three run at once, on three threads
        app_log.info("together %s", args.text)


class Records(logging.Handler):
    """Keeps the records it handles, with a JobLogFilter as a user would attach it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(JobLogFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def matching(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if text in r.getMessage()]

    def one(self, text: str) -> logging.LogRecord:
        found = self.matching(text)
        assert len(found) == 1, [r.getMessage() for r in self.records]
        return found[0]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    saved = root.level, app_log.level, logging.getLogger("activejob").level
    root.addHandler(handler)
    app_log.setLevel(logging.INFO)
    logging.getLogger("activejob").setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(saved[0])
    app_log.setLevel(saved[1])
    logging.getLogger("activejob").setLevel(saved[2])


def fields(record: logging.LogRecord) -> tuple[Any, Any, Any]:
    return record.job_id, record.job_name, record.attempt  # type: ignore[attr-defined]


def test_a_sync_job_s_records_carry_the_job(queue: JobQueue, records: Records) -> None:
    handle = SyncLogs.perform_later(text="hi")
    queue.run_until_idle()
    assert fields(records.one("sync says hi")) == (handle.id, "sl_sync", 1)


def test_an_async_job_s_records_carry_the_job(queue: JobQueue, records: Records) -> None:
    handle = AsyncLogs.perform_later(text="hi")
    queue.run_until_idle()
    assert fields(records.one("async says hi")) == (handle.id, "sl_async", 1)


def test_records_outside_a_job_carry_none(queue: JobQueue, records: Records) -> None:
    SyncLogs.perform_later()
    queue.run_until_idle()
    started = records.one("started: concurrency")
    assert fields(started) == (None, None, None)
    app_log.warning("after the worker")
    assert fields(records.one("after the worker")) == (None, None, None)


def test_each_attempt_carries_its_own_attempt_number(queue: JobQueue, records: Records) -> None:
    handle = FlakyLogs.perform_later(text="again")
    queue.run_until_idle()
    assert [fields(r) for r in records.matching("trying again")] == [
        (handle.id, "sl_flaky", 1), (handle.id, "sl_flaky", 2)]


def test_the_framework_s_lines_about_a_job_carry_it(queue: JobQueue, records: Records) -> None:
    handle = FlakyLogs.perform_later()
    queue.run_until_idle()
    retrying = records.one("failed (RuntimeError: nope); retrying at")
    assert retrying.name == "activejob.worker"
    assert fields(retrying) == (handle.id, "sl_flaky", 1)
    assert fields(records.one("failed after 2 attempt(s)")) == (handle.id, "sl_flaky", 2)


def test_a_timeout_settled_by_the_worker_s_loop_names_its_job(queue: JobQueue, records: Records) -> None:
    handle = SlowLogs.perform_later()
    queue.run_until_idle()
    failed = records.one("timed out after 0.2s")  # logged by the worker's loop, not the job's thread
    assert fields(failed) == (handle.id, "sl_slow", 1)


def test_jobs_running_at_once_each_name_their_own_records(queue: JobQueue, records: Records) -> None:
    handles = {text: TogetherLogs.perform_later(text=text) for text in ("a", "b", "c")}
    queue.run_until_idle()
    for text, handle in handles.items():
        assert fields(records.one(f"together {text}")) == (handle.id, "sl_together", 1)


def test_a_job_s_mark_ends_with_its_attempt(queue: JobQueue) -> None:
    SyncLogs.perform_later()
    AsyncLogs.perform_later()
    queue.run_until_idle()
    assert current_job() is None


def test_a_record_that_names_its_job_keeps_its_own() -> None:
    record = logging.makeLogRecord({"msg": "about 9", "job_id": 9, "job_name": "other", "attempt": 3})
    with running_job(1, "mine", 1):
        JobLogFilter().filter(record)
    assert fields(record) == (9, "other", 3)


def test_json_formatter_writes_one_object_with_the_job_fields() -> None:
    record = logging.makeLogRecord({"name": "myapp", "levelname": "INFO", "msg": "charging %s",
                                    "args": ("card",), "customer": 7})
    with running_job(42, "charge", 2):
        JobLogFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "charging card"
    assert (entry["logger"], entry["level"]) == ("myapp", "INFO")
    assert (entry["job_id"], entry["job_name"], entry["attempt"]) == (42, "charge", 2)
    assert entry["customer"] == 7
    assert entry["time"].endswith("+00:00")


def test_json_formatter_writes_the_traceback() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert entry["job_id"] is None
    assert "ValueError: bad" in entry["exception"]


def test_worker_command_writes_json_lines_with_the_job(sqlite_url: str, workers: Any) -> None:
    import jobs_for_workers as wk

    import activejob

    activejob.configure(sqlite_url)
    try:
        handle = wk.WkRaiseBaseSync.perform_later(kind="base")
        worker = workers.start(sqlite_url, "--log-format", "json")
        wait_for(lambda: "failed after" in worker.output(), what="the job's failure in the worker's log")
    finally:
        JobQueue.reset()
    lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    started = next(e for e in lines if "started: concurrency" in e["message"])
    assert (started["job_id"], started["job_name"], started["attempt"]) == (None, None, None)
    failed = next(e for e in lines if "failed after" in e["message"])
    assert (failed["job_id"], failed["job_name"], failed["attempt"]) == (handle.id, "wk_raise_base_sync", 1)
    assert failed["level"] == "ERROR" and failed["logger"] == "activejob.worker"
