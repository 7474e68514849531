"""A PostgreSQL worker whose jobs wait behind a big due backlog of types it does not run
(a deploy that added a type while old workers run, workers split by type) claims its own
from each type's index, and says so in its log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import text

import activejob
from activejob import BaseJob, JobQueue, NoArgs, job
from activejob.definition import registry
from activejob.store.facade import PER_TYPE_AFTER

pytestmark = pytest.mark.postgres


@job("by_type_noop", schema=NoArgs)
class Noop(BaseJob[NoArgs]):
    def perform(self, args: NoArgs) -> None:
        return None


@pytest.fixture
def queue(pg_url: str) -> Iterator[JobQueue]:
    q = activejob.configure(pg_url)
    yield q
    JobQueue.reset()


def past_the_threshold() -> int:
    """Due jobs of other types that outnumber PER_TYPE_AFTER per type this worker runs (every
    type this test process has defined)."""
    return PER_TYPE_AFTER * len(registry) + 1


def backlog(queue: JobQueue, name: str, count: int) -> None:
    """`count` due jobs of `name`, older than anything enqueued after."""
    with queue.store.engine.begin() as c:
        c.execute(text(
            "INSERT INTO activejob_jobs (name, queue, priority, status, args, attempts, max_retries, run_at,"
            " created_at, cancel_requested) SELECT :name, 'default', 0, 'pending', '{}', 0, 0,"
            " now() - interval '1 hour', now(), false FROM generate_series(1, :count)"), {"name": name, "count": count})


def test_a_worker_behind_a_backlog_of_other_types_claims_by_type(queue: JobQueue,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="activejob")
    backlog(queue, "deployed_elsewhere", past_the_threshold())
    handles = Noop.perform_all_later([{}] * 20)
    queue.run_until_idle()
    assert {h.status for h in handles} == {"completed"}
    assert queue.stats()["pending"] == past_the_threshold()  # theirs are left for their workers
    assert any("claims read each job type's own index" in r.getMessage() for r in caplog.records)


def test_a_worker_with_no_such_backlog_walks_the_due_jobs(queue: JobQueue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="activejob")
    backlog(queue, "deployed_elsewhere", PER_TYPE_AFTER // 2)
    handles = Noop.perform_all_later([{}] * 20)
    queue.run_until_idle()
    assert {h.status for h in handles} == {"completed"}
    assert not any("own index" in r.getMessage() for r in caplog.records)
