"""On SQLite, a worker of named queues seeks to its queues' due jobs (the named-queue index,
migration 0009) instead of walking the due index past the default queue's backlog, in the
fast claim and in the general one alike; the default queue's jobs, most of them, have no
entry in that index.

The work a claim does is counted in SQLite's virtual-machine steps (a progress handler),
which, unlike a timing, does not move with the machine's load."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from activejob.store import Store

from .contract import LEASE, NAME, NOW, Jobs, at

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's alone

BACKLOG = 5_000


class Steps:
    """Hundreds of steps SQLite ran on the connections given to `watch`."""

    def __init__(self) -> None:
        self.hundreds = 0

    def _step(self) -> int:
        self.hundreds += 1
        return 0  # go on

    def watch(self, dbapi_connection: Any, _record: Any = None) -> None:
        dbapi_connection.set_progress_handler(self._step, 100)


@contextmanager
def counting(store: Store) -> Iterator[Steps]:
    """Count the steps of the store's write connection (the fast paths) and of every pooled
    connection opened meanwhile (the general path's)."""
    steps = Steps()
    with store._sqlite_tx():  # opens the write connection if it is not yet
        pass
    hot = store._hot.connection
    steps.watch(hot)
    store.engine.dispose()
    event.listen(store.engine, "connect", steps.watch)
    try:
        yield steps
    finally:
        event.remove(store.engine, "connect", steps.watch)
        store.engine.dispose()
        hot.set_progress_handler(None, 0)


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
