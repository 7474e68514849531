"""perform_now runs a job in the caller with no database at all."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from activejob import ActiveJobError, BaseJob, JobArgumentsError, JobQueue, JobTimeout, NoArgs, job, signals


class Args(BaseModel):
    text: str


@job("now_shout", schema=Args)
class Shout(BaseJob[Args]):
    async def perform(self, args: Args) -> str:
        self.progress(0.5, message="half")
        self.log("shouting", length=len(args.text))
        return args.text.upper()


@job("now_fail", schema=Args)
class Fail(BaseJob[Args]):
    def perform(self, args: Args) -> None:
        raise LookupError(args.text)


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    # No queue and no way to make one: perform_now must not touch a database.
    JobQueue.reset()

    def refuse() -> None:
        raise AssertionError("perform_now touched the database")

    monkeypatch.setattr("activejob.queue.JobQueue.store", property(lambda self: refuse()))


def test_perform_now_returns_the_result() -> None:
    assert Shout.perform_now(text="hi") == "HI"


def test_perform_now_takes_a_schema_instance() -> None:
    assert Shout.perform_now(Args(text="ok")) == "OK"


def test_perform_now_raises_the_jobs_exception() -> None:
    with pytest.raises(LookupError, match="missing"):
        Fail.perform_now(text="missing")


def test_perform_now_validates_arguments() -> None:
    with pytest.raises(JobArgumentsError, match="now_shout: invalid arguments: field 'text'"):
        Shout.perform_now()


def test_perform_now_fires_started_progress_log_and_completed() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(name: str) -> Any:
        return lambda sender, **payload: seen.append((name, payload))

    receivers = {s: record(s.name) for s in (signals.job_started, signals.job_progress, signals.job_log,
                                              signals.job_completed)}
    for sig, fn in receivers.items():
        sig.connect(fn, sender=Shout)
    try:
        Shout.perform_now(text="a")
    finally:
        for sig, fn in receivers.items():
            sig.disconnect(fn)
    assert [name for name, _ in seen] == ["job_started", "job_progress", "job_log", "job_completed"]
    assert seen[1][1]["progress"] == 0.5
    assert seen[3][1]["result"] == "A"
    assert all(p["job_id"] is None and p["name"] == "now_shout" for _, p in seen)


def test_perform_now_fires_failed_on_error() -> None:
    failures: list[dict[str, Any]] = []

    def on_failed(sender: Any, **payload: Any) -> None:
        failures.append(payload)

    with signals.job_failed.connected_to(on_failed, sender=Fail), pytest.raises(LookupError):
        Fail.perform_now(text="x")
    assert failures[0]["error"] == "LookupError: x"


def test_perform_now_works_inside_a_running_event_loop() -> None:
    import anyio

    async def main() -> str:
        return Shout.perform_now(text="loop")  # type: ignore[no-any-return]

    assert anyio.run(main) == "LOOP"


@job("now_waits_for_children")
class WaitsForChildren(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        self.wait_for_children()


@job("now_overstays", timeout=0.05)
class Overstays(BaseJob[NoArgs]):
    async def perform(self, args: NoArgs) -> None:
        await anyio.sleep(5)


@job("now_own_timeout", timeout=5)
class OwnTimeout(BaseJob[NoArgs]):
    async def perform(self, args: NoArgs) -> None:
        raise TimeoutError("the API did not answer")


def test_perform_now_says_that_waiting_for_children_needs_a_worker() -> None:
    with pytest.raises(ActiveJobError, match=r"now_waits_for_children: wait_for_children\(\) needs a worker"):
        WaitsForChildren.perform_now()


def test_perform_now_fails_an_async_job_past_its_timeout_with_job_timeout() -> None:
    with pytest.raises(JobTimeout, match="now_overstays timed out after 0.05s"):
        Overstays.perform_now()


def test_perform_now_keeps_a_jobs_own_timeout_error_as_it_is() -> None:
    with pytest.raises(TimeoutError, match="the API did not answer") as raised:
        OwnTimeout.perform_now()
    assert not isinstance(raised.value, JobTimeout)
