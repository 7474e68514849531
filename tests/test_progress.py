"""What a job reports while it runs: progress, logs, checkpoints, its id and attempt."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from runner_support import wait_for

from activejob import BaseJob, JobQueue, job, signals
from activejob.context import RESERVED_LOG_KEYS
from activejob.records import signal_payload


class N(BaseModel):
    n: int = 0


def test_progress_fraction_message_and_phase_are_stored(queue: JobQueue) -> None:
    @job("rt_phased", schema=N, phases=["download", "resize"])
    class Phased(BaseJob[N]):
        async def perform(self, args: N) -> None:
            self.progress(0.25, message="fetching", phase="download")
            await anyio.sleep(0.2)
            self.progress(0.75, "resizing", "resize")

    handle = Phased.perform_later()
    queue.run_until_idle()
    info = queue.get_job(handle.id)
    assert info is not None
    assert (info.progress, info.progress_message, info.progress_phase) == (0.75, "resizing", "resize")
    progress = [(e.data["progress"], e.data["message"], e.data["phase"])
                for e in queue.events(handle.id) if e.type == "progress"]
    assert progress == [(0.25, "fetching", "download"), (0.75, "resizing", "resize")]


def test_progress_count_stores_current_and_total(queue: JobQueue) -> None:
    @job("rt_counted", schema=N)
    class Counted(BaseJob[N]):
        def perform(self, args: N) -> None:
            self.progress_count(30, 120, message="rows")

    handle = Counted.perform_later()
    queue.run_until_idle()
    info = queue.get_job(handle.id)
    assert info is not None
    assert (info.progress, info.progress_current, info.progress_total, info.progress_message) == (0.25, 30, 120, "rows")


def test_log_lines_go_to_the_event_log_in_order_with_their_data(queue: JobQueue) -> None:
    @job("rt_logger", schema=N)
    class Logger(BaseJob[N]):
        async def perform(self, args: N) -> None:
            self.log("fetched", rows=120)
            self.log("skipped", reason="empty", count=0)
            self.log("done")  # right before the end: still written before `completed`

    handle = Logger.perform_later()
    queue.run_until_idle()
    events = queue.events(handle.id)
    assert [e.type for e in events] == ["enqueued", "started", "log", "log", "log", "completed"]
    logs = [{k: v for k, v in e.data.items() if k != "at"} for e in events if e.type == "log"]
    assert logs == [{"message": "fetched", "rows": 120}, {"message": "skipped", "reason": "empty", "count": 0},
                    {"message": "done"}]


def test_log_data_sharing_a_signal_key_is_kept_in_the_log_and_warned_about_once(
        queue: JobQueue, caplog: pytest.LogCaptureFixture) -> None:
    name = f"rt_shadowing_logger_{queue.store.dialect}"  # warned once per process and type

    @job(name, schema=N)
    class Shadowing(BaseJob[N]):
        def perform(self, args: N) -> None:
            self.log("saved", status="ok", rows=3)
            self.log("saved again", status="ok", rows=4)

    heard: list[dict[str, Any]] = []

    def receiver(sender: Any, **payload: Any) -> None:
        heard.append(payload)

    signals.job_log.connect(receiver)
    try:
        handle = Shadowing.perform_later()
        queue.run_until_idle()
    finally:
        signals.job_log.disconnect(receiver)
    assert handle.info().status == "completed"
    logged = [e.data for e in queue.events(handle.id) if e.type == "log"]
    assert [(d["status"], d["rows"]) for d in logged] == [("ok", 3), ("ok", 4)]  # the durable log keeps it
    assert [(p["status"], p["rows"]) for p in heard] == [("running", 3), ("running", 4)]  # the signal's own wins
    warned = [r.getMessage() for r in caplog.records if "self.log data" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"{name}: self.log data status share(s) a name")


def test_every_key_a_signal_payload_holds_is_reserved_in_log_data() -> None:
    payload = signal_payload("log", job_id=1, name="n", queue="q", owner=None, status="running", attempt=1,
                             at=datetime.now(UTC), data={"message": "m"})
    assert set(payload) <= RESERVED_LOG_KEYS


def test_a_job_knows_its_id_and_attempt(queue: JobQueue) -> None:
    @job("rt_whoami", schema=N, max_retries=2, backoff=0)
    class WhoAmI(BaseJob[N]):
        async def perform(self, args: N) -> dict[str, Any]:
            if self.attempt < 3:
                raise ValueError("again")
            return {"job_id": self.job_id, "attempt": self.attempt}

    handle = WhoAmI.perform_later()
    queue.run_until_idle()
    assert handle.result == {"job_id": handle.id, "attempt": 3}


def test_checkpoint_resumes_after_a_retry(queue: JobQueue) -> None:
    seen: list[Any] = []

    @job("rt_resumable", schema=N, max_retries=2, backoff=0)
    class Resumable(BaseJob[N]):
        async def perform(self, args: N) -> int:
            seen.append(self.checkpoint_data)
            start = (self.checkpoint_data or {}).get("offset", 0)
            for offset in range(start, 10):
                if offset == 5 and self.attempt == 1:
                    raise ConnectionError("dropped")
                self.checkpoint({"offset": offset})
            return start

    handle = Resumable.perform_later()
    queue.run_until_idle()
    assert seen == [None, {"offset": 4}]
    assert handle.result == 4
    info = queue.get_job(handle.id)
    assert info is not None and info.checkpoint == {"offset": 9}


def test_a_retried_attempt_starts_without_the_last_attempts_progress(queue: JobQueue) -> None:
    seen: list[Any] = []

    @job("rt_progress_retry", schema=N, max_retries=1, backoff=0)
    class Flaky(BaseJob[N]):
        def perform(self, args: N) -> None:
            info = JobQueue.get().get_job(self.job_id)
            seen.append(None if info is None else (info.progress, info.progress_message, info.progress_total))
            if self.attempt == 1:
                self.progress_count(60, 100, message="halfway")
                time.sleep(0.3)  # long enough for the progress to be written
                raise ConnectionError("dropped")

    handle = Flaky.perform_later()
    queue.run_until_idle()
    assert handle.status == "completed"
    assert seen == [(None, None, None), (None, None, None)]


def test_checkpoint_is_never_in_the_event_log_only_a_local_signal(queue: JobQueue) -> None:
    received: list[dict[str, Any]] = []

    def on_checkpoint(sender: Any, **event: Any) -> None:
        received.append(event)

    @job("rt_secret_checkpoint", schema=N)
    class Secret(BaseJob[N]):
        async def perform(self, args: N) -> None:
            self.checkpoint({"cursor": "s3cr3t"})
            self.progress(0.5)

    signals.job_checkpoint.connect(on_checkpoint, sender=Secret, weak=False)
    try:
        handle = Secret.perform_later()
        queue.run_until_idle()
    finally:
        signals.job_checkpoint.disconnect(on_checkpoint, sender=Secret)
    events = queue.events(handle.id)
    assert "checkpoint" not in [e.type for e in events]
    assert all("s3cr3t" not in json.dumps(e.data, default=str) for e in events)
    assert [(r["job_id"], r["checkpoint"]) for r in received] == [(handle.id, {"cursor": "s3cr3t"})]


def test_progress_reported_100k_times_writes_few_events_and_the_last_value(queue: JobQueue) -> None:
    total = 100_000

    @job("rt_chatty", schema=N)
    class Chatty(BaseJob[N]):
        def perform(self, args: N) -> None:
            for i in range(1, total + 1):
                self.progress_count(i, total)

    handle = Chatty.perform_later()
    started = time.monotonic()
    queue.run_until_idle()
    elapsed = time.monotonic() - started
    progress = [e for e in queue.events(handle.id, limit=total) if e.type == "progress"]
    # at most one write per progress_interval (0.05 s), plus the final flush
    assert 1 <= len(progress) <= elapsed / 0.05 + 2
    assert len(progress) < 1000
    info = queue.get_job(handle.id)
    assert info is not None
    assert (info.progress, info.progress_current, info.progress_total) == (1.0, total, total)
    assert progress[-1].data["current"] == total


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_progress_then_silence_is_written_soon_trailing_edge(db_url: str, kind: str) -> None:
    import activejob

    queue = activejob.configure(db_url, poll_interval=0.05, progress_interval=0.25)
    release = threading.Event()

    if kind == "async":
        @job("rt_then_silent", schema=N)
        class ThenSilent(BaseJob[N]):
            async def perform(self, args: N) -> None:
                self.progress(0.1)
                self.progress(0.5, message="half")
                while not release.is_set():
                    await anyio.sleep(0.02)
    else:
        @job("rt_then_silent", schema=N)
        class ThenSilent(BaseJob[N]):  # type: ignore[no-redef]
            def perform(self, args: N) -> None:
                self.progress(0.1)
                self.progress(0.5, message="half")
                release.wait(30)

    try:
        queue.start()
        handle = ThenSilent.perform_later()
        wait_for(lambda: handle.status == "running")
        started = time.monotonic()
        info = wait_for(lambda: (i := queue.get_job(handle.id)) is not None and i.progress == 0.5 and i,
                        what="progress 0.5 in the database")
        assert time.monotonic() - started < 3  # ~progress_interval; generous for a busy machine
        assert info.status == "running" and info.progress_message == "half"
    finally:
        release.set()
        JobQueue.reset()
