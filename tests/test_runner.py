"""The runner: the ways to run it, claiming, concurrency, bad rows, status and logs."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import jobs_for_workers as wk
import pytest
from pydantic import BaseModel
from runner_support import sql, wait_for

import activejob
from activejob import BaseJob, JobQueue, job


class N(BaseModel):
    n: int = 0



def _double() -> type[BaseJob[N]]:
    @job("rt_double", schema=N)
    class Double(BaseJob[N]):
        async def perform(self, args: N) -> int:
            return args.n * 2

    return Double


# -- ways to run --------------------------------------------------------------------------


def test_run_until_idle_runs_due_jobs_and_returns(queue: JobQueue) -> None:
    double = _double()
    handles = [double.perform_later(n=i) for i in range(5)]
    queue.run_until_idle()
    assert [queue.get_job(h.id).result for h in handles] == [0, 2, 4, 6, 8]  # type: ignore[union-attr]
    assert queue.state == "stopped"


def test_arun_until_idle_runs_due_jobs(queue: JobQueue) -> None:
    double = _double()

    async def main() -> list[Any]:
        handles = [await double.aperform_later(n=i) for i in range(3)]
        await queue.arun_until_idle()
        return [queue.get_job(h.id).result for h in handles]  # type: ignore[union-attr]

    assert anyio.run(main) == [0, 2, 4]


def test_start_and_stop_run_jobs_on_a_background_thread(queue: JobQueue) -> None:
    double = _double()
    queue.start()
    try:
        assert queue.status()["running"]
        handle = double.perform_later(n=21)
        assert handle.wait(timeout=20).result == 42
    finally:
        queue.stop(timeout=20)
    assert queue.state == "stopped"
    assert not queue.status()["running"]
    assert queue.workers() == []  # it unregistered


def test_async_with_queue_runs_jobs_for_the_lifespan(queue: JobQueue) -> None:
    double = _double()

    async def lifespan() -> Any:
        async with queue:
            assert queue.status()["running"]
            handle = await double.aperform_later(n=5)
            info = await handle.await_finished(timeout=20)
        return info.result, queue.state

    result, state = anyio.run(lifespan)
    assert result == 10
    assert state == "stopped"


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("module", [True, False], ids=["python-m", "console-script"])
def test_worker_command_runs_jobs_of_its_queues(db_url: str, workers: Any, module: bool) -> None:
    queue = activejob.configure(db_url)
    try:
        in_a = wk.WkQuick.set(queue="a").perform_later(n=1)
        in_b = wk.WkQuick.set(queue="b").perform_later(n=2)
        in_c = wk.WkQuick.set(queue="c").perform_later(n=3)
        worker = workers.start(db_url, "--concurrency", "3", "--queues", "a,b", module=module)
        assert in_a.wait(timeout=20).result["pid"] == worker.pid
        assert in_b.wait(timeout=20).result["pid"] == worker.pid
        live = wait_for(queue.workers, what="the worker to register")
        assert [(w.pid, w.concurrency, sorted(w.queues or [])) for w in live] == [(worker.pid, 3, ["a", "b"])]
        assert "wk_quick" in live[0].job_types
        assert in_c.status == "pending"
        worker.signal(15)
        assert worker.wait() == 0
    finally:
        JobQueue.reset()


# -- claiming -----------------------------------------------------------------------------


def test_claims_highest_priority_first_then_oldest(db_url: str) -> None:
    queue = activejob.configure(db_url, poll_interval=0.05, concurrency=1)
    order: list[int] = []

    @job("rt_ordered", schema=N)
    class Ordered(BaseJob[N]):
        async def perform(self, args: N) -> None:
            order.append(args.n)

    try:
        for n, priority in [(1, 0), (2, 5), (3, 0), (4, 10), (5, 5), (6, -1)]:
            Ordered.set(priority=priority).perform_later(n=n)
        queue.run_until_idle()
    finally:
        JobQueue.reset()
    assert order == [4, 2, 5, 1, 3, 6]


def test_claims_only_due_jobs(queue: JobQueue) -> None:
    double = _double()
    later = double.perform_in(3600, n=1)
    now = double.perform_later(n=2)
    queue.run_until_idle()
    assert now.status == "completed"
    assert later.status == "pending"
    assert queue.stats()["scheduled"] == 1


@pytest.mark.timeout(120)
def test_a_job_is_never_claimed_twice_by_competing_workers(db_url: str) -> None:
    queue = activejob.configure(db_url, poll_interval=0.02, concurrency=4, lease=5)
    other = JobQueue(db_url, poll_interval=0.02, concurrency=4, lease=5)
    third = JobQueue(db_url, poll_interval=0.02, concurrency=4, lease=5)
    try:
        handles = wk.WkQuick.perform_all_later([{"n": i} for i in range(150)])
        for q in (queue, other, third):
            q.start()
        wait_for(lambda: queue.stats()["completed"] == 150, 60, what="all jobs to complete")
    finally:
        for q in (other, third):
            q.close()
        JobQueue.reset()
    check = JobQueue(db_url)
    try:
        started = check.store.events(types=["started"], limit=10_000)
        assert sorted(e.job_id for e in started) == sorted(h.id for h in handles)
        assert {j.attempts for j in check.list_jobs(limit=1000)} == {1}
    finally:
        check.close()


def test_unknown_job_type_stays_pending_and_is_reported(queue: JobQueue) -> None:
    @job("rt_elsewhere", schema=N)
    class Elsewhere(BaseJob[N]):
        async def perform(self, args: N) -> None:
            return None

    double = _double()
    orphan = Elsewhere.perform_later(n=1)
    activejob.registry.remove("rt_elsewhere")  # only some other process knows it
    queue.start()
    try:
        assert double.perform_later(n=1).wait(timeout=20).status == "completed"
        assert queue.stats()["unknown_job_types"] == {"rt_elsewhere": 1}
        assert orphan.status == "pending"
        assert queue.get_job(orphan.id).attempts == 0  # type: ignore[union-attr]
    finally:
        queue.stop(timeout=20)


def test_in_process_enqueue_wakes_the_worker_at_once(db_url: str) -> None:
    queue = activejob.configure(db_url, poll_interval=60, watch=False)
    double = _double()
    try:
        queue.start()
        wait_for(lambda: queue.status()["running"])
        time.sleep(0.2)  # let the first (empty) poll pass, so only a wake-up can find the job
        started = time.monotonic()
        handle = double.perform_later(n=1)
        handle.wait(timeout=20)
        assert time.monotonic() - started < 10  # far below the 60 s poll interval
    finally:
        JobQueue.reset()


def test_an_enqueue_in_another_process_wakes_the_worker(db_url: str) -> None:
    """NOTIFY on PostgreSQL, PRAGMA data_version on SQLite: no waiting for the next poll."""
    queue = activejob.configure(db_url, poll_interval=60)
    other = JobQueue(db_url)  # writes like another process would: it never wakes `queue` itself
    double = _double()
    try:
        queue.start()
        time.sleep(0.2)  # let the first (empty) poll pass, so only a wake-up can find the job
        started = time.monotonic()
        [handle] = other.enqueue([double.set().request(N(n=3), max_args_bytes=other.max_args_bytes)])
        assert handle.wait(timeout=20).result == 6
        assert time.monotonic() - started < 10  # far below the 60 s poll interval
    finally:
        other.close()
        JobQueue.reset()


# -- concurrency --------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
def test_runs_up_to_concurrency_jobs_at_once(db_url: str, concurrency: int) -> None:
    queue = activejob.configure(db_url, poll_interval=0.05, concurrency=concurrency)
    state = {"active": 0, "max": 0}

    @job("rt_barrier", schema=N)
    class Barrier(BaseJob[N]):
        async def perform(self, args: N) -> None:
            state["active"] += 1
            state["max"] = max(state["max"], state["active"])
            with anyio.move_on_after(5):  # wait for the others to arrive (a barrier)
                while state["active"] < concurrency:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            state["active"] -= 1

    try:
        Barrier.perform_all_later([{"n": i} for i in range(concurrency * 3)])
        queue.run_until_idle()
        assert queue.stats()["completed"] == concurrency * 3
    finally:
        JobQueue.reset()
    assert state["max"] == concurrency


def test_sync_perform_runs_in_a_thread_and_does_not_block_the_loop(db_url: str) -> None:
    queue = activejob.configure(db_url, poll_interval=0.05, concurrency=2)
    released = threading.Event()
    threads: dict[str, int] = {}

    @job("rt_sync_waiter", schema=N, priority=10)
    class SyncWaiter(BaseJob[N]):
        def perform(self, args: N) -> bool:
            threads["sync"] = threading.get_ident()
            return released.wait(15)  # blocks its thread until the async job runs

    @job("rt_async_releaser", schema=N)
    class AsyncReleaser(BaseJob[N]):
        async def perform(self, args: N) -> None:
            threads["async"] = threading.get_ident()
            released.set()

    try:
        waiter = SyncWaiter.perform_later()
        AsyncReleaser.perform_later()
        queue.run_until_idle()
        assert waiter.result is True
    finally:
        JobQueue.reset()
    assert threads["sync"] != threads["async"]


# -- bad rows -----------------------------------------------------------------------------


def test_corrupt_args_row_fails_at_once_and_the_worker_goes_on(queue: JobQueue, db_url: str) -> None:
    double = _double()
    bad = double.perform_later(n=1)
    good = double.perform_later(n=2)
    sql(db_url, "UPDATE activejob_jobs SET args = :garbage WHERE id = :id", garbage="{not json!!", id=bad.id)
    queue.run_until_idle()
    info = queue.get_job(bad.id)
    assert info is not None
    assert info.status == "failed"
    assert info.attempts == 1  # not retried, though max_retries is 3
    assert "rt_double" in (info.error or "")
    assert "invalid" in (info.error or "").lower()
    assert good.status == "completed"
    assert [e.type for e in queue.events(bad.id)] == ["enqueued", "started", "failed"]


def test_args_that_no_longer_fit_the_schema_fail_at_once_naming_the_field(queue: JobQueue) -> None:
    class V1(BaseModel):
        n: int

    class V2(BaseModel):
        n: int
        email: str

    def define(schema: type[BaseModel]) -> Any:
        @job("rt_versioned", schema=schema)
        class Versioned(BaseJob[Any]):
            async def perform(self, args: Any) -> str:
                return "ran"

        return Versioned

    old = define(V1).perform_later(n=1)
    define(V2)  # the code changed while the job waited
    good = _double().perform_later(n=4)
    queue.run_until_idle()
    info = queue.get_job(old.id)
    assert info is not None and info.status == "failed"
    assert info.attempts == 1
    assert "rt_versioned" in (info.error or "") and "email" in (info.error or "")
    assert good.result == 8


# -- status and logs ----------------------------------------------------------------------


def test_status_describes_the_running_worker(queue: JobQueue, tmp_path: Path) -> None:
    release = tmp_path / "release"
    assert queue.status()["running"] is False
    queue.start()
    try:
        handle = wk.WkBlock.perform_later(release=str(release))
        wait_for(lambda: queue.status()["in_flight"] == 1)
        status = queue.status()
        assert status["running"] is True
        assert status["state"] == "running"
        assert status["worker_id"] and status["worker_id"] in {w.id for w in queue.workers()}
        assert status["concurrency"] == 10
        assert status["jobs_in_flight"] == [handle.id]
        assert status["uptime"] >= 0
        assert "wk_block" in status["job_types"]
        release.touch()
        handle.wait(timeout=20)
        wait_for(lambda: queue.status()["completed"] == 1)
        assert queue.status()["in_flight"] == 0
    finally:
        queue.stop(timeout=20)


def test_worker_logs_retries_and_failures(queue: JobQueue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="activejob")

    @job("rt_flaky_logged", schema=N, max_retries=1, backoff=0)
    class Flaky(BaseJob[N]):
        async def perform(self, args: N) -> None:
            raise ValueError("boom")

    handle = Flaky.perform_later()
    queue.run_until_idle()
    assert handle.status == "failed"
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("activejob")]
    assert any(level == logging.WARNING and f"rt_flaky_logged #{handle.id} attempt 1 failed" in m
               and "retrying" in m for level, m in messages), messages
    assert any(level == logging.ERROR and f"rt_flaky_logged #{handle.id} failed after 2 attempt(s)" in m
               and "boom" in m for level, m in messages), messages


# -- retention ----------------------------------------------------------------------------


def test_finished_jobs_past_their_retention_are_pruned(db_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from freezegun import freeze_time

    queue = activejob.configure(db_url, poll_interval=0.05, retention={"completed": 3600})
    double = _double()

    @job("rt_fails_kept", schema=N, max_retries=0)
    class FailsKept(BaseJob[N]):
        async def perform(self, args: N) -> None:
            raise ValueError("kept a week")

    try:
        with freeze_time(datetime(2030, 1, 1, tzinfo=UTC)) as frozen:
            done = double.perform_later(n=1)
            failed = FailsKept.perform_later()
            later = double.perform_in(timedelta(days=30), n=2)
            queue.run_until_idle()
            frozen.tick(3599)
            assert queue.prune() == 0
            frozen.tick(2)
            assert queue.prune() == 1
            assert queue.get_job(done.id) is None
            assert queue.events(done.id) == []
            assert failed.status == "failed"  # default retention: 7 days
            assert later.status == "pending"  # not finished: never pruned
            frozen.tick(timedelta(days=7))
            assert queue.prune() == 1
            assert queue.get_job(failed.id) is None
    finally:
        JobQueue.reset()


def test_the_worker_prunes_as_part_of_its_maintenance(db_url: str) -> None:
    from datetime import UTC, datetime

    from freezegun import freeze_time

    queue = activejob.configure(db_url, poll_interval=0.05, retention={"completed": 60})
    double = _double()
    try:
        with freeze_time(datetime(2030, 1, 1, tzinfo=UTC)) as frozen:
            old = double.perform_later(n=1)
            queue.run_until_idle()
            frozen.tick(61)
            new = double.perform_later(n=2)
            queue.run_until_idle()
            assert queue.get_job(old.id) is None
            assert new.status == "completed"
    finally:
        JobQueue.reset()


def test_prune_command(db_url: str) -> None:
    import subprocess
    import sys

    from runner_support import ROOT

    queue = activejob.configure(db_url, poll_interval=0.05)
    double = _double()
    try:
        old, recent = double.perform_later(n=1), double.perform_later(n=2)
        queue.run_until_idle()
        sql(db_url, "UPDATE activejob_jobs SET finished_at = :when WHERE id = :id",
            when=datetime_days_ago(db_url, 8), id=old.id)
        out = subprocess.run([sys.executable, "-m", "activejob", "prune", "--database-url", db_url],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "pruned 1 job(s)"
        assert queue.get_job(old.id) is None
        assert recent.status == "completed"
    finally:
        JobQueue.reset()


def datetime_days_ago(url: str, days: int) -> Any:
    from datetime import UTC, datetime, timedelta

    when = datetime.now(UTC) - timedelta(days=days)
    return when.replace(tzinfo=None) if url.startswith("sqlite") else when  # SQLite keeps naive UTC


def test_job_ids_are_never_reused_after_delete_or_prune(queue: JobQueue) -> None:
    double = _double()
    first = double.perform_later(n=1)
    queue.run_until_idle()
    queue.delete(first.id)
    second = double.perform_later(n=2)
    assert second.id > first.id
    deleted = [e for e in queue.events() if e.type == "deleted"]
    assert [e.job_id for e in deleted] == [first.id]
    assert [e.type for e in queue.events(second.id)] == ["enqueued"]
    with pytest.raises(activejob.JobNotFound):
        first.info()
