"""Pausing and resuming queues, pruning finished jobs and old events, and the safety net
that wakes waiting parents."""

from __future__ import annotations

from sqlalchemy import text

from activejob.store import Outcome

from .contract import NOW, Jobs, at, completed, failed, waiting


def test_pausing_a_queue_is_recorded_once(jobs: Jobs) -> None:
    assert jobs.store.pause_queue("mail", at(1)) is True
    assert jobs.store.pause_queue("mail", at(2)) is False
    assert jobs.store.paused_queues() == {"mail": at(1)}


def test_resuming_a_queue_forgets_its_pause_once(jobs: Jobs) -> None:
    jobs.store.pause_queue("mail", NOW)
    assert jobs.store.resume_queue("mail") is True
    assert jobs.store.resume_queue("mail") is False
    assert jobs.store.paused_queues() == {}


def test_paused_queues_are_listed_by_name(jobs: Jobs) -> None:
    for queue in ("reports", "mail"):
        jobs.store.pause_queue(queue, NOW)
    assert list(jobs.store.paused_queues()) == ["mail", "reports"]


def test_a_paused_queue_lets_its_running_jobs_finish(jobs: Jobs) -> None:
    job = jobs.running(queue="mail")[0]
    jobs.store.pause_queue("mail", NOW)
    assert jobs.store.finish([completed(job)], NOW)[0] == {job.id}


def test_a_paused_queue_keeps_even_a_retried_job_until_resumed(jobs: Jobs) -> None:
    job = jobs.running(queue="mail")[0]
    jobs.store.pause_queue("mail", NOW)
    jobs.store.finish([Outcome(job.id, job.lease_token, "pending", "retrying", run_at=NOW)], NOW)
    assert jobs.claim(now=at(10)) == []
    jobs.store.resume_queue("mail")
    assert [c.id for c in jobs.claim(now=at(10))] == [job.id]


# -- prune ----------------------------------------------------------------------------------


def finished_at(jobs: Jobs, moment_seconds: float, *, ok: bool = True) -> int:
    job = jobs.running()[0]
    jobs.store.finish([completed(job) if ok else failed(job)], at(moment_seconds))
    return job.id


def test_prune_deletes_finished_jobs_older_than_their_status_cutoff_with_their_events(jobs: Jobs) -> None:
    old, recent = finished_at(jobs, 10), finished_at(jobs, 100)
    old_failure = finished_at(jobs, 10, ok=False)
    pending = jobs.add()[0]
    assert jobs.store.prune({"completed": at(50), "failed": at(5)}) == 1
    assert jobs.store.get(old) is None and jobs.log(job_id=old) == []
    assert [jobs.status(i) for i in (recent, old_failure, pending)] == ["completed", "failed", "pending"]


def test_prune_works_through_more_than_one_batch(jobs: Jobs) -> None:
    ids = [finished_at(jobs, 1) for _ in range(5)]
    assert jobs.store.prune({"completed": at(2)}, batch=2) == 5
    assert all(jobs.store.get(i) is None for i in ids)


def test_prune_never_touches_unfinished_jobs(jobs: Jobs) -> None:
    running = jobs.running()[0]
    pending = jobs.add()[0]
    assert jobs.store.prune({"pending": at(10**6), "running": at(10**6)}) == 0
    assert (jobs.status(running.id), jobs.status(pending)) == ("running", "pending")


def test_prune_events_drops_old_log_rows_and_keeps_the_jobs(jobs: Jobs) -> None:
    job = jobs.running()[0]  # enqueued and started at NOW
    jobs.store.finish([completed(job)], at(100))
    assert jobs.store.prune_events(at(50), batch=1) == 2
    assert [e.type for e in jobs.log()] == ["completed"]
    assert jobs.status(job.id) == "completed"


# -- the waiting parents' safety net ------------------------------------------------------


def test_wake_waiting_leaves_a_parent_whose_children_still_run(jobs: Jobs) -> None:
    parent = jobs.running(name="parent")[0]
    jobs.add(parent_id=parent.id)
    jobs.store.finish([waiting(parent)], NOW)
    assert jobs.store.wake_waiting(at(1)) == []
    assert jobs.status(parent.id) == "waiting"


def test_wake_waiting_runs_a_parent_left_waiting_after_its_children_finished(jobs: Jobs) -> None:
    parent = jobs.running(name="parent")[0]
    child = jobs.add(parent_id=parent.id)[0]
    jobs.store.request_cancel(child, NOW)
    # The state a lost wake-up would leave (the verbs themselves wake the parent in the same transaction).
    with jobs.store.engine.begin() as conn:
        conn.execute(text("UPDATE activejob_jobs SET status = 'waiting', lease_token = NULL WHERE id = :id"),
                     {"id": parent.id})
    before = jobs.last_event()
    events = jobs.store.wake_waiting(at(2))
    assert [(e.job_id, e.type, e.data) for e in events] == [(parent.id, "enqueued", {"reason": "children finished"})]
    assert (jobs.status(parent.id), jobs.get(parent.id).run_at) == ("pending", at(2))
    jobs.logged(events, after=before)
