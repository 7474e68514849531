"""A SQLite worker whose claims look first (after one walked long past a backlog of a job
type it does not import) drains its own jobs all the same: its claims and refills go to a
thread, off its event loop, since such a look may take a while."""

from __future__ import annotations

import pytest
from runner_support import job_info

from activejob import BaseJob, JobQueue, NoArgs, clock, job
from activejob.store import NewJob, claim


@pytest.fixture
def sqlite_queue(sqlite_url: str) -> JobQueue:
    return JobQueue.configure(sqlite_url, poll_interval=0.05, concurrency=4)


def test_a_worker_drains_its_jobs_behind_a_backlog_it_cannot_run_looking_first(
        sqlite_queue: JobQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claim, "LONG_LOOK", -1)  # every claim counts as long: look first from the first on

    @job("long_looks_known", schema=NoArgs, max_retries=0)
    class Known(BaseJob[NoArgs]):
        def perform(self, args: NoArgs) -> None:
            return None

    earlier = clock.now().replace(year=2020)
    sqlite_queue.store.enqueue([NewJob(name="long_looks_unknown", args="{}", queue="default", priority=0,
                                                       max_retries=0, run_at=earlier)] * 2_000, clock.now())
    handles = Known.perform_all_later([{}] * 40)

    sqlite_queue.run_until_idle()

    assert {job_info(sqlite_queue, h.id).status for h in handles} == {"completed"}
    assert sqlite_queue.store.looks_first()
    assert sqlite_queue.stats()["pending"] == 2_000
