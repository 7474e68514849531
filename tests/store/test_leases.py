"""The verbs of running jobs: save_progress, heartbeat, and recover_expired for the jobs of
workers that stopped heartbeating."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from activejob.records import WorkerInfo
from activejob.store import Heartbeat, ProgressUpdate

from .contract import LEASE, NOW, Jobs, at, completed, waiting


def worker(worker_id: str = "w1") -> WorkerInfo:
    return WorkerInfo(id=worker_id, host="test-host", pid=4242, queues=None, job_types=["contract_job"],
                      concurrency=4, started_at=NOW, heartbeat_at=NOW)


# -- save_progress -----------------------------------------------------------------------


def test_progress_is_written_to_the_job_with_an_event(jobs: Jobs) -> None:
    job = jobs.running()[0]
    before = jobs.last_event()
    report = {"progress": 0.5, "message": "half way", "phase": "copy", "current": 5, "total": 10}
    lost, events = jobs.store.save_progress([ProgressUpdate(job.id, job.lease_token, progress=report)], at(1))
    info = jobs.get(job.id)
    assert lost == set()
    assert (info.progress, info.progress_message, info.progress_phase, info.progress_current,
            info.progress_total) == (0.5, "half way", "copy", 5, 10)
    assert [(e.type, e.data, e.created_at) for e in events] == [("progress", report, at(1))]
    jobs.logged(events, after=before)


def test_a_checkpoint_is_kept_without_an_event(jobs: Jobs) -> None:
    job = jobs.running()[0]
    before = jobs.last_event()
    lost, events = jobs.store.save_progress([ProgressUpdate(job.id, job.lease_token, checkpoint='{"page": 2}')], NOW)
    assert (lost, events) == (set(), [])
    assert jobs.get(job.id).checkpoint == {"page": 2} and jobs.last_event() == before


def test_log_lines_become_events_at_the_time_they_were_logged(jobs: Jobs) -> None:
    job = jobs.running()[0]
    before = jobs.last_event()
    lines: list[dict[str, Any]] = [{"level": "info", "message": "one", "at": at(1)},
                                   {"level": "warning", "message": "two"}]
    _, events = jobs.store.save_progress([ProgressUpdate(job.id, job.lease_token, logs=lines)], at(2))
    assert [(e.type, e.data["message"], e.created_at) for e in events] == [("log", "one", at(1)), ("log", "two", at(2))]
    jobs.logged(events, after=before)


def test_an_empty_update_of_a_held_job_is_not_lost(jobs: Jobs) -> None:
    job = jobs.running()[0]
    assert jobs.store.save_progress([ProgressUpdate(job.id, job.lease_token)], NOW) == (set(), [])


def test_progress_of_several_jobs_in_one_write(jobs: Jobs) -> None:
    a, b = jobs.running(2)
    updates = [ProgressUpdate(j.id, j.lease_token, progress={"progress": p}) for j, p in ((a, 0.1), (b, 0.9))]
    lost, events = jobs.store.save_progress(updates, NOW)
    assert lost == set() and [(e.job_id, e.data["progress"]) for e in events] == [(a.id, 0.1), (b.id, 0.9)]
    assert (jobs.get(a.id).progress, jobs.get(b.id).progress) == (0.1, 0.9)


def test_progress_text_is_made_storable_on_both_databases(jobs: Jobs) -> None:
    job = jobs.running()[0]
    update = ProgressUpdate(job.id, job.lease_token, progress={"message": "nul \x00 here", "phase": "p" * 300})
    jobs.store.save_progress([update], NOW)
    info = jobs.get(job.id)
    assert info.progress_message == "nul \\x00 here"
    assert info.progress_phase is not None and len(info.progress_phase) == 200


def test_progress_of_a_finished_job_is_lost(jobs: Jobs) -> None:
    job = jobs.running()[0]
    jobs.store.finish([completed(job)], NOW)
    update = ProgressUpdate(job.id, job.lease_token, progress={"progress": 1.0})
    assert jobs.store.save_progress([update], NOW) == ({job.id}, [])
    assert jobs.get(job.id).progress is None


# -- heartbeat ---------------------------------------------------------------------------


def test_a_heartbeat_extends_the_leases_of_the_jobs_it_holds(jobs: Jobs) -> None:
    a, b = jobs.running(2)
    beat = jobs.store.heartbeat(worker(), {a.id: a.lease_token, b.id: b.lease_token}, at(10), LEASE)
    assert beat == Heartbeat(lost=set(), cancel=set())
    assert {jobs.get(j.id).lease_expires_at for j in (a, b)} == {at(10 + LEASE)}


def test_a_heartbeat_registers_a_worker_missing_from_the_registry(jobs: Jobs) -> None:
    jobs.store.heartbeat(worker("w9"), {}, at(10), LEASE)
    assert [(w.id, w.heartbeat_at) for w in jobs.store.workers()] == [("w9", at(10))]


def test_a_heartbeat_refreshes_a_registered_worker(jobs: Jobs) -> None:
    jobs.store.register_worker(worker(), NOW)
    jobs.store.heartbeat(worker(), {}, at(10), LEASE)
    assert [(w.id, w.heartbeat_at) for w in jobs.store.workers()] == [("w1", at(10))]


def test_a_heartbeat_reports_a_cancel_request(jobs: Jobs) -> None:
    a, b = jobs.running(2)
    jobs.store.request_cancel(b.id, NOW)
    beat = jobs.store.heartbeat(worker(), {a.id: a.lease_token, b.id: b.lease_token}, at(1), LEASE)
    assert beat == Heartbeat(lost=set(), cancel={b.id})


def test_a_heartbeat_reports_jobs_that_finished_as_lost(jobs: Jobs) -> None:
    job = jobs.running()[0]
    jobs.store.finish([completed(job)], NOW)
    assert jobs.store.heartbeat(worker(), {job.id: job.lease_token}, at(1), LEASE).lost == {job.id}


def test_a_heartbeat_reports_another_worker_jobs_as_lost_and_leaves_them(jobs: Jobs) -> None:
    job = jobs.running()[0]  # claimed by w1
    beat = jobs.store.heartbeat(worker("w2"), {job.id: job.lease_token}, at(20), LEASE)
    assert beat.lost == {job.id}
    assert jobs.get(job.id).lease_expires_at == at(LEASE)


# -- recover_expired ----------------------------------------------------------------------


def expire(jobs: Jobs, max_retries: int = 3) -> int:
    """A job claimed by w1, whose lease has run out by at(LEASE + 1)."""
    return jobs.running(max_retries=max_retries)[0].id


def after_lease() -> datetime:
    return at(LEASE + 1)


def test_a_job_whose_lease_expired_is_put_back_while_attempts_last(jobs: Jobs) -> None:
    job_id = expire(jobs, max_retries=1)
    before = jobs.last_event()
    events = jobs.store.recover_expired(after_lease())
    info = jobs.get(job_id)
    assert (info.status, info.run_at, info.attempts, info.worker_id, info.lease_expires_at) == (
        "pending", after_lease(), 1, None, None)
    assert info.error is not None and "w1 stopped heartbeating" in info.error
    assert [(e.type, e.data["reason"], e.data["worker_id"]) for e in events] == [("retrying", "worker_lost", "w1")]
    jobs.logged(events, after=before)
    assert [c.attempts for c in jobs.claim(now=after_lease())] == [2]


def test_a_job_whose_lease_expired_on_its_last_attempt_fails(jobs: Jobs) -> None:
    job_id = expire(jobs, max_retries=0)
    events = jobs.store.recover_expired(after_lease())
    info = jobs.get(job_id)
    assert (info.status, info.finished_at) == ("failed", after_lease())
    assert [(e.type, e.data["reason"]) for e in events] == [("failed", "worker_lost")]


def test_a_job_asked_to_cancel_whose_worker_died_is_cancelled_not_run_again(jobs: Jobs) -> None:
    job_id = expire(jobs, max_retries=3)
    jobs.store.request_cancel(job_id, NOW)  # its worker died before hearing it
    before = jobs.last_event()
    events = jobs.store.recover_expired(after_lease())
    info = jobs.get(job_id)
    assert (info.status, info.finished_at, info.worker_id) == ("cancelled", after_lease(), None)
    assert [(e.type, e.data["reason"], e.data["worker_id"]) for e in events] == [("cancelled", "requested", "w1")]
    jobs.logged(events, after=before)
    assert jobs.claim(now=after_lease()) == []


def test_a_lease_still_running_is_left_alone(jobs: Jobs) -> None:
    job_id = expire(jobs)
    assert jobs.store.recover_expired(at(LEASE - 1)) == []
    assert jobs.store.recover_expired(at(LEASE)) == []  # expires *after* its moment, not at it
    assert jobs.status(job_id) == "running"


def test_recovery_takes_at_most_its_limit_oldest_lease_first(jobs: Jobs) -> None:
    first = jobs.running()[0].id
    jobs.add(2)
    jobs.claim(2, now=at(5))
    events = jobs.store.recover_expired(at(LEASE + 10), limit=1)
    assert [e.job_id for e in events] == [first]


def test_a_child_failed_by_recovery_wakes_its_waiting_parent(jobs: Jobs) -> None:
    parent = jobs.running(name="parent")[0]
    child = jobs.add(parent_id=parent.id, max_retries=0)[0]
    jobs.claim()
    jobs.store.finish([waiting(parent)], NOW)
    events = jobs.store.recover_expired(after_lease())
    assert [(e.job_id, e.type) for e in events] == [(child, "failed"), (parent.id, "enqueued")]
    assert jobs.status(parent.id) == "pending"


def test_a_heartbeat_keeps_a_job_from_being_recovered(jobs: Jobs) -> None:
    job = jobs.running()[0]
    jobs.store.heartbeat(worker(), {job.id: job.lease_token}, at(LEASE - 1), LEASE)
    assert jobs.store.recover_expired(after_lease()) == []
