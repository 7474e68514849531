"""The operator's verbs: request_cancel, retry_job and delete, each one guarded UPDATE (or
DELETE) that leaves a job alone when it moved on meanwhile."""

from __future__ import annotations

import pytest

from activejob.errors import InvalidTransition, JobNotFound

from .contract import NOW, Jobs, at, cancelled, completed, failed, waiting

MISSING = 999_999


# -- request_cancel ------------------------------------------------------------------------


def test_a_pending_job_is_cancelled_at_once(jobs: Jobs) -> None:
    job_id = jobs.add()[0]
    before = jobs.last_event()
    status, events = jobs.store.request_cancel(job_id, at(1))
    info = jobs.get(job_id)
    assert status == "cancelled"
    assert (info.status, info.finished_at, info.cancel_requested) == ("cancelled", at(1), True)
    assert [(e.type, e.data) for e in events] == [("cancelled", {"reason": "requested"})]
    jobs.logged(events, after=before)


def test_a_running_job_is_only_marked_for_its_worker(jobs: Jobs) -> None:
    job = jobs.running()[0]
    before = jobs.last_event()
    status, events = jobs.store.request_cancel(job.id, NOW)
    info = jobs.get(job.id)
    assert (status, events) == ("running", [])
    assert (info.status, info.cancel_requested, info.finished_at) == ("running", True, None)
    assert jobs.last_event() == before


def test_a_waiting_parent_is_cancelled_at_once(jobs: Jobs) -> None:
    parent = jobs.running(name="parent")[0]
    jobs.add(parent_id=parent.id)
    jobs.store.finish([waiting(parent)], NOW)
    assert jobs.store.request_cancel(parent.id, NOW)[0] == "cancelled"


def test_a_finished_job_is_left_as_it_is(jobs: Jobs) -> None:
    job = jobs.running()[0]
    jobs.store.finish([completed(job)], NOW)
    row = jobs.get(job.id)
    assert jobs.store.request_cancel(job.id, at(1)) == ("completed", [])
    assert jobs.get(job.id) == row


def test_cancelling_a_missing_job_is_not_found(jobs: Jobs) -> None:
    with pytest.raises(JobNotFound):
        jobs.store.request_cancel(MISSING, NOW)


def test_a_cancel_expecting_another_state_changes_nothing(jobs: Jobs) -> None:
    job = jobs.running()[0]
    row, before = jobs.get(job.id), jobs.last_event()
    with pytest.raises(InvalidTransition, match=f"job {job.id} is running, not pending"):
        jobs.store.request_cancel(job.id, NOW, expect=["pending"])
    assert jobs.get(job.id) == row and jobs.last_event() == before


def test_a_cancel_in_the_expected_state_goes_ahead(jobs: Jobs) -> None:
    job_id = jobs.add()[0]
    assert jobs.store.request_cancel(job_id, NOW, expect=["pending", "waiting"])[0] == "cancelled"


def test_the_unfinished_descendants_of_a_cancelled_job_are_cancelled_with_it(jobs: Jobs) -> None:
    parent = jobs.add(name="parent")[0]
    child = jobs.add(parent_id=parent)[0]
    grandchild = jobs.add(parent_id=child)[0]
    done = jobs.add(parent_id=parent)[0]
    jobs.store.request_cancel(done, NOW)  # already finished: left as it is
    before = jobs.last_event()
    _, events = jobs.store.request_cancel(parent, at(1))
    assert [(e.job_id, e.data["reason"]) for e in events] == [
        (parent, "requested"), (child, "parent cancelled"), (grandchild, "parent cancelled")]
    jobs.logged(events, after=before)


def test_a_running_child_of_a_cancelled_parent_is_marked(jobs: Jobs) -> None:
    parent = jobs.add(name="parent")[0]
    child = jobs.add(parent_id=parent)[0]
    jobs.claim()
    jobs.store.request_cancel(parent, NOW)
    info = jobs.get(child)
    assert (info.status, info.cancel_requested) == ("running", True)


# -- retry_job ------------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["failed", "cancelled"])
def test_a_failed_or_cancelled_job_runs_again_with_fresh_attempts(jobs: Jobs, end: str) -> None:
    job = jobs.running()[0]
    if end == "failed":
        jobs.store.finish([failed(job)], NOW)
    else:
        jobs.store.request_cancel(job.id, NOW)
        jobs.store.finish([cancelled(job)], NOW)
    before = jobs.last_event()
    events = jobs.store.retry_job(job.id, at(5))
    info = jobs.get(job.id)
    assert (info.status, info.attempts, info.run_at, info.finished_at) == ("pending", 0, at(5), None)
    assert (info.error, info.traceback, info.result, info.cancel_requested) == (None, None, None, False)
    assert [(e.type, e.data) for e in events] == [("enqueued", {"reason": "retried by request"})]
    jobs.logged(events, after=before)


@pytest.mark.parametrize("state", ["pending", "running", "completed"])
def test_only_failed_or_cancelled_jobs_can_be_retried(jobs: Jobs, state: str) -> None:
    job_id = jobs.add()[0]
    if state != "pending":
        job = jobs.claim()[0]
        if state == "completed":
            jobs.store.finish([completed(job)], NOW)
    row = jobs.get(job_id)
    with pytest.raises(InvalidTransition, match=f"job {job_id} is {state}"):
        jobs.store.retry_job(job_id, NOW)
    assert jobs.get(job_id) == row


def test_a_retry_expecting_failed_leaves_a_cancelled_job(jobs: Jobs) -> None:
    job_id = jobs.add()[0]
    jobs.store.request_cancel(job_id, NOW)
    with pytest.raises(InvalidTransition):
        jobs.store.retry_job(job_id, NOW, expect=["failed"])
    assert jobs.status(job_id) == "cancelled"


def test_retrying_a_missing_job_is_not_found(jobs: Jobs) -> None:
    with pytest.raises(JobNotFound):
        jobs.store.retry_job(MISSING, NOW)


# -- delete -------------------------------------------------------------------------------


def test_a_deleted_job_leaves_only_its_deleted_event(jobs: Jobs) -> None:
    job = jobs.running()[0]
    jobs.store.finish([completed(job)], NOW)
    other = jobs.add()[0]
    events = jobs.store.delete(job.id, at(1))
    assert jobs.store.get(job.id) is None
    assert [(e.job_id, e.type) for e in jobs.log(job_id=job.id)] == [(job.id, "deleted")]
    assert [e.id for e in events] == [e.id for e in jobs.log(job_id=job.id)]
    assert events[0].id > max(e.id for e in jobs.log(job_id=other))  # ids of the log only grow
    assert jobs.status(other) == "pending"


def test_a_running_job_cannot_be_deleted(jobs: Jobs) -> None:
    job = jobs.running()[0]
    with pytest.raises(InvalidTransition, match="running; cancel it before deleting it"):
        jobs.store.delete(job.id, NOW)
    assert jobs.status(job.id) == "running"


def test_deleting_a_missing_job_is_not_found(jobs: Jobs) -> None:
    with pytest.raises(JobNotFound):
        jobs.store.delete(MISSING, NOW)


def test_deleting_the_last_open_child_wakes_its_waiting_parent(jobs: Jobs) -> None:
    parent = jobs.running(name="parent")[0]
    child = jobs.add(parent_id=parent.id)[0]
    jobs.store.finish([waiting(parent)], NOW)
    events = jobs.store.delete(child, at(1))
    assert [(e.job_id, e.type) for e in events] == [(child, "deleted"), (parent.id, "enqueued")]
    assert jobs.status(parent.id) == "pending"
