"""`@job(concurrency_limit=N)`: at most N jobs of a type run at once, over all workers;
the others wait, pending, and jobs of other types are not held back."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from runner_support import Workers, sql, wait_for

import activejob
from activejob import BaseJob, ConfigurationError, JobQueue, job


class Pause(BaseModel):
    seconds: float = 0.05


running: dict[str, int] = {}
peak: dict[str, int] = {}


async def _hold(name: str, seconds: float) -> None:
    running[name] = running.get(name, 0) + 1
    peak[name] = max(peak.get(name, 0), running[name])
    try:
        await anyio.sleep(seconds)
    finally:
        running[name] -= 1


@pytest.fixture(autouse=True)
def _counters() -> None:
    running.clear()
    peak.clear()


def test_concurrency_limit_must_be_a_whole_number_of_at_least_one() -> None:
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigurationError, match="bad_limit: concurrency_limit must be a whole number"):
            job("bad_limit", concurrency_limit=bad)


def test_the_limit_is_part_of_the_job_types_description() -> None:
    @job("described_limit", concurrency_limit=3)
    class Described(BaseJob[Any]):
        async def perform(self, args: Any) -> None: ...

    assert Described.options.describe()["concurrency_limit"] == 3


def test_at_most_the_limit_of_a_type_runs_at_once(db_url: str) -> None:
    @job("limited_two", schema=Pause, concurrency_limit=2)
    class LimitedTwo(BaseJob[Pause]):
        async def perform(self, args: Pause) -> None:
            await _hold("limited_two", args.seconds)

    queue = activejob.configure(db_url, concurrency=8, poll_interval=0.05)
    try:
        LimitedTwo.perform_all_later([{"seconds": 0.05}] * 8)
        queue.run_until_idle()
        assert peak["limited_two"] == 2
        assert queue.stats()["completed"] == 8
    finally:
        JobQueue.reset()


def test_a_limited_type_does_not_hold_back_other_types(db_url: str) -> None:
    @job("limited_slow", schema=Pause, concurrency_limit=1, priority=10)
    class Slow(BaseJob[Pause]):
        async def perform(self, args: Pause) -> None:
            await _hold("limited_slow", args.seconds)

    @job("unlimited_quick", schema=Pause)
    class Quick(BaseJob[Pause]):
        async def perform(self, args: Pause) -> None:
            await _hold("unlimited_quick", args.seconds)

    queue = activejob.configure(db_url, concurrency=4, poll_interval=0.05)
    try:
        slow = Slow.perform_all_later([{"seconds": 0.3}] * 3)
        quick = Quick.perform_all_later([{"seconds": 0.01}] * 6)
        queue.run_until_idle()
        second_slow_start = min(h.info().started_at for h in slow[1:])
        assert all(h.info().finished_at < second_slow_start for h in quick), \
            "the quick jobs ran beside the first slow one, not after the slow ones"
        assert peak["limited_slow"] == 1
    finally:
        JobQueue.reset()


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_workers_in_other_processes_share_one_limit(pg_url: str, workers: Workers, tmp_path: Path) -> None:
    import limited_jobs  # here, not at the top: see its docstring

    log = tmp_path / "limited.log"
    # Three workers that run one job at a time: two jobs at once means two processes ran them,
    # and never three means they kept the one limit (with four slots each, one worker that
    # refills its slots first could take every job, and the test could not tell).
    for _ in range(3):
        workers.start(pg_url, "--concurrency", "1", imports="tests.limited_jobs", poll_interval=0.2)
    queue = JobQueue(pg_url, auto_migrate=False)
    try:
        queue.enqueue([limited_jobs.LimitedRun.set().request({"n": n, "log": str(log), "seconds": 0.1},
                                                             max_args_bytes=10_000) for n in range(16)])
    finally:
        queue.close()
    done = "SELECT count(*) FROM activejob_jobs WHERE status = 'completed'"
    wait_for(lambda: sql(pg_url, done)[0][0] == 16, 60, interval=0.1, what="16 limited jobs completed")
    assert limited_jobs.most_at_once(str(log)) == 2
    pids = sql(pg_url, "SELECT count(DISTINCT data) FROM activejob_events WHERE type = 'started'")[0][0]
    assert pids >= 2, "the workers shared the jobs"


class Account(BaseModel):
    account: str
    seconds: float = 0.05


def test_a_concurrency_key_limits_each_key_on_its_own(db_url: str) -> None:
    @job("sync_account", schema=Account, concurrency_limit=1, concurrency_key=lambda args: args.account)
    class SyncAccount(BaseJob[Account]):
        async def perform(self, args: Account) -> None:
            await _hold(f"sync:{args.account}", args.seconds)
            await _hold("sync:any", 0)

    queue = activejob.configure(db_url, concurrency=8, poll_interval=0.05)
    try:
        handles = SyncAccount.perform_all_later([{"account": a} for a in "ab" * 4] + [{"account": "c"}])
        queue.run_until_idle()
        assert all(h.status == "completed" for h in handles)
        assert peak["sync:a"] == peak["sync:b"] == peak["sync:c"] == 1, "one at a time per account"
        starts = sorted((h.info().started_at, h.info().finished_at) for h in handles)
        assert any(s2 < f1 for (_s1, f1), (s2, _f2) in itertools.pairwise(starts)), \
            "different accounts ran side by side"
    finally:
        JobQueue.reset()


def test_a_full_key_does_not_hold_back_the_other_keys(db_url: str) -> None:
    @job("sync_first_key", schema=Account, concurrency_limit=1, concurrency_key=lambda args: args.account,
         priority=5)
    class Sync(BaseJob[Account]):
        async def perform(self, args: Account) -> None:
            await _hold(args.account, args.seconds)

    queue = activejob.configure(db_url, concurrency=2, poll_interval=0.05)
    try:
        busy = Sync.perform_all_later([{"account": "busy", "seconds": 0.2}] * 3)
        other = Sync.perform_later(account="other", seconds=0.01)
        queue.run_until_idle()
        assert other.info().finished_at < busy[1].info().started_at, "`other` ran beside the first `busy`"
    finally:
        JobQueue.reset()


def test_a_concurrency_key_needs_a_limit_and_a_function() -> None:
    with pytest.raises(ConfigurationError, match="concurrency_key takes a function of the arguments"):
        job("key_without_limit", concurrency_key=lambda args: "k")
    with pytest.raises(ConfigurationError, match="concurrency_key takes a function of the arguments"):
        job("key_not_callable", concurrency_limit=1, concurrency_key="account")


def test_a_key_function_that_fails_refuses_the_job_before_writing(queue: JobQueue) -> None:
    from activejob import JobArgumentsError

    @job("bad_key", schema=Account, concurrency_limit=1, concurrency_key=lambda args: {"a": 1}[args.account])
    class BadKey(BaseJob[Account]):
        async def perform(self, args: Account) -> None: ...

    with pytest.raises(JobArgumentsError, match="bad_key: concurrency_key raised KeyError"):
        BadKey.perform_later(account="zzz")
    assert queue.stats()["total"] == 0


def test_a_jobs_concurrency_key_is_part_of_what_is_read_back(queue: JobQueue) -> None:
    @job("keyed_readback", schema=Account, concurrency_limit=1, concurrency_key=lambda args: f"acct:{args.account}")
    class Keyed(BaseJob[Account]):
        async def perform(self, args: Account) -> None: ...

    handle = Keyed.set(unique_key="once").perform_later(account="42")
    info = handle.info()
    assert (info.concurrency_key, info.unique_key) == ("acct:42", "once")
    assert info.to_dict()["concurrency_key"] == "acct:42"
