"""Fencing: every write about a running job carries the lease token of its claim, and one
with another token (a worker that was paused while its lease expired and the job was taken
over) changes nothing, whichever path the write takes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from activejob.records import Claimed, WorkerInfo
from activejob.store import Outcome, ProgressUpdate

from .contract import LEASE, NAME, NOW, Jobs, at, completed, failed, requeued, retrying, waiting

STALE = "stale-token"

Write = Callable[[Jobs, Claimed, str], object]


def outcome_of(make: Callable[[Claimed], Outcome]) -> Callable[[Claimed, str], Outcome]:
    def build(job: Claimed, token: str) -> Outcome:
        o = make(job)
        o.token = token
        return o

    return build


OUTCOMES = {
    "completed": outcome_of(completed), "failed": outcome_of(failed), "requeued": outcome_of(requeued),
    "retrying": outcome_of(lambda job: retrying(job, at(60))), "waiting": outcome_of(waiting),
}


def finish(jobs: Jobs, job: Claimed, token: str) -> object:
    return [jobs.store.finish([make(job, token)], at(1)) for make in OUTCOMES.values()]


def finish_general(jobs: Jobs, job: Claimed, token: str) -> object:
    return [jobs.store._finish_general([make(job, token)], at(1)) for make in OUTCOMES.values()]


def finish_and_claim(jobs: Jobs, job: Claimed, token: str) -> object:
    return [jobs.store.finish_and_claim([make(job, token)], at(1), worker_id="w1", names=[NAME], queues=None,
                                        limit=1, lease=LEASE)
            for name, make in OUTCOMES.items() if name != "waiting"]


def progress(jobs: Jobs, job: Claimed, token: str) -> object:
    lost, events = jobs.store.save_progress([ProgressUpdate(
        job.id, token, progress={"progress": 0.5, "message": "m"}, checkpoint='{"step": 9}',
        logs=[{"level": "info", "message": "hello"}])], at(1))
    assert (lost, events) == ({job.id}, [])
    return lost


def heartbeat(jobs: Jobs, job: Claimed, token: str) -> object:
    worker = WorkerInfo(id="w1", host="h", pid=1, queues=None, job_types=[NAME], concurrency=1, started_at=NOW,
                        heartbeat_at=NOW)
    beat = jobs.store.heartbeat(worker, {job.id: token}, at(1), LEASE)
    assert beat.lost == {job.id} and beat.cancel == set()
    return beat


WRITES = pytest.mark.parametrize("write", [finish, finish_general, finish_and_claim, progress, heartbeat],
                                 ids=["finish", "finish-general", "finish-and-claim", "progress", "heartbeat"])


@WRITES
def test_a_write_with_a_token_nobody_holds_changes_nothing(jobs: Jobs, write: Write) -> None:
    job = jobs.running()[0]
    row, before = jobs.get(job.id), jobs.last_event()
    write(jobs, job, STALE)
    assert jobs.get(job.id) == row
    assert jobs.last_event() == before


@WRITES
def test_a_write_with_the_previous_claim_token_changes_nothing(jobs: Jobs, write: Write) -> None:
    stale = jobs.running()[0]
    jobs.store.recover_expired(at(LEASE + 1))  # its worker was paused past its lease
    taken = jobs.claim(now=at(LEASE + 2), worker="w1")[0]  # the same worker id: only the token differs
    assert taken.id == stale.id and taken.lease_token != stale.lease_token
    row, before = jobs.get(stale.id), jobs.last_event()
    write(jobs, stale, stale.lease_token)
    assert jobs.get(stale.id) == row
    assert jobs.last_event() == before


def test_the_current_holder_still_finishes_after_a_stale_write(jobs: Jobs) -> None:
    stale = jobs.running()[0]
    jobs.store.recover_expired(at(LEASE + 1))
    taken = jobs.claim(now=at(LEASE + 2), worker="w2")[0]
    assert jobs.store.finish([completed(stale)], at(LEASE + 3)) == (set(), [])
    assert jobs.store.finish([completed(taken)], at(LEASE + 3))[0] == {taken.id}
    assert jobs.status(taken.id) == "completed"


def test_a_finished_job_cannot_be_finished_again_with_its_old_token(jobs: Jobs) -> None:
    job = jobs.running()[0]
    jobs.store.finish([failed(job)], NOW)
    row = jobs.get(job.id)
    for write in (finish, finish_general, finish_and_claim):
        write(jobs, job, job.lease_token)
    assert jobs.get(job.id) == row
