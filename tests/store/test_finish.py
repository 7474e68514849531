"""finish and finish_and_claim: how attempts end, on the fast path and the general path
alike, and parents that wait for their children."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pytest

from activejob.records import Claimed
from activejob.store import Outcome, Store, WouldBlock

from .contract import (
    LEASE,
    NAME,
    NOW,
    Jobs,
    OtherWriter,
    at,
    cancelled,
    completed,
    failed,
    forged,
    requeued,
    retrying,
    waiting,
    writing_in_another_thread,
)

Finish = Callable[[Store, Sequence[Outcome], datetime], tuple[set[int], list[Any]]]


def fast(store: Store, outcomes: Sequence[Outcome], now: datetime) -> tuple[set[int], list[Any]]:
    """`finish` with plain outcomes (no waiting parent, no parent to wake): its fast path."""
    return store.finish(outcomes, now)


def general(store: Store, outcomes: Sequence[Outcome], now: datetime) -> tuple[set[int], list[Any]]:
    """The general path, called directly: what `finish` falls back to (and the only reference
    to it here, should it be renamed)."""
    return store._finish_general(outcomes, now)


PATHS = pytest.mark.parametrize("finish", [fast, general], ids=["fast", "general"])
DONE = at(3)


@PATHS
def test_a_completed_job_keeps_its_result_and_drops_its_lease(jobs: Jobs, finish: Finish) -> None:
    job = jobs.running()[0]
    before = jobs.last_event()
    written, events = finish(jobs.store, [completed(job, '{"total": 3}')], DONE)
    info = jobs.get(job.id)
    assert written == {job.id}
    assert (info.status, info.result, info.finished_at, info.attempts) == ("completed", {"total": 3}, DONE, 1)
    assert (info.worker_id, info.lease_expires_at, info.error) == (None, None, None)
    assert [(e.type, e.status, e.attempt, e.data) for e in events] == [
        ("completed", "completed", 1, {"result": {"total": 3}})]
    jobs.logged(events, after=before)


@PATHS
def test_a_failed_job_keeps_its_error_and_traceback(jobs: Jobs, finish: Finish) -> None:
    job = jobs.running()[0]
    before = jobs.last_event()
    _, events = finish(jobs.store, [failed(job, "ValueError: boom")], DONE)
    info = jobs.get(job.id)
    assert (info.status, info.error, info.traceback, info.finished_at) == (
        "failed", "ValueError: boom", "Traceback ...", DONE)
    assert [(e.type, e.data) for e in events] == [("failed", {"error": "ValueError: boom"})]
    jobs.logged(events, after=before)


@PATHS
def test_a_retried_job_waits_for_its_run_at_with_the_attempt_counted(jobs: Jobs, finish: Finish) -> None:
    job = jobs.running()[0]
    before = jobs.last_event()
    _, events = finish(jobs.store, [retrying(job, at(60))], DONE)
    info = jobs.get(job.id)
    assert (info.status, info.run_at, info.attempts, info.finished_at) == ("pending", at(60), 1, None)
    assert (info.error, info.cancel_requested, info.worker_id) == ("ValueError: again", False, None)
    assert [(e.type, e.status, e.data) for e in events] == [
        ("retrying", "pending", {"error": "ValueError: again", "run_at": at(60).isoformat()})]
    jobs.logged(events, after=before)
    assert jobs.claim(now=at(59)) == []
    assert [c.attempts for c in jobs.claim(now=at(60))] == [2]


@PATHS
@pytest.mark.parametrize("back", [retrying, requeued], ids=["retried", "requeued"])
def test_a_job_asked_to_cancel_is_cancelled_rather_than_put_back(jobs: Jobs, finish: Finish, back: Any) -> None:
    """A retry, or a requeue at shutdown, of a job whose worker had not heard its cancel yet:
    pending again, the next claim would clear the request and run it."""
    job, other = jobs.running(2)
    jobs.store.request_cancel(job.id, NOW)
    before = jobs.last_event()
    outcome = back(job, at(60)) if back is retrying else back(job)
    written, events = finish(jobs.store, [outcome, back(other, at(60)) if back is retrying else back(other)], DONE)
    info = jobs.get(job.id)
    assert written == {job.id, other.id}
    assert (info.status, info.finished_at, info.worker_id) == ("cancelled", DONE, None)
    assert (outcome.status, outcome.event) == ("cancelled", "cancelled")  # the caller settles it as ended
    assert sorted((e.job_id, e.type, e.status, e.data.get("reason")) for e in events) == [
        (job.id, "cancelled", "cancelled", "requested"), (other.id, back.__name__, "pending", None)]
    assert jobs.get(other.id).status == "pending"
    jobs.logged(events, after=before)
    assert [c.id for c in jobs.claim(now=at(60))] == [other.id]


@PATHS
def test_a_requeued_job_gets_its_attempt_back(jobs: Jobs, finish: Finish) -> None:
    job = jobs.running()[0]
    _, events = finish(jobs.store, [requeued(job)], DONE)
    info = jobs.get(job.id)
    assert (info.status, info.attempts, info.run_at) == ("pending", 0, NOW)
    assert [(e.type, e.attempt) for e in events] == [("requeued", 0)]


@PATHS
def test_a_cancelled_job_is_finished(jobs: Jobs, finish: Finish) -> None:
    job = jobs.running()[0]
    _, events = finish(jobs.store, [cancelled(job)], DONE)
    info = jobs.get(job.id)
    assert (info.status, info.finished_at) == ("cancelled", DONE)
    assert [e.type for e in events] == ["cancelled"]


@PATHS
def test_outcomes_of_one_batch_are_written_together_in_id_order(jobs: Jobs, finish: Finish) -> None:
    a, b, c = jobs.running(3)
    before = jobs.last_event()
    written, events = finish(jobs.store, [failed(c), completed(a), retrying(b, at(5))], DONE)
    assert written == {a.id, b.id, c.id}
    assert [(e.job_id, e.type) for e in events] == [(a.id, "completed"), (b.id, "retrying"), (c.id, "failed")]
    jobs.logged(events, after=before)


@PATHS
def test_an_outcome_for_a_job_no_longer_running_changes_nothing(jobs: Jobs, finish: Finish) -> None:
    job = jobs.running()[0]
    finish(jobs.store, [completed(job)], DONE)
    row, before = jobs.get(job.id), jobs.last_event()
    assert finish(jobs.store, [failed(job)], at(9)) == (set(), [])
    assert jobs.get(job.id) == row and jobs.last_event() == before


@PATHS
def test_any_text_in_a_result_or_an_error_comes_back_exactly(jobs: Jobs, finish: Finish) -> None:
    done, broken = jobs.running(2)
    text = 'naïve ✓ 日本 "quoted" back\\slash\nnew line \\u00e9 {"not": "json"}'
    finish(jobs.store, [completed(done, json.dumps({"text": text})), failed(broken, text)], DONE)
    assert jobs.get(done.id).result == {"text": text}
    assert jobs.get(broken.id).error == text
    assert jobs.store.events(job_id=broken.id)[-1].data == {"error": text}


@PATHS
def test_stored_text_is_made_storable_on_both_databases(jobs: Jobs, finish: Finish) -> None:
    job = jobs.running()[0]
    finish(jobs.store, [failed(job, "bad \x00 byte \udcff")], DONE)
    assert jobs.get(job.id).error == "bad \\x00 byte \\udcff"


def test_both_paths_write_the_same_row_and_event(jobs: Jobs) -> None:
    rows, datas = [], []
    for finish in (fast, general):
        job = jobs.running()[0]
        _, events = finish(jobs.store, [retrying(job, at(60))], DONE)
        row = jobs.get(job.id).to_dict()
        row.pop("id")
        rows.append(row)
        datas.append([(e.type, e.status, e.attempt, e.data, e.created_at) for e in events])
    assert rows[0] == rows[1] and datas[0] == datas[1]


# -- parents waiting for their children -------------------------------------------------


def family(jobs: Jobs, children: int = 2) -> tuple[Claimed, list[Claimed]]:
    """A running parent and its running children (claimed by w1)."""
    parent = jobs.running(name="parent")[0]
    jobs.add(children, parent_id=parent.id)
    kids = jobs.claim(children)
    assert all(k.parent_id == parent.id for k in kids)
    return parent, kids


def test_a_parent_waits_while_its_children_run(jobs: Jobs) -> None:
    parent, _ = family(jobs)
    written, events = jobs.store.finish([waiting(parent)], DONE)
    info = jobs.get(parent.id)
    assert written == {parent.id}
    assert (info.status, info.attempts, info.worker_id) == ("waiting", 0, None)
    assert [e.type for e in events] == ["waiting"]


def test_a_parent_whose_children_are_done_runs_again_at_once(jobs: Jobs) -> None:
    parent, kids = family(jobs, 1)
    jobs.store.finish([completed(kids[0])], NOW)
    _, events = jobs.store.finish([waiting(parent)], DONE)
    assert jobs.status(parent.id) == "pending"
    assert [(e.type, e.data) for e in events] == [("waiting", {}), ("enqueued", {"reason": "children finished"})]


@PATHS
def test_the_last_child_to_finish_wakes_its_parent(jobs: Jobs, finish: Finish) -> None:
    parent, (first, last) = family(jobs)
    jobs.store.finish([waiting(parent)], NOW)
    _, events = jobs.store.finish([completed(first)], NOW)
    assert jobs.status(parent.id) == "waiting" and [e.type for e in events] == ["completed"]
    before = jobs.last_event()
    _, events = finish(jobs.store, [failed(last)], DONE)
    info = jobs.get(parent.id)
    assert (info.status, info.run_at) == ("pending", DONE)
    assert [(e.job_id, e.type) for e in events] == [(last.id, "failed"), (parent.id, "enqueued")]
    jobs.logged(events, after=before)


def test_a_child_that_will_be_retried_does_not_wake_its_parent(jobs: Jobs) -> None:
    parent, kids = family(jobs, 1)
    jobs.store.finish([waiting(parent)], NOW)
    jobs.store.finish([retrying(kids[0], at(5))], NOW)
    assert jobs.status(parent.id) == "waiting"


def test_a_batch_mixing_children_and_plain_jobs_writes_them_all(jobs: Jobs) -> None:
    parent, kids = family(jobs, 1)
    jobs.store.finish([waiting(parent)], NOW)
    plain = jobs.running()[0]
    written, events = jobs.store.finish([completed(plain), completed(kids[0])], DONE)
    assert written == {plain.id, kids[0].id}
    assert sorted((e.job_id, e.type) for e in events) == sorted(
        [(plain.id, "completed"), (kids[0].id, "completed"), (parent.id, "enqueued")])
    assert jobs.status(parent.id) == "pending"


@PATHS
def test_a_written_outcome_says_whether_jobs_wait_for_it(jobs: Jobs, finish: Finish) -> None:
    waited_for, alone = jobs.running(2)
    jobs.add(depends_on=(waited_for.id,), name="contract_dependent")
    outcomes = [completed(waited_for), completed(alone)]
    finish(jobs.store, outcomes, DONE)
    assert [o.has_dependents for o in outcomes] == [True, False]


@PATHS
def test_an_outcome_not_written_says_no_job_waits_for_it(jobs: Jobs, finish: Finish) -> None:
    job = jobs.running()[0]
    jobs.add(depends_on=(job.id,), name="contract_dependent")
    outcome = forged(completed(job))  # a token nobody holds: the lease is lost
    finish(jobs.store, [outcome], DONE)
    assert outcome.has_dependents is False


# -- finish_and_claim ------------------------------------------------------------------


def finish_and_claim(jobs: Jobs, outcomes: Sequence[Outcome], *, limit: int = 5, nowait: bool = False,
                     names: Sequence[str] = (NAME,), queues: Sequence[str] | None = None
                     ) -> tuple[set[int], list[Any], list[Claimed], list[Any]]:
    return jobs.store.finish_and_claim(outcomes, DONE, worker_id="w2", names=list(names), queues=queues,
                                       limit=limit, lease=LEASE, nowait=nowait)


def test_finish_and_claim_writes_outcomes_and_refills_the_slots(jobs: Jobs) -> None:
    a, b = jobs.running(2)
    queued = jobs.add(3)
    before = jobs.last_event()
    written, events, claimed, started = finish_and_claim(jobs, [completed(a), failed(b)], limit=2)
    assert written == {a.id, b.id}
    assert [(e.job_id, e.type) for e in events] == [(a.id, "completed"), (b.id, "failed")]
    assert [c.id for c in claimed] == queued[:2]
    assert [(e.job_id, e.type, e.data) for e in started] == [(i, "started", {"worker_id": "w2"}) for i in queued[:2]]
    for c in claimed:
        info = jobs.get(c.id)
        assert (info.status, info.worker_id, info.lease_expires_at, info.started_at) == (
            "running", "w2", DONE + (at(LEASE) - NOW), DONE)
    jobs.logged(events + started, after=before)


def test_finish_and_claim_says_which_outcomes_jobs_wait_for(jobs: Jobs) -> None:
    waited_for, alone = jobs.running(2)
    jobs.add(depends_on=(waited_for.id,), name="contract_dependent")
    outcomes = [completed(waited_for), failed(alone)]
    written, _, _, _ = finish_and_claim(jobs, outcomes, limit=2)
    assert written == {waited_for.id, alone.id}
    assert [o.has_dependents for o in outcomes] == [True, False]


def test_finish_and_claim_does_not_claim_a_job_put_back_for_later(jobs: Jobs) -> None:
    job = jobs.running()[0]
    written, _, claimed, _ = finish_and_claim(jobs, [retrying(job, at(60))], limit=5)
    assert written == {job.id} and claimed == []
    assert jobs.status(job.id) == "pending"


def test_a_job_put_back_due_now_is_claimed_again_by_the_same_call_only_on_sqlite(jobs: Jobs) -> None:
    # PostgreSQL's one statement claims from the snapshot it started with, where the job
    # still runs; SQLite's claim is the next statement of the transaction and sees it pending.
    job = jobs.running()[0]
    written, _, claimed, _ = finish_and_claim(jobs, [retrying(job, NOW)], limit=5)
    assert written == {job.id}
    if jobs.sqlite:
        assert [(c.id, c.attempts) for c in claimed] == [(job.id, 2)]
        assert jobs.status(job.id) == "running"
    else:
        assert claimed == [] and jobs.status(job.id) == "pending"


def test_finish_and_claim_without_room_only_finishes(jobs: Jobs) -> None:
    job = jobs.running()[0]
    other = jobs.add()[0]
    assert finish_and_claim(jobs, [completed(job)], limit=0)[2] == []
    assert finish_and_claim(jobs, [], limit=1, names=())[2] == []
    assert (jobs.status(job.id), jobs.status(other)) == ("completed", "pending")


def test_finish_and_claim_refills_from_the_given_queues_skipping_paused_ones(jobs: Jobs) -> None:
    job = jobs.running()[0]
    jobs.add(queue="default")
    paused = jobs.add(queue="reports")[0]
    mail = jobs.add(queue="mail")[0]
    jobs.store.pause_queue("reports", NOW)
    claimed = finish_and_claim(jobs, [completed(job)], queues=["mail", "reports"])[2]
    assert [c.id for c in claimed] == [mail]
    assert jobs.status(paused) == "pending"


def test_finish_and_claim_refuses_a_waiting_parent_and_changes_nothing(jobs: Jobs) -> None:
    parent, _ = family(jobs, 1)
    plain = jobs.running()[0]
    jobs.add()
    before = jobs.last_event()
    with pytest.raises(WouldBlock):
        finish_and_claim(jobs, [completed(plain), waiting(parent)])
    assert (jobs.status(parent.id), jobs.status(plain.id)) == ("running", "running")
    assert jobs.last_event() == before


def test_finish_and_claim_of_a_child_is_left_to_the_general_path(jobs: Jobs) -> None:
    parent, kids = family(jobs, 1)
    jobs.store.finish([waiting(parent)], NOW)
    plain = jobs.running()[0]
    queued = jobs.add()[0]
    before = jobs.last_event()
    if jobs.sqlite:  # one transaction on SQLite: it rolls back whole and the caller goes the general way
        with pytest.raises(WouldBlock):
            finish_and_claim(jobs, [completed(plain), completed(kids[0])])
        assert [jobs.status(i) for i in (plain.id, kids[0].id, queued, parent.id)] == [
            "running", "running", "pending", "waiting"]
        assert jobs.last_event() == before
        return
    # PostgreSQL writes what its statement can, then the rest through finish, in the same call.
    written, events, claimed, started = finish_and_claim(jobs, [completed(plain), completed(kids[0])])
    assert written == {plain.id, kids[0].id} and [c.id for c in claimed] == [queued]
    assert [jobs.status(i) for i in (plain.id, kids[0].id, parent.id)] == ["completed", "completed", "pending"]
    jobs.logged(events + started, after=before)


def test_finish_and_claim_nowait_while_another_process_writes_would_block_and_changes_nothing(
        jobs: Jobs, other_writer: Callable[[], OtherWriter]) -> None:
    if not jobs.sqlite:
        pytest.skip("nowait is SQLite's: PostgreSQL's statement never waits for the write lock")
    job = jobs.running()[0]
    queued = jobs.add()[0]
    before = jobs.last_event()
    writer = other_writer()
    with pytest.raises(WouldBlock):
        finish_and_claim(jobs, [completed(job)], nowait=True)
    writer.release()
    assert (jobs.status(job.id), jobs.status(queued), jobs.last_event()) == ("running", "pending", before)
    written, _, claimed, _ = finish_and_claim(jobs, [completed(job)], nowait=True)
    assert written == {job.id} and [c.id for c in claimed] == [queued]


def test_finish_and_claim_nowait_while_another_thread_writes_would_block_and_changes_nothing(jobs: Jobs) -> None:
    if not jobs.sqlite:
        pytest.skip("nowait is SQLite's: PostgreSQL's statement never waits for the write lock")
    job = jobs.running()[0]
    before = jobs.last_event()
    with writing_in_another_thread(jobs.store), pytest.raises(WouldBlock):
        finish_and_claim(jobs, [completed(job)], nowait=True)
    assert (jobs.status(job.id), jobs.last_event()) == ("running", before)
