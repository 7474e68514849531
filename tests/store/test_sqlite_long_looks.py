"""On SQLite, once a claim has walked long under the write lock (past due jobs its worker
cannot take: of types it does not import, say), the store's claims look for their jobs in
a read transaction first, which holds back no writer, and then take by id those still
pending and due. Work is counted in SQLite's steps (`steps.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from activejob import clock
from activejob.store import Outcome, claim
from activejob.store.dbapi import WouldBlock

from .contract import LEASE, NAME, NOW, Jobs, at
from .steps import counting

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's alone

BACKLOG = 5_000
OTHER = "other_job"


def completed(job: Any) -> Outcome:
    return Outcome(job_id=job.id, token=job.lease_token, status="completed", event="completed")


def test_a_short_claim_keeps_the_one_statement_claim(jobs: Jobs) -> None:
    jobs.add(3)
    assert len(jobs.claim(3)) == 3
    assert not jobs.store.looks_first()


def test_a_claim_past_a_backlog_it_cannot_take_makes_the_next_ones_look_first(jobs: Jobs) -> None:
    jobs.add(20_000, name=OTHER, run_at=at(-60))
    wanted = jobs.add()
    assert [c.id for c in jobs.claim(1)] == wanted
    assert jobs.store.looks_first()


def test_after_a_long_walk_a_claim_walks_outside_the_write_lock(jobs: Jobs, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    monkeypatch.setattr(claim, "LONG_LOOK", -1)  # any claim counts as long here
    jobs.add(BACKLOG, name=OTHER, run_at=at(-60))  # due before ours, of a type the worker does not run
    wanted = jobs.add(2)
    with counting(jobs.store) as first:
        assert [c.id for c in jobs.claim(1)] == wanted[:1]
    assert jobs.store.looks_first()

    with counting(jobs.store) as then:
        assert [c.id for c in jobs.claim(1)] == wanted[1:]

    assert first.locked > BACKLOG // 100, "the first claim walked under the lock"
    assert then.hundreds > 10 * then.locked, f"walked under the lock: {then.locked} of {then.hundreds} hundred steps"


def test_a_claim_that_looks_first_leaves_a_job_taken_meanwhile(jobs: Jobs) -> None:
    store = jobs.store
    store._look_first_until = float("inf")
    first, second = jobs.add(2)
    find = store._find

    def find_then_another_claims(*args: Any) -> list[int]:
        found = find(*args)
        store._look_first_until = float("-inf")  # w2 claims in one statement
        assert [c.id for c in jobs.claim(1, worker="w2")] == [first]
        store._look_first_until = float("inf")
        return found

    store._find = find_then_another_claims  # type: ignore[method-assign]
    assert [c.id for c in jobs.claim(2)] == [second]
    assert jobs.get(first).worker_id == "w2"


def test_a_claim_that_looks_first_keeps_out_jobs_no_longer_due_or_paused(jobs: Jobs) -> None:
    store = jobs.store
    store._look_first_until = float("inf")
    later = jobs.add(run_at=at(60))
    paused = jobs.add(queue="mail")
    due = jobs.add()
    store.pause_queue("mail", NOW)

    assert [c.id for c in jobs.claim(5)] == due
    assert jobs.get(later[0]).status == jobs.get(paused[0]).status == "pending"


def test_a_nowait_claim_that_would_look_first_is_left_for_a_thread(jobs: Jobs) -> None:
    jobs.store._look_first_until = float("inf")
    job_id = jobs.add()[0]
    with pytest.raises(WouldBlock):
        jobs.store.claim(worker_id="w1", names=[NAME], queues=None, limit=1, now=NOW, lease=LEASE, nowait=True)
    assert jobs.get(job_id).status == "pending"


def test_finish_and_claim_that_would_look_first_writes_nothing_when_it_may_not_wait(jobs: Jobs) -> None:
    running = jobs.running()
    jobs.add()
    jobs.store._look_first_until = float("inf")
    with pytest.raises(WouldBlock):
        jobs.store.finish_and_claim([completed(running[0])], NOW, worker_id="w1", names=[NAME], queues=None,
                                    limit=1, lease=LEASE, nowait=True)
    assert jobs.get(running[0].id).status == "running"


def test_finish_and_claim_that_looks_first_writes_the_outcomes_then_claims(jobs: Jobs) -> None:
    running = jobs.running()
    waiting = jobs.add()
    jobs.store._look_first_until = float("inf")
    done, _, claimed, started = jobs.store.finish_and_claim(
        [completed(running[0])], NOW, worker_id="w1", names=[NAME], queues=None, limit=1, lease=LEASE)

    assert done == {running[0].id}
    assert [c.id for c in claimed] == waiting
    assert [(e.type, e.job_id) for e in started] == [("started", waiting[0])]
    assert jobs.get(running[0].id).status == "completed"


def test_claims_that_still_walk_long_keep_looking_first(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    seconds = [1_000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: seconds[0])
    jobs.add(20_000, name=OTHER, run_at=at(-60))
    wanted = jobs.add(2)
    assert [c.id for c in jobs.claim(1)] == wanted[:1]  # walks long under the lock: look first from now
    seconds[0] += claim.LOOK_FIRST_FOR - 1
    assert [c.id for c in jobs.claim(1)] == wanted[1:]  # looks first, and still walks long
    seconds[0] += claim.LOOK_FIRST_FOR - 1
    assert jobs.store.looks_first(), "the walk would be back under the lock while the backlog stays"


def test_claims_take_one_statement_again_a_while_after_the_long_walks_end(jobs: Jobs,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seconds = [1_000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: seconds[0])
    jobs.add(20_000, name=OTHER, run_at=at(-60))
    jobs.add()
    jobs.claim(1)
    with jobs.store.engine.begin() as c:  # the backlog's own workers took it
        c.exec_driver_sql("UPDATE activejob_jobs SET status = 'completed' WHERE name = ?", (OTHER,))
    wanted = jobs.add()
    seconds[0] += claim.LOOK_FIRST_FOR - 1
    assert [c.id for c in jobs.claim(1)] == wanted  # looks first, walking nothing
    seconds[0] += 2
    assert not jobs.store.looks_first()
