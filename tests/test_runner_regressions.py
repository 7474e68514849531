"""Bugs the runner once had, kept from coming back."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import BaseModel

from activejob import BaseJob, JobQueue, NoArgs, job


class Args(BaseModel):
    n: int


@job("regress_flaky_twice", schema=Args, max_retries=5, backoff="fixed", backoff_base=0)
class FlakyTwice(BaseJob[Args]):
    def perform(self, args: Args) -> int:
        if self.attempt < 3:
            raise ConnectionError("try again")
        return args.n


def test_retries_due_at_once_run_again_under_the_same_id_and_finish(queue: JobQueue) -> None:
    # The retry is claimed again while the failed attempt's task is still winding down;
    # the old attempt must not take the new one's place in the runner's books.
    handles = [FlakyTwice.perform_later(n=n) for n in range(3)]
    queue.run_until_idle()
    for handle in handles:
        info = queue.get_job(handle.id)
        assert info is not None and (info.status, info.attempts) == ("completed", 3)


def test_more_sync_jobs_than_anyios_thread_pool_all_run_and_keep_their_leases(sqlite_url: str) -> None:
    """Sync jobs have threads of their own: 45 of them (anyio's shared pool has 40) run side
    by side, and the heartbeats, which also need a thread, still extend their leases."""
    import threading
    import time

    import activejob

    running = 0
    peak = 0
    lock = threading.Lock()

    @job("busy_thread")
    class Busy(BaseJob[NoArgs]):
        def perform(self, args: NoArgs) -> None:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(2.5)
            with lock:
                running -= 1

    queue = activejob.configure(sqlite_url, concurrency=45, lease=1.5, poll_interval=0.05)
    try:
        handles = Busy.perform_all_later([{}] * 45)
        queue.run_until_idle()
        infos = [h.info() for h in handles]
        assert peak == 45
        assert all((i.status, i.attempts) == ("completed", 1) for i in infos), "no lease ran out"
        assert not [e for h in handles for e in queue.events(h.id) if e.type in ("retrying", "requeued")]
    finally:
        JobQueue.reset()


def test_a_job_whose_outcome_is_being_written_has_nothing_left_to_stop(
        queue: JobQueue, caplog: pytest.LogCaptureFixture) -> None:
    """A heartbeat that ran while an outcome was being written finds the job's lease gone
    (the outcome's commit ended it) and reports it lost; a cancel may come just as late.
    The job is done, not stopped: no "lost the lease" report, its outcome stands."""
    import threading

    import anyio

    @job("regress_decided")
    class Quick(BaseJob[NoArgs]):
        def perform(self, args: NoArgs) -> str:
            return "done"

    queue.start()
    try:
        runner = queue._runner
        assert runner is not None and runner.store is not None
        facade, gate, writing = runner.store, threading.Event(), threading.Event()
        finish = facade.finish

        async def held_finish(*args: Any, **kwargs: Any) -> Any:  # the real write, once let through
            writing.set()
            await anyio.to_thread.run_sync(gate.wait)
            return await finish(*args, **kwargs)

        facade.finish = held_finish  # type: ignore[method-assign]
        handle = Quick.perform_later()
        assert writing.wait(10)
        for reason in ("lease_lost", "cancel"):
            runner._soon(lambda reason=reason: runner.stop_job(handle.id, reason))  # type: ignore[misc]
        time.sleep(1.0)  # twice the cancel grace a stopped sync job would get
        gate.set()
        info = handle.wait(timeout=10)
    finally:
        queue.stop(timeout=10)
    assert (info.status, info.result) == ("completed", "done")
    assert not [r for r in caplog.records if "lost the job's lease" in r.getMessage() or "cancelled" in r.getMessage()]
