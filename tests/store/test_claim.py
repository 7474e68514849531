"""claim and claim_limited: which due jobs a worker takes, in what order, under what lease,
and what neither takes (future jobs, other types and queues, paused queues, full limits)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

import pytest

from activejob.store import Outcome, ProgressUpdate, WouldBlock

from .contract import LEASE, NAME, NOW, Jobs, OtherWriter, at, completed, request, writing_in_another_thread


def test_a_claim_takes_due_jobs_under_one_fresh_lease(jobs: Jobs) -> None:
    ids = jobs.add(2)
    before = jobs.last_event()
    claimed, started = jobs.store.claim(worker_id="w1", names=[NAME], queues=None, limit=5, now=NOW, lease=LEASE)
    assert [c.id for c in claimed] == ids
    assert len({c.lease_token for c in claimed}) == 1
    for c in claimed:
        info = jobs.get(c.id)
        assert (info.status, info.attempts, info.worker_id, info.started_at) == ("running", 1, "w1", NOW)
        assert info.lease_expires_at == at(LEASE)
        assert (c.attempts, c.max_retries, c.name, c.queue, c.args) == (1, 3, NAME, "default", '{"n": 1}')
    assert [(e.type, e.job_id, e.status, e.attempt, e.data) for e in started] == [
        ("started", i, "running", 1, {"worker_id": "w1"}) for i in ids]
    jobs.logged(started, after=before)


def test_each_claim_draws_a_new_token(jobs: Jobs) -> None:
    first, second = jobs.running(), jobs.running()
    assert first[0].lease_token != second[0].lease_token


def test_highest_priority_first_then_oldest_run_at_then_id(jobs: Jobs) -> None:
    low = jobs.add(priority=0)[0]
    late_high = jobs.add(priority=5, run_at=at(-1))[0]
    early_high = jobs.add(priority=5, run_at=at(-2))[0]
    tie = jobs.add(priority=5, run_at=at(-2))[0]
    assert [jobs.claim(1)[0].id for _ in range(4)] == [early_high, tie, late_high, low]


def test_claimed_jobs_come_back_in_id_order(jobs: Jobs) -> None:
    ids = [jobs.add(priority=p)[0] for p in (1, 3, 2)]
    assert [c.id for c in jobs.claim(3)] == ids


def test_a_claim_takes_no_more_than_its_limit(jobs: Jobs) -> None:
    ids = jobs.add(5, priority=1)
    assert [c.id for c in jobs.claim(2)] == ids[:2]
    assert [jobs.status(i) for i in ids] == ["running"] * 2 + ["pending"] * 3


def test_a_job_is_claimed_once(jobs: Jobs) -> None:
    jobs.add()
    assert len(jobs.claim(worker="w1")) == 1
    assert jobs.claim(worker="w2") == []


def test_a_job_not_yet_due_is_left_until_its_time(jobs: Jobs) -> None:
    job_id = jobs.add(run_at=at(60))[0]
    assert jobs.claim() == []
    assert [c.id for c in jobs.claim(now=at(60))] == [job_id]


def test_only_the_named_job_types_are_taken(jobs: Jobs) -> None:
    jobs.add(name="other")
    mine = jobs.add()[0]
    assert [c.id for c in jobs.claim()] == [mine]


def test_only_the_given_queues_are_taken(jobs: Jobs) -> None:
    jobs.add(queue="default")
    mail = jobs.add(queue="mail")[0]
    assert [c.id for c in jobs.claim(queues=["mail", "reports"])] == [mail]


def test_a_claim_of_several_queues_takes_the_best_jobs_across_them(jobs: Jobs) -> None:
    old_mail = jobs.add(queue="mail", run_at=at(-60))[0]
    jobs.add(queue="mail")
    urgent_report = jobs.add(queue="reports", priority=5)[0]
    jobs.add(queue="default", priority=9)
    assert {c.id for c in jobs.claim(2, queues=["mail", "reports"])} == {urgent_report, old_mail}


def test_a_claim_of_the_default_queue_and_named_ones_takes_the_best_jobs_across_them(jobs: Jobs) -> None:
    jobs.add(queue="default", run_at=at(-10))
    urgent_default = jobs.add(queue="default", priority=5)[0]
    old_mail = jobs.add(queue="mail", run_at=at(-60))[0]
    jobs.add(queue="mail")
    jobs.add(queue="reports", priority=9)  # not this worker's
    assert [c.id for c in jobs.claim(2, queues=["mail", "default"])] == sorted([urgent_default, old_mail])


def test_a_claim_of_named_queues_passes_over_jobs_not_due_and_of_other_types(jobs: Jobs) -> None:
    jobs.add(queue="mail", priority=9, run_at=at(60))
    jobs.add(queue="mail", priority=8, name="other_type")
    due = jobs.add(queue="mail")[0]
    assert [c.id for c in jobs.claim(queues=["mail"])] == [due]


def test_a_queue_named_twice_is_claimed_from_once(jobs: Jobs) -> None:
    mail = jobs.add(3, queue="mail")
    assert sorted(c.id for c in jobs.claim(3, queues=["mail", "mail"])) == sorted(mail)


def test_a_queue_named_with_quotes_and_percent_signs_is_claimed_from(jobs: Jobs) -> None:
    odd = jobs.add(queue="it's 100% {mail}")[0]
    jobs.add(queue="it")
    assert [c.id for c in jobs.claim(queues=["it's 100% {mail}"])] == [odd]


def test_no_room_or_no_job_types_claims_nothing(jobs: Jobs) -> None:
    jobs.add()
    assert jobs.claim(0) == []
    assert jobs.claim(names=[]) == []
    assert jobs.log(types=["started"]) == []


def test_a_paused_queue_is_skipped_until_resumed(jobs: Jobs) -> None:
    paused = jobs.add(queue="mail", priority=9)[0]
    other = jobs.add(queue="default")[0]
    jobs.store.pause_queue("mail", NOW)
    assert [c.id for c in jobs.claim()] == [other]
    jobs.store.resume_queue("mail")
    assert [c.id for c in jobs.claim()] == [paused]


def test_a_checkpoint_and_parent_come_with_the_claimed_job(jobs: Jobs) -> None:
    parent = jobs.add(name="parent")[0]
    child = jobs.add(parent_id=parent)[0]
    first = jobs.claim()[0]
    jobs.store.save_progress([ProgressUpdate(child, first.lease_token, checkpoint='{"page": 3}')], NOW)
    jobs.store.finish([Outcome(child, first.lease_token, "pending", "retrying", run_at=NOW)], NOW)
    again = jobs.claim()[0]
    assert (again.id, again.parent_id, again.checkpoint, again.attempts) == (child, parent, '{"page": 3}', 2)


# -- nowait (SQLite: try on the event loop, never wait for the lock) ---------------------


def test_a_nowait_claim_takes_jobs_when_nobody_writes(jobs: Jobs) -> None:
    if not jobs.sqlite:
        pytest.skip("nowait is SQLite's: PostgreSQL claims never wait for a lock")
    job_id = jobs.add()[0]
    claimed, _ = jobs.store.claim(worker_id="w1", names=[NAME], queues=None, limit=1, now=NOW, lease=LEASE,
                                  nowait=True)
    assert [c.id for c in claimed] == [job_id]


def test_a_nowait_claim_while_another_process_writes_would_block_and_changes_nothing(
        jobs: Jobs, other_writer: Callable[[], OtherWriter]) -> None:
    if not jobs.sqlite:
        pytest.skip("nowait is SQLite's: PostgreSQL claims never wait for a lock")
    job_id = jobs.add()[0]
    writer = other_writer()
    with pytest.raises(WouldBlock):
        jobs.store.claim(worker_id="w1", names=[NAME], queues=None, limit=1, now=NOW, lease=LEASE, nowait=True)
    writer.release()
    assert jobs.status(job_id) == "pending" and jobs.log(types=["started"]) == []
    assert len(jobs.claim()) == 1  # the store's connection is usable after the refusal


def test_a_waiting_claim_while_another_process_writes_goes_ahead_once_it_commits(jobs: Jobs) -> None:
    if not jobs.sqlite:
        pytest.skip("SQLite's write lock: PostgreSQL claims never wait for one")
    job_id = jobs.add()[0]
    holding = threading.Event()

    def other_process_writes_for_a_while() -> None:
        conn = sqlite3.connect(jobs.store.url.removeprefix("sqlite:///"), isolation_level=None, timeout=0)
        conn.execute("BEGIN IMMEDIATE")
        holding.set()
        time.sleep(0.3)
        conn.rollback()
        conn.close()

    writer = threading.Thread(target=other_process_writes_for_a_while)
    writer.start()
    holding.wait(5)
    started = time.monotonic()
    claimed, _ = jobs.store.claim(worker_id="w1", names=[NAME], queues=None, limit=1, now=NOW, lease=LEASE)
    writer.join()
    assert [c.id for c in claimed] == [job_id]
    assert time.monotonic() - started >= 0.1  # it waited for the lock, then took the job


def test_a_nowait_claim_while_another_thread_writes_would_block_and_changes_nothing(jobs: Jobs) -> None:
    if not jobs.sqlite:
        pytest.skip("nowait is SQLite's: PostgreSQL claims never wait for a lock")
    job_id = jobs.add()[0]
    with writing_in_another_thread(jobs.store), pytest.raises(WouldBlock):
        jobs.store.claim(worker_id="w1", names=[NAME], queues=None, limit=1, now=NOW, lease=LEASE, nowait=True)
    assert jobs.status(job_id) == "pending" and jobs.log(types=["started"]) == []


# -- claim_limited ---------------------------------------------------------------------

LONG = 300
"""More due jobs than a claim asks for many times over."""


def claim_limited(jobs: Jobs, limit: int = 10, *, worker: str = "w1", names: tuple[str, ...] = (NAME, "free"),
                  limits: dict[str, int] | None = None, per_key: tuple[str, ...] = ()) -> list[int]:
    claimed, started = jobs.store.claim_limited(
        worker_id=worker, names=list(names), queues=None, limit=limit, now=NOW, lease=LEASE,
        limits={NAME: 2} if limits is None else limits, per_key=per_key)
    assert [e.job_id for e in started] == [c.id for c in claimed]
    return [c.id for c in claimed]


def test_a_limited_type_is_kept_under_its_limit_across_workers(jobs: Jobs) -> None:
    ids = jobs.add(5)
    assert claim_limited(jobs, worker="w1") == ids[:2]
    assert claim_limited(jobs, worker="w2") == []


def test_a_finished_job_frees_its_slot_of_the_limit(jobs: Jobs) -> None:
    ids = jobs.add(3)
    claimed, _ = jobs.store.claim_limited(worker_id="w1", names=[NAME], queues=None, limit=10, now=NOW,
                                          lease=LEASE, limits={NAME: 2})
    jobs.store.finish([completed(claimed[0])], NOW)
    assert claim_limited(jobs, worker="w2") == [ids[2]]


def test_a_limited_backlog_does_not_hide_other_types(jobs: Jobs) -> None:
    limited = jobs.add(5, priority=9)
    free = jobs.add(2, name="free")
    assert claim_limited(jobs) == [*limited[:2], *free]


def test_a_claim_limited_writes_what_a_claim_writes(jobs: Jobs) -> None:
    job_id = jobs.add()[0]
    before = jobs.last_event()
    claimed, started = jobs.store.claim_limited(worker_id="w1", names=[NAME], queues=None, limit=1, now=NOW,
                                                lease=LEASE, limits={NAME: 1})
    info = jobs.get(job_id)
    assert (info.status, info.attempts, info.worker_id, info.lease_expires_at) == ("running", 1, "w1", at(LEASE))
    assert claimed[0].lease_token and [(e.type, e.data) for e in started] == [("started", {"worker_id": "w1"})]
    jobs.logged(started, after=before)


def test_each_concurrency_key_is_kept_under_the_limit(jobs: Jobs) -> None:
    a1, a2 = jobs.add(2, concurrency_key="a")
    b1 = jobs.add(concurrency_key="b")[0]
    taken = claim_limited(jobs, limits={NAME: 1}, per_key=(NAME,))
    assert taken == [a1, b1]
    assert claim_limited(jobs, limits={NAME: 1}, per_key=(NAME,)) == []
    assert jobs.status(a2) == "pending"


def test_jobs_without_a_key_share_one_limit(jobs: Jobs) -> None:
    first, _second = jobs.add(2)
    keyed = jobs.add(concurrency_key="a")[0]
    assert claim_limited(jobs, limits={NAME: 1}, per_key=(NAME,)) == [first, keyed]


def test_a_full_keys_long_backlog_does_not_hide_the_keys_behind_it(jobs: Jobs) -> None:
    jobs.add(concurrency_key="a")
    assert len(claim_limited(jobs, limits={NAME: 1}, per_key=(NAME,))) == 1  # key a is now full
    jobs.store.enqueue([request(concurrency_key="a") for _ in range(LONG)], NOW)
    behind = jobs.add(concurrency_key="b")[0]
    assert claim_limited(jobs, limits={NAME: 1}, per_key=(NAME,)) == [behind]


def test_a_limited_claim_behind_a_long_backlog_still_takes_jobs_in_claim_order(jobs: Jobs) -> None:
    jobs.add(LONG, name="free")
    urgent = jobs.add(priority=5)[0]
    first_free = jobs.store.list_jobs(name="free", order="oldest", limit=1)[0].id
    assert claim_limited(jobs, limit=2) == [first_free, urgent]


def test_a_claim_limited_skips_paused_queues(jobs: Jobs) -> None:
    jobs.add(queue="mail")
    other = jobs.add(queue="default")[0]
    jobs.store.pause_queue("mail", NOW)
    assert claim_limited(jobs) == [other]


def test_a_claim_limited_takes_only_due_jobs_of_the_given_queues(jobs: Jobs) -> None:
    jobs.add(run_at=at(60))
    jobs.add(queue="default")
    mail = jobs.add(queue="mail")[0]
    claimed, _ = jobs.store.claim_limited(worker_id="w1", names=[NAME], queues=["mail"], limit=5, now=NOW,
                                          lease=LEASE, limits={NAME: 5})
    assert [c.id for c in claimed] == [mail]
