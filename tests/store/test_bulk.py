"""The operator's bulk verbs: retry_failed, cancel_many and delete_many, each one statement
whose WHERE holds the guard, so a job in another state is left alone."""

from __future__ import annotations

from activejob.records import Claimed

from .contract import NOW, Jobs, at, completed, failed, waiting


def _failed(jobs: Jobs, **options: object) -> int:
    job: Claimed = jobs.running(**options)[0]
    jobs.store.finish([failed(job)], NOW)
    return job.id


# -- retry_failed ---------------------------------------------------------------------------


def test_retry_failed_runs_every_failed_job_again_with_fresh_attempts(jobs: Jobs) -> None:
    first, second = _failed(jobs), _failed(jobs)
    before = jobs.last_event()
    events = jobs.store.retry_failed(at(5))
    assert [(e.job_id, e.type, e.status, e.data) for e in events] == [
        (first, "enqueued", "pending", {"reason": "retried by request"}),
        (second, "enqueued", "pending", {"reason": "retried by request"})]
    info = jobs.get(first)
    assert (info.status, info.attempts, info.run_at, info.error, info.finished_at) == ("pending", 0, at(5), None, None)
    jobs.logged(events, after=before)


def test_retry_failed_leaves_jobs_in_every_other_state(jobs: Jobs) -> None:
    done = jobs.running()[0]
    jobs.store.finish([completed(done)], NOW)
    running = jobs.running()[0]
    cancelled = jobs.add()[0]
    jobs.store.request_cancel(cancelled, NOW)
    pending = jobs.add()[0]
    rows = {i: jobs.get(i) for i in (done.id, cancelled, pending, running.id)}
    assert jobs.store.retry_failed(at(5)) == []
    assert {i: jobs.get(i) for i in rows} == rows


def test_retry_failed_of_one_type_leaves_the_others(jobs: Jobs) -> None:
    mine = _failed(jobs, name="mine")
    other = _failed(jobs, name="other")
    events = jobs.store.retry_failed(at(5), name="mine")
    assert [e.job_id for e in events] == [mine]
    assert (jobs.status(mine), jobs.status(other)) == ("pending", "failed")


def test_retry_failed_matching_a_search_retries_only_the_matches(jobs: Jobs) -> None:
    timeout = _failed(jobs, args='{"url": "https://slow.example"}')
    other = _failed(jobs, args='{"url": "https://fast.example"}')
    events = jobs.store.retry_failed(at(5), search="slow.example")
    assert [e.job_id for e in events] == [timeout]
    assert jobs.status(other) == "failed"


# -- cancel_many ----------------------------------------------------------------------------


def test_cancel_many_cancels_pending_and_marks_running(jobs: Jobs) -> None:
    running = jobs.running()[0]
    pending = jobs.add(2)
    before = jobs.last_event()
    statuses, events = jobs.store.cancel_many([running.id, *pending], at(1))
    assert statuses == {running.id: "running", pending[0]: "cancelled", pending[1]: "cancelled"}
    assert [(e.job_id, e.type, e.data) for e in events] == [
        (pending[0], "cancelled", {"reason": "requested"}), (pending[1], "cancelled", {"reason": "requested"})]
    assert jobs.get(running.id).cancel_requested is True
    assert (jobs.get(pending[0]).status, jobs.get(pending[0]).finished_at) == ("cancelled", at(1))
    jobs.logged(events, after=before)


def test_cancel_many_leaves_finished_and_missing_jobs(jobs: Jobs) -> None:
    done = jobs.running()[0]
    jobs.store.finish([completed(done)], NOW)
    row, before = jobs.get(done.id), jobs.last_event()
    assert jobs.store.cancel_many([done.id, 999_999], at(1)) == ({}, [])
    assert jobs.get(done.id) == row and jobs.last_event() == before


def test_cancel_many_cancels_the_unfinished_children_too(jobs: Jobs) -> None:
    parent = jobs.add(name="parent")[0]
    child = jobs.add(parent_id=parent)[0]
    _, events = jobs.store.cancel_many([parent], at(1))
    assert [(e.job_id, e.data["reason"]) for e in events] == [(parent, "requested"), (child, "parent cancelled")]


def test_cancel_many_cancels_a_waiting_parent(jobs: Jobs) -> None:
    parent = jobs.running(name="parent")[0]
    jobs.add(parent_id=parent.id)
    jobs.store.finish([waiting(parent)], NOW)
    statuses, _ = jobs.store.cancel_many([parent.id], at(1))
    assert statuses == {parent.id: "cancelled"}


# -- delete_many ----------------------------------------------------------------------------


def test_delete_many_deletes_finished_jobs_leaving_only_their_deleted_events(jobs: Jobs) -> None:
    done, broken = jobs.running(2)
    jobs.store.finish([completed(done), failed(broken)], NOW)
    events = jobs.store.delete_many([done.id, broken.id], at(1))
    assert [(e.job_id, e.type, e.status) for e in events] == [
        (done.id, "deleted", "completed"), (broken.id, "deleted", "failed")]
    assert jobs.store.get(done.id) is None and jobs.store.get(broken.id) is None
    assert [e.type for e in jobs.log(job_id=done.id)] == ["deleted"]


def test_delete_many_leaves_pending_running_and_waiting_jobs(jobs: Jobs) -> None:
    parent = jobs.running(name="parent")[0]
    jobs.add(parent_id=parent.id, name="child")
    jobs.store.finish([waiting(parent)], NOW)
    running = jobs.running()[0]
    pending = jobs.add()[0]
    rows = {i: jobs.get(i) for i in (parent.id, pending, running.id)}
    before = jobs.last_event()
    assert jobs.store.delete_many(list(rows), at(1)) == []
    assert {i: jobs.get(i) for i in rows} == rows and jobs.last_event() == before


def test_delete_many_of_nothing_writes_nothing(jobs: Jobs) -> None:
    before = jobs.last_event()
    assert jobs.store.delete_many([], NOW) == []
    assert jobs.last_event() == before
