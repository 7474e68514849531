"""On SQLite, a worker of named queues seeks to its queues' due jobs (the named-queue index,
migration 0009) instead of walking the due index past the default queue's backlog, in the
fast claim and in the general one alike; the default queue's jobs, most of them, have no
entry in that index. The work a claim does is counted in SQLite's steps (`steps.py`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .contract import LEASE, NAME, NOW, Jobs, at
from .steps import counting

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's alone

BACKLOG = 5_000


def fast_claim(jobs: Jobs) -> list[Any]:
    return jobs.claim(1, queues=["mail"])


def general_claim(jobs: Jobs) -> list[Any]:
    return jobs.store.claim_general(worker_id="w1", names=[NAME], queues=["mail"], limit=1, now=NOW, lease=LEASE,
                                    limits={NAME: 5}).claimed


def steps_of(jobs: Jobs, claim: Callable[[Jobs], list[Any]]) -> int:
    with counting(jobs.store) as steps:
        assert len(claim(jobs)) == 1
    return steps.hundreds


@pytest.mark.parametrize("claim", [fast_claim, general_claim], ids=["fast", "general"])
def test_a_claim_of_a_named_queue_does_not_walk_the_default_queues_backlog(
        jobs: Jobs, claim: Callable[[Jobs], list[Any]]) -> None:
    jobs.add(2, queue="mail")
    alone = steps_of(jobs, claim)

    jobs.add(BACKLOG, queue="default", run_at=at(-60))  # ahead of the mail job in claim order
    behind = steps_of(jobs, claim)

    assert behind < 2 * alone + 5, f"{behind} hundred steps behind {BACKLOG} default jobs, {alone} without them"


def test_a_worker_of_named_queues_and_the_default_one_takes_from_both_behind_a_backlog(jobs: Jobs) -> None:
    jobs.add(BACKLOG, queue="default", run_at=at(-60))
    mail = jobs.add(queue="mail", priority=5)[0]
    urgent = jobs.add(queue="default", priority=9)[0]

    assert [c.id for c in jobs.claim(2, queues=["default", "mail"])] == sorted([mail, urgent])


def test_the_default_queues_jobs_have_no_entry_in_the_named_queue_index(jobs: Jobs) -> None:
    jobs.add(3, queue="default")
    jobs.add(2, queue="mail")
    count = ("SELECT count(*) FROM activejob_jobs INDEXED BY ix_activejob_jobs_named_queue_due "
             "WHERE status = 'pending' AND queue <> 'default'")
    with jobs.store.engine.connect() as conn:
        entries = conn.exec_driver_sql(count).scalar()
        plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {count}"))
    assert entries == 2
    assert "ix_activejob_jobs_named_queue_due" in plan
