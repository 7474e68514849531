"""Lifecycle signals: one per transition, in order, with the job class as sender; the
same transitions in the durable event log; receivers that are async or that raise."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import jobs_for_workers as wk
import pytest
from blinker import NamedSignal
from pydantic import BaseModel
from runner_support import wait_for

import activejob
from activejob import BaseJob, JobQueue, job, signals

ALL = [signals.job_enqueued, signals.job_started, signals.job_progress, signals.job_log, signals.job_retrying,
       signals.job_completed, signals.job_failed, signals.job_cancelled, signals.job_deleted,
       signals.job_status_changed]


class N(BaseModel):
    n: int = 0


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def receiver(self, signal: NamedSignal) -> Any:
        def receive(sender: Any, **payload: Any) -> None:
            with self._lock:
                self.calls.append((signal.name, sender, payload))

        return receive

    def names(self, job_id: int, *, status_changed: bool = False) -> list[str]:
        return [name for name, _, p in self.calls if p.get("job_id") == job_id
                and (status_changed or name != "job_status_changed")]

    def of(self, job_id: int, name: str) -> list[tuple[Any, dict[str, Any]]]:
        return [(s, p) for n, s, p in self.calls if p.get("job_id") == job_id and n == name]


@pytest.fixture
def recorded() -> Iterator[Recorder]:
    recorder = Recorder()
    connected = [(s, recorder.receiver(s)) for s in ALL]
    for signal, fn in connected:
        signal.connect(fn, weak=False)
    yield recorder
    for signal, fn in connected:
        signal.disconnect(fn)


def _logged_types(queue: JobQueue, job_id: int) -> list[str]:
    return [e.type for e in queue.events(job_id)]


def test_a_completed_job_sends_its_signals_in_order(queue: JobQueue, recorded: Recorder) -> None:
    @job("rt_signalled", schema=N)
    class Signalled(BaseJob[N]):
        async def perform(self, args: N) -> dict[str, int]:
            self.progress(0.5, message="half")
            self.log("working", step=1)
            return {"n": args.n}

    handle = Signalled.perform_later(n=3)
    queue.run_until_idle()
    assert recorded.names(handle.id) == ["job_enqueued", "job_started", "job_progress", "job_log", "job_completed"]
    assert _logged_types(queue, handle.id) == ["enqueued", "started", "progress", "log", "completed"]
    for name, sender, payload in recorded.calls:
        assert sender is Signalled, name
        assert payload["job_id"] == handle.id and payload["name"] == "rt_signalled"
    statuses = [(p["event"], p["status"], p["attempt"]) for n, _, p in recorded.calls if n != "job_status_changed"]
    assert statuses == [("enqueued", "pending", 0), ("started", "running", 1), ("progress", "running", 1),
                        ("log", "running", 1), ("completed", "completed", 1)]
    (_, completed), = recorded.of(handle.id, "job_completed")
    assert completed["result"] == {"n": 3}
    (_, progress), = recorded.of(handle.id, "job_progress")
    assert (progress["progress"], progress["message"]) == (0.5, "half")
    (_, logged), = recorded.of(handle.id, "job_log")
    assert (logged["message"], logged["step"]) == ("working", 1)
    assert all(isinstance(p["event_id"], int) for _, _, p in recorded.calls)


def test_perform_now_sends_the_payloads_a_worker_sends(queue: JobQueue, recorded: Recorder) -> None:
    @job("rt_same_shape", schema=N)
    class SameShape(BaseJob[N]):
        async def perform(self, args: N) -> dict[str, int]:
            self.progress(0.5, message="half")
            self.log("working", step=1)
            return {"n": args.n}

    handle = SameShape.perform_later(n=3)
    queue.run_until_idle()
    SameShape.perform_now(n=3)

    def shapes(job_id: int | None) -> list[tuple[str, list[str]]]:
        return [(name, sorted(payload)) for name, _, payload in recorded.calls
                if payload.get("job_id") == job_id and name not in ("job_enqueued", "job_status_changed")]

    # The same keys either way, but for the worker's id, which only a worker has.
    assert shapes(None) == [(name, [k for k in keys if k != "worker_id"]) for name, keys in shapes(handle.id)]
    assert [name for name, _ in shapes(None)] == ["job_started", "job_progress", "job_log", "job_completed"]


def test_status_changed_accompanies_every_status_transition(queue: JobQueue, recorded: Recorder) -> None:
    @job("rt_twice", schema=N, max_retries=1, backoff=0)
    class Twice(BaseJob[N]):
        async def perform(self, args: N) -> None:
            self.progress(0.1)
            if self.attempt == 1:
                raise ValueError("once")

    handle = Twice.perform_later()
    queue.run_until_idle()
    changed = [p["event"] for _, p in recorded.of(handle.id, "job_status_changed")]
    assert changed == ["enqueued", "started", "retrying", "started", "completed"]
    assert recorded.names(handle.id) == ["job_enqueued", "job_started", "job_progress", "job_retrying",
                                         "job_started", "job_progress", "job_completed"]
    assert _logged_types(queue, handle.id) == ["enqueued", "started", "progress", "retrying", "started",
                                               "progress", "completed"]
    (_, retrying), = recorded.of(handle.id, "job_retrying")
    assert retrying["error"] == "ValueError: once" and retrying["status"] == "pending"
    assert "run_at" in retrying


def test_a_failed_job_signals_its_error_and_traceback(queue: JobQueue, recorded: Recorder) -> None:
    @job("rt_fails_signal", schema=N, max_retries=0)
    class Fails(BaseJob[N]):
        def perform(self, args: N) -> None:
            raise RuntimeError("nope")

    handle = Fails.perform_later()
    queue.run_until_idle()
    assert recorded.names(handle.id) == ["job_enqueued", "job_started", "job_failed"]
    (sender, failed), = recorded.of(handle.id, "job_failed")
    assert sender is Fails
    assert (failed["status"], failed["attempt"], failed["error"]) == ("failed", 1, "RuntimeError: nope")
    assert "Traceback" in failed["traceback"]


def test_cancel_pending_and_running_send_job_cancelled(queue: JobQueue, recorded: Recorder, tmp_path: Path) -> None:
    pending = wk.WkQuick.perform_in(3600)
    pending.cancel()
    assert recorded.names(pending.id) == ["job_enqueued", "job_cancelled"]
    queue.start()
    try:
        running = wk.WkBlock.perform_later(release=str(tmp_path / "never"))
        wait_for(lambda: running.status == "running")
        running.cancel()
        running.wait(timeout=20)
        wait_for(lambda: "job_cancelled" in recorded.names(running.id))
    finally:
        queue.stop(timeout=20)
    assert recorded.names(running.id) == ["job_enqueued", "job_started", "job_cancelled"]
    assert _logged_types(queue, running.id) == ["enqueued", "started", "cancelled"]
    (_, cancelled), = recorded.of(running.id, "job_cancelled")
    assert cancelled["status"] == "cancelled"


def test_retry_delete_and_shutdown_requeue_are_signalled(queue: JobQueue, recorded: Recorder,
                                                         tmp_path: Path) -> None:
    @job("rt_fails_then_ok", schema=N, max_retries=0)
    class FailsThenOk(BaseJob[N]):
        async def perform(self, args: N) -> None:
            if self.attempt == 1 and not (tmp_path / "ok").exists():
                raise ValueError("first")

    handle = FailsThenOk.perform_later()
    queue.run_until_idle()
    (tmp_path / "ok").touch()
    queue.retry(handle.id)
    queue.run_until_idle()
    queue.delete(handle.id)
    assert recorded.names(handle.id) == ["job_enqueued", "job_started", "job_failed", "job_enqueued",
                                         "job_started", "job_completed", "job_deleted"]

    blocked = wk.WkBlock.perform_later(release=str(tmp_path / "never"))
    queue.start()
    wait_for(lambda: blocked.status == "running")
    queue.stop(grace=0, timeout=20)
    requeued = [p for _, p in recorded.of(blocked.id, "job_status_changed") if p["event"] == "requeued"]
    assert [(p["status"], p["attempt"]) for p in requeued] == [("pending", 0)]
    assert _logged_types(queue, blocked.id) == ["enqueued", "started", "requeued"]


def test_async_receivers_are_awaited(queue: JobQueue) -> None:
    done: list[int] = []

    async def slow_receiver(sender: Any, **payload: Any) -> None:
        await anyio.sleep(0.2)
        done.append(payload["job_id"])

    signals.job_completed.connect(slow_receiver, sender=wk.WkQuick, weak=False)
    try:
        handle = wk.WkQuick.perform_later()
        queue.run_until_idle()
        assert done == [handle.id]  # finished before the worker moved on
    finally:
        signals.job_completed.disconnect(slow_receiver, sender=wk.WkQuick)


def test_async_receiver_of_a_sync_enqueue_runs(queue: JobQueue) -> None:
    got: list[int] = []

    async def on_enqueued(sender: Any, **payload: Any) -> None:
        await anyio.sleep(0)
        got.append(payload["job_id"])

    signals.job_enqueued.connect(on_enqueued, sender=wk.WkQuick, weak=False)
    try:
        handle = wk.WkQuick.perform_later()
    finally:
        signals.job_enqueued.disconnect(on_enqueued, sender=wk.WkQuick)
    assert got == [handle.id]


def test_receivers_that_raise_are_logged_and_break_nothing(queue: JobQueue, recorded: Recorder,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    def broken(sender: Any, **payload: Any) -> None:
        raise RuntimeError("receiver bug")

    async def broken_async(sender: Any, **payload: Any) -> None:
        raise RuntimeError("async receiver bug")

    hooked = [signals.job_enqueued, signals.job_started, signals.job_completed, signals.job_progress]
    for s in hooked:
        s.connect(broken, weak=False)
        s.connect(broken_async, weak=False)
    try:
        @job("rt_survives", schema=N)
        class Survives(BaseJob[N]):
            async def perform(self, args: N) -> str:
                self.progress(0.5)
                return "ok"

        handle = Survives.perform_later()
        queue.run_until_idle()
    finally:
        for s in hooked:
            s.disconnect(broken)
            s.disconnect(broken_async)
    assert handle.status == "completed" and handle.result == "ok"
    # the other receivers still heard everything
    assert recorded.names(handle.id) == ["job_enqueued", "job_started", "job_progress", "job_completed"]
    errors = [r for r in caplog.records if r.name == "activejob.signals" and r.levelno == logging.ERROR]
    assert len(errors) == 2 * len(hooked), [r.getMessage() for r in errors]
    assert all(r.exc_info for r in errors)


def test_receivers_connected_to_one_job_class_hear_only_it(queue: JobQueue) -> None:
    heard: list[str] = []

    def on_completed(sender: Any, **payload: Any) -> None:
        heard.append(payload["name"])

    signals.job_completed.connect(on_completed, sender=wk.WkQuick, weak=False)
    try:
        wk.WkQuick.perform_later()
        wk.WkSleep.perform_later(seconds=0)
        queue.run_until_idle()
    finally:
        signals.job_completed.disconnect(on_completed, sender=wk.WkQuick)
    assert heard == ["wk_quick"]


def test_signals_fire_for_jobs_run_by_a_started_worker(db_url: str, recorded: Recorder) -> None:
    queue = activejob.configure(db_url, poll_interval=0.05)
    try:
        queue.start()
        handle = wk.WkQuick.perform_later(n=1)
        handle.wait(timeout=20)
        wait_for(lambda: "job_completed" in recorded.names(handle.id))
    finally:
        JobQueue.reset()
    assert recorded.names(handle.id) == ["job_enqueued", "job_started", "job_completed"]
