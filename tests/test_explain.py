"""Why isn't my job running? `queue.explain(id)`, one test per reason, on SQLite and
PostgreSQL; then the CLI (`activejob explain`) and the pure decision's edge cases."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner, Result
from pydantic import BaseModel

from activejob import BaseJob, JobQueue, clock, job
from activejob.cli import main
from activejob.errors import JobNotFound
from activejob.explain import REASONS, _example, decide
from activejob.records import WorkerInfo
from activejob.store.explain import Blocker, ExplainFacts, RateUse


class Args(BaseModel):
    n: int = 0


@job("why_mail", schema=Args, queue="mail")
class Mail(BaseJob[Args]):
    def perform(self, args: Args) -> int:
        return args.n


@job("why_flaky", schema=Args, max_retries=2, backoff=3600)
class Flaky(BaseJob[Args]):
    def perform(self, args: Args) -> None:
        raise ValueError("smtp is down")


@job("why_limited", schema=Args, concurrency_limit=1)
class Limited(BaseJob[Args]):
    def perform(self, args: Args) -> None: ...


@job("why_rated", schema=Args, rate_limit="2/h")
class Rated(BaseJob[Args]):
    def perform(self, args: Args) -> None: ...


@job("why_parent", schema=Args)
class Parent(BaseJob[Args]):
    def perform(self, args: Args) -> None:
        if not self.children():
            Mail.set(parent=self, wait=3600).perform_later(n=1)
            self.wait_for_children()


def live_worker(queue: JobQueue, *names: str, queues: list[str] | None = None) -> str:
    """Register a live worker that knows `names` (as a worker process does) and return its id."""
    worker_id = f"test-{uuid.uuid4().hex[:8]}"
    now = clock.now()
    queue.store.register_worker(WorkerInfo(id=worker_id, host="box", pid=1, queues=queues, job_types=list(names),
                                           concurrency=4, started_at=now, heartbeat_at=now), now)
    return worker_id


def claim(queue: JobQueue, worker_id: str, name: str) -> int:
    """Start one due job of `name` as that worker would: returns its id."""
    claimed, _ = queue.store.claim(worker_id=worker_id, names=[name], queues=None, limit=1, now=clock.now(),
                                   lease=queue.settings.lease)
    assert len(claimed) == 1
    return claimed[0].id


# -- one test per reason, on both databases -------------------------------------------------

def test_a_finished_job_says_how_it_ended(queue: JobQueue) -> None:
    done = Mail.perform_later(n=1)
    live_worker(queue, "why_mail")
    queue.run_until_idle()
    why = queue.explain(done.id)
    assert why.reason == "finished"
    assert why.message.startswith(f"Job #{done.id} (why_mail) completed at ")


def test_a_running_job_names_its_worker(queue: JobQueue) -> None:
    worker_id = live_worker(queue, "why_mail")
    Mail.perform_later()
    job_id = claim(queue, worker_id, "why_mail")
    why = queue.explain(job_id)
    assert why.reason == "running"
    assert worker_id in why.message and "attempt 1 of 4" in why.message
    assert why.details["worker_id"] == worker_id and why.details["lease_expired"] is False


def test_a_job_for_later_is_scheduled_with_its_time(queue: JobQueue) -> None:
    live_worker(queue, "why_mail")
    later = Mail.set(wait=timedelta(hours=2)).perform_later()
    why = queue.explain(later.id)
    assert why.reason == "scheduled"
    assert "in 2 hours" in why.message and " UTC" in why.message
    assert why.details["run_at"] == queue.get_job(later.id).run_at.isoformat()  # type: ignore[union-attr]


def test_a_failed_attempt_waiting_to_retry_is_in_backoff(queue: JobQueue) -> None:
    live_worker(queue, "why_flaky")
    flaky = Flaky.perform_later()
    queue.run_until_idle()
    why = queue.explain(flaky.id)
    assert why.reason == "retry_backoff"
    assert "failed attempt 1 of 3" in why.message and "smtp is down" in why.message
    assert "in 1 hour" in why.message


def test_a_due_job_of_a_paused_queue_says_how_to_resume_it(queue: JobQueue) -> None:
    live_worker(queue, "why_mail")
    due = Mail.perform_later()
    queue.pause_queue("mail")
    why = queue.explain(due.id)
    assert why.reason == "queue_paused"
    assert "queue mail has been paused since" in why.message
    assert "`activejob resume mail`" in why.message


def test_a_job_no_worker_can_run_is_no_worker(queue: JobQueue) -> None:
    due = Mail.perform_later()
    assert queue.explain(due.id).reason == "no_worker"
    assert "no worker is running" in queue.explain(due.id).message
    live_worker(queue, "why_flaky")  # a worker, but it does not know why_mail
    assert "has registered the job type why_mail" in queue.explain(due.id).message
    live_worker(queue, "why_mail", queues=["default"])  # knows it, but does not serve mail
    why = queue.explain(due.id)
    assert why.reason == "no_worker" and "`--queues mail`" in why.message


def test_a_job_over_its_concurrency_limit_waits_for_a_slot(queue: JobQueue) -> None:
    worker_id = live_worker(queue, "why_limited")
    Limited.perform_later(n=1)
    claim(queue, worker_id, "why_limited")
    second = Limited.perform_later(n=2)
    why = queue.explain(second.id)
    assert why.reason == "concurrency_limit"
    assert "1 job(s) of why_limited are running, its concurrency limit of 1" in why.message
    assert why.details["running"] == 1


def test_a_job_over_its_rate_limit_says_when_the_next_start_is_allowed(queue: JobQueue) -> None:
    live_worker(queue, "why_rated")
    Rated.perform_all_later([{"n": 1}, {"n": 2}])
    queue.run_until_idle()  # two starts: the 2/h window is full
    third = Rated.perform_later(n=3)
    why = queue.explain(third.id)
    assert why.reason == "rate_limited"
    assert "why_rated has started 2 job(s) in the last 1 hour, all its rate limit (2/h) allows" in why.message
    assert "the next start is allowed at" in why.message and "in 1 hour" in why.message
    assert why.details["rate_key"] == "type:why_rated" and why.details["starts"] == 2


def test_a_parent_waits_for_its_children(queue: JobQueue) -> None:
    live_worker(queue, "why_parent", "why_mail")
    parent = Parent.perform_later()
    queue.run_until_idle()
    child = queue.list_jobs(parent_id=parent.id)[0]
    why = queue.explain(parent.id)
    assert why.reason == "waiting_for_children"
    assert f"waits for job #{child.id} (why_mail, pending) of its children" in why.message
    assert why.details["open_children"] == 1


def test_a_dependent_waits_for_its_dependencies(queue: JobQueue) -> None:
    live_worker(queue, "why_mail")
    first = Mail.set(wait=timedelta(hours=1)).perform_later(n=1)
    then = Mail.set(depends_on=[first.id]).perform_later(n=2)
    why = queue.explain(then.id)
    assert why.reason == "waiting_for_dependencies"
    assert f"waits for job #{first.id} (why_mail, pending) to complete" in why.message
    assert why.details["dependencies"] == [{"id": first.id, "name": "why_mail", "status": "pending"}]


def test_a_due_job_a_worker_can_run_is_ready(queue: JobQueue) -> None:
    live_worker(queue, "why_mail")
    ahead = Mail.perform_later(n=1)
    due = Mail.perform_later(n=2)
    assert queue.explain(ahead.id).reason == "ready"
    assert "it is next in queue mail" in queue.explain(ahead.id).message
    why = queue.explain(due.id)
    assert why.reason == "ready" and why.details["ahead"] == 1
    assert "1 due job(s) of queue mail are ahead of it" in why.message


def test_an_unknown_job_is_job_not_found(queue: JobQueue) -> None:
    with pytest.raises(JobNotFound, match="no job with id 424242"):
        queue.explain(424242)


# -- the command ------------------------------------------------------------------------------

def _cli(url: str, *args: str) -> Result:
    try:
        return CliRunner().invoke(main, [*args, "--database-url", url])
    finally:
        JobQueue.reset()  # the command configured the process-wide queue


def test_the_explain_command_prints_the_message_and_json(queue: JobQueue, db_url: str) -> None:
    due = Mail.perform_later()
    queue.pause_queue("mail")
    said = _cli(db_url, "explain", str(due.id))
    assert said.exit_code == 0, said.output
    assert said.output.startswith("queue_paused: ") and "`activejob resume mail`" in said.output
    as_json = _cli(db_url, "explain", str(due.id), "--json")
    assert json.loads(as_json.output)["reason"] == "queue_paused"


def test_the_explain_command_refuses_an_unknown_job(sqlite_url: str) -> None:
    import activejob

    activejob.configure(sqlite_url)  # the database exists
    JobQueue.reset()
    missing = _cli(sqlite_url, "explain", "999")
    assert missing.exit_code == 1 and "no job with id 999" in missing.output


# -- the decision, where a database cannot set the scene ---------------------------------------

def _facts(**changes: object) -> ExplainFacts:
    worker = WorkerInfo(id="w1", host="box", pid=1, queues=None, job_types=["send_email"], concurrency=1,
                        started_at=clock.now(), heartbeat_at=clock.now())
    return _example(workers=(worker,), **changes)  # type: ignore[arg-type]


def test_the_rate_limit_that_frees_up_last_is_the_one_named() -> None:
    facts = _facts()
    soon = RateUse("type:send_email", starts=10, limit=10, window=timedelta(minutes=1),
                   frees_at=facts.now + timedelta(seconds=5))
    late = RateUse("queue:mail", starts=100, limit=100, window=timedelta(hours=1),
                   frees_at=facts.now + timedelta(minutes=30))
    why = decide(_facts(rates=(soon, late)))
    assert why.reason == "rate_limited"
    assert why.message == ("Job #7 (send_email) is due, but queue mail has started 100 job(s) in the last 1 hour, "
                           "all its rate limit (100/h) allows; the next start is allowed at 2030-01-01 12:30:00 UTC, "
                           "in 30 minutes.")


def test_a_paused_queue_is_named_before_a_missing_worker() -> None:
    no_worker = _example()
    assert decide(no_worker).reason == "no_worker"
    assert decide(dataclasses.replace(no_worker, paused_since=no_worker.now)).reason == "queue_paused"


def test_many_dependencies_are_counted_and_the_first_named() -> None:
    waiting = _example()
    job = dataclasses.replace(waiting.job, status="waiting")
    blockers = tuple(Blocker(id=i, name="fetch", status="running") for i in (3, 4))
    why = decide(dataclasses.replace(waiting, job=job, dependencies=blockers, open_dependencies=25))
    assert why.reason == "waiting_for_dependencies"
    assert "waits for 25 jobs: #3 (fetch, running), #4 (fetch, running) and 23 more to complete" in why.message


def test_every_reason_is_listed_once() -> None:
    assert len(REASONS) == len(set(REASONS)) == 11
