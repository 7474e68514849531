"""On SQLite, once a claim of a limited type has walked the due index long past other types'
due jobs (SQLite has no index by type), the next ones look for their jobs in a read
transaction, then take them in the write transaction: under the one write lock that walk
would hold back every enqueue and outcome of every process meanwhile. A look that does not
walk stays in the one transaction. Counted in SQLite's steps (`steps.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from activejob import clock
from activejob.store import Outcome, claim

from .contract import LEASE, NAME, NOW, Jobs, at
from .steps import counting

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's alone

BACKLOG = 5_000
OTHER = "other_job"


def claim_limited(jobs: Jobs, **options: Any) -> list[Any]:
    return jobs.store.claim_general(worker_id="w1", names=[NAME], queues=None, limit=2, now=NOW, lease=LEASE,
                                    limits={NAME: 1}, **options).claimed


def steps_locked(jobs: Jobs) -> tuple[int, int]:
    """Hundreds of steps of one limited claim that takes one job (then completed, so the
    limit has room again): under the write lock, and in all."""
    with counting(jobs.store) as steps:
        taken = claim_limited(jobs)
    assert len(taken) == 1
    jobs.store.finish([Outcome(job_id=c.id, token=c.lease_token, status="completed", event="completed")
                       for c in taken], NOW)
    return steps.locked, steps.hundreds


def test_a_limited_claim_that_does_not_walk_keeps_to_one_transaction(jobs: Jobs) -> None:
    jobs.add(2, name=NAME)
    assert len(claim_limited(jobs)) == 1
    assert not jobs.store.looks_first()


def test_after_a_long_walk_a_limited_claim_walks_other_types_backlog_outside_the_write_lock(
        jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claim, "LONG_LOOK", 2)  # 2,000 steps: the walk past BACKLOG jobs (~30,000) is long
    jobs.add(name=NAME)
    alone, _ = steps_locked(jobs)
    assert not jobs.store.looks_first()

    jobs.add(BACKLOG, name=OTHER, run_at=at(-60))  # due before it, of a type the claim does not take
    jobs.add(name=NAME)
    first_locked, _ = steps_locked(jobs)  # walks under the lock, once
    assert jobs.store.looks_first()
    jobs.add(name=NAME)
    locked, total = steps_locked(jobs)

    assert first_locked > 10 * alone, "the first look walked under the lock"
    assert total > 10 * locked, f"the look ran under the lock: {locked} of {total} hundred steps"
    assert locked < 2 * alone + 5, f"{locked} hundred steps under the lock behind {BACKLOG} jobs, {alone} without"


def test_limited_looks_that_still_walk_long_keep_looking_first(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claim, "LONG_LOOK", 2)
    seconds = [1_000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: seconds[0])
    jobs.add(BACKLOG, name=OTHER, run_at=at(-60))
    jobs.add(name=NAME)
    steps_locked(jobs)  # walks under the lock: look first from now
    seconds[0] += claim.LOOK_FIRST_FOR - 1
    jobs.add(name=NAME)
    steps_locked(jobs)  # looks first, and still walks long
    seconds[0] += claim.LOOK_FIRST_FOR - 1
    assert jobs.store.looks_first()


def test_a_job_taken_between_the_look_and_the_write_is_not_claimed_twice(jobs: Jobs) -> None:
    first, second = jobs.add(2, name=NAME)
    store = jobs.store
    store._look_first_until = float("inf")
    look = store._look

    def look_then_another_claims(c: Any, *args: Any) -> Any:
        found = look(c, *args)
        taken = store.claim(worker_id="w2", names=[NAME], queues=None, limit=1, now=NOW, lease=LEASE)[0]
        assert [t.id for t in taken] == [first]
        return found

    store._look = look_then_another_claims  # type: ignore[method-assign]
    got = store.claim_general(worker_id="w1", names=[NAME], queues=None, limit=2, now=NOW, lease=LEASE,
                              limits={NAME: 5}).claimed

    assert [c.id for c in got] == [second]
    assert jobs.get(first).worker_id == "w2"


def test_a_limit_filled_between_the_look_and_the_write_holds(jobs: Jobs) -> None:
    jobs.add(2, name=NAME)
    store = jobs.store
    store._look_first_until = float("inf")
    look = store._look

    def look_then_one_starts(c: Any, *args: Any) -> Any:
        found = look(c, *args)
        store.claim(worker_id="w2", names=[NAME], queues=None, limit=1, now=NOW, lease=LEASE)
        return found

    store._look = look_then_one_starts  # type: ignore[method-assign]
    got = store.claim_general(worker_id="w1", names=[NAME], queues=None, limit=2, now=NOW, lease=LEASE,
                              limits={NAME: 1}).claimed

    assert got == []  # the limit of one is taken by w2's job, counted again in the write transaction
