"""On SQLite, a worker of named queues seeks to its queues' due jobs (the named-queue index,
migration 0009) instead of walking the due index past the default queue's backlog; the
default queue's jobs, most of them, have no entry in that index.

The work a claim does is counted in SQLite's virtual-machine steps (a progress handler),
which, unlike a timing, does not move with the machine's load."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from activejob.store import Store

from .contract import LEASE, NAME, NOW, Jobs, at

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's alone

BACKLOG = 5_000


@contextmanager
def counting_steps(store: Store) -> Iterator[list[int]]:
    """Count, in hundreds, the steps SQLite runs on the store's write connection meanwhile."""
    with store._sqlite_tx():  # opens the write connection if it is not yet
        pass
    conn = store._hot.connection
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0  # go on

    conn.set_progress_handler(step, 100)
    try:
        yield steps
    finally:
        conn.set_progress_handler(None, 0)


def claim_steps(jobs: Jobs, queues: list[str]) -> int:
    with counting_steps(jobs.store) as steps:
        claimed = jobs.claim(1, queues=queues)
    assert len(claimed) == 1
    return steps[0]


def test_a_worker_of_a_named_queue_does_not_walk_the_default_queues_backlog(jobs: Jobs) -> None:
    jobs.add(2, queue="mail")
    alone = claim_steps(jobs, ["mail"])

    jobs.add(BACKLOG, queue="default", run_at=at(-60))  # ahead of the mail job in claim order
    behind = claim_steps(jobs, ["mail"])

    assert behind < 2 * alone + 5, f"{behind} hundred steps behind {BACKLOG} default jobs, {alone} without them"


def test_a_worker_of_named_queues_and_the_default_one_takes_from_both_behind_a_backlog(jobs: Jobs) -> None:
    jobs.add(BACKLOG, queue="default", run_at=at(-60))
    mail = jobs.add(queue="mail", priority=5)[0]
    urgent = jobs.add(queue="default", priority=9)[0]

    assert [c.id for c in jobs.claim(2, queues=["default", "mail"])] == sorted([mail, urgent])


def test_the_default_queues_jobs_have_no_entry_in_the_named_queue_index(jobs: Jobs) -> None:
    jobs.add(3, queue="default")
    jobs.add(2, queue="mail")
    with jobs.store.engine.connect() as conn:
        entries = conn.exec_driver_sql(
            "SELECT count(*) FROM activejob_jobs INDEXED BY ix_activejob_jobs_named_queue_due "
            "WHERE status = 'pending' AND queue <> 'default'").scalar()
        plan = " ".join(str(row) for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM activejob_jobs INDEXED BY ix_activejob_jobs_named_queue_due "
            "WHERE status = 'pending' AND queue <> 'default'"))
    assert entries == 2
    assert "ix_activejob_jobs_named_queue_due" in plan



@contextmanager
def counting_general_steps(store: Store) -> Iterator[list[int]]:
    """Count, in hundreds, the steps SQLite runs on the store's pooled connections meanwhile
    (where the general path writes): every connection opened from now on is counted."""
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0

    def counted(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_progress_handler(step, 100)

    store.engine.dispose()
    event.listen(store.engine, "connect", counted)
    try:
        yield steps
    finally:
        event.remove(store.engine, "connect", counted)
        store.engine.dispose()


def general_claim_steps(jobs: Jobs) -> int:
    with counting_general_steps(jobs.store) as steps:
        claimed = jobs.store.claim_general(worker_id="w1", names=[NAME], queues=["mail"], limit=1, now=NOW,
                                           lease=LEASE, limits={NAME: 5}).claimed
    assert len(claimed) == 1
    return steps[0]


def test_the_general_claim_of_a_named_queue_does_not_walk_the_default_queues_backlog(jobs: Jobs) -> None:
    jobs.add(2, queue="mail")
    alone = general_claim_steps(jobs)

    jobs.add(BACKLOG, queue="default", run_at=at(-60))
    behind = general_claim_steps(jobs)

    assert behind < 2 * alone + 5, f"{behind} hundred steps behind {BACKLOG} default jobs, {alone} without them"
