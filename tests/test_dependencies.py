"""Dependencies: a job waits until the jobs it depends on have completed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from activejob import BaseJob, JobArgumentsError, JobQueue, chain, job
from activejob.errors import ConfigurationError, JobNotFound

ORDER: list[str] = []


class Step(BaseModel):
    label: str
    fail: bool = False


@job("dep_step", schema=Step, max_retries=0)
class Run(BaseJob[Step]):
    def perform(self, args: Step) -> str:
        ORDER.append(args.label)
        if args.fail:
            raise RuntimeError(f"{args.label} failed")
        return args.label


@pytest.fixture(autouse=True)
def _forget() -> None:
    ORDER.clear()


def test_a_dependent_waits_until_its_dependency_completes(queue: JobQueue) -> None:
    first = Run.perform_later(label="first")
    second = Run.set(depends_on=[first]).perform_later(label="second")
    assert second.status == "waiting"
    queue.run_until_idle()
    assert ORDER == ["first", "second"]
    assert second.status == "completed"


def test_a_job_waits_for_every_dependency(queue: JobQueue) -> None:
    a = Run.perform_later(label="a")
    b = Run.perform_later(label="b")
    after = Run.set(depends_on=[a.id, b]).perform_later(label="after")
    queue.run_until_idle()
    assert ORDER[-1] == "after" and sorted(ORDER[:2]) == ["a", "b"]
    assert after.status == "completed"


def test_a_failed_dependency_cancels_the_dependent_with_dependency_failed(queue: JobQueue) -> None:
    bad = Run.perform_later(label="bad", fail=True)
    dependent = Run.set(depends_on=[bad]).perform_later(label="never")
    queue.run_until_idle()
    info = queue.get_job(dependent.id)
    assert info is not None and info.status == "cancelled"
    assert info.error is not None and info.error.startswith("dependency_failed")
    cancelled = [e for e in queue.events(dependent.id) if e.type == "cancelled"]
    assert cancelled[0].data["reason"] == "dependency_failed"
    assert "never" not in ORDER


def test_run_on_failure_runs_the_dependent_anyway(queue: JobQueue) -> None:
    bad = Run.perform_later(label="bad", fail=True)
    cleanup = Run.set(depends_on=[bad], run_on_failure=True).perform_later(label="cleanup")
    queue.run_until_idle()
    assert cleanup.status == "completed" and ORDER == ["bad", "cleanup"]


def test_cancelling_a_dependency_cancels_its_dependents_in_cascade(queue: JobQueue) -> None:
    a = Run.perform_later(label="a")
    b = Run.set(depends_on=[a]).perform_later(label="b")
    c = Run.set(depends_on=[b]).perform_later(label="c")
    queue.cancel(a.id)
    assert (b.status, c.status) == ("cancelled", "cancelled")


def test_cancelling_dependencies_in_bulk_cancels_their_dependents_too(queue: JobQueue) -> None:
    a = Run.perform_later(label="a")
    b = Run.set(depends_on=[a]).perform_later(label="b")
    assert queue.cancel_many([a.id]) == 1
    assert b.status == "cancelled"


def test_a_dependency_already_completed_lets_the_job_run_at_once(queue: JobQueue) -> None:
    done = Run.perform_later(label="done")
    queue.run_until_idle()
    later = Run.set(depends_on=[done]).perform_later(label="later")
    assert later.status == "pending"


def test_an_unknown_dependency_is_refused_and_nothing_is_written(queue: JobQueue) -> None:
    with pytest.raises(JobNotFound, match=rf"{Run.options.name}: depends_on names job\(s\) \[123456\], which do not"):
        Run.set(depends_on=[123456]).perform_later(label="orphan")
    assert queue.list_jobs() == []


def test_depends_on_refuses_what_is_not_a_job(queue: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="dep_step.*depends_on"):
        Run.set(depends_on=["soon"])


def test_chain_runs_steps_one_after_another(queue: JobQueue) -> None:
    handles = chain((Run, {"label": "one"}), (Run.set(priority=5), {"label": "two"}), (Run, {"label": "three"}))
    assert [h.status for h in handles] == ["pending", "waiting", "waiting"]
    queue.run_until_idle()
    assert ORDER == ["one", "two", "three"]


def test_a_chain_with_a_bad_step_writes_none_of_its_steps(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError, match="dep_step"):
        chain((Run, {"label": "one"}), (Run, {"label": "two"}), (Run, {"label": ["not", "text"]}))
    assert queue.list_jobs() == []


def test_a_failed_step_cancels_the_rest_of_the_chain(queue: JobQueue) -> None:
    handles = chain((Run, {"label": "one", "fail": True}), (Run, {"label": "two"}), (Run, {"label": "three"}))
    queue.run_until_idle()
    assert [h.status for h in handles] == ["failed", "cancelled", "cancelled"]


def test_a_dependent_left_waiting_by_a_dead_worker_is_settled_by_the_safety_net(queue: JobQueue) -> None:
    first = Run.perform_later(label="first")
    second = Run.set(depends_on=[first]).perform_later(label="second")
    # The dependency completes without any worker settling its dependents (as if the
    # worker died right after its commit): the waiting-jobs chore settles them.
    from activejob import clock
    from activejob.store import Outcome

    store: Any = queue.store
    claimed, _ = store.claim(worker_id="gone", names=["dep_step"], queues=None, limit=1, now=clock.now(), lease=30)
    store.finish([Outcome(claimed[0].id, claimed[0].lease_token, "completed", "completed")], clock.now())
    assert second.status == "waiting"
    store.wake_waiting(clock.now())
    assert second.status == "pending"


def test_a_dependent_added_while_its_dependency_runs_starts_as_soon_as_it_completes(db_url: str) -> None:
    """The worker that finishes the dependency releases the dependent itself: with a poll
    interval of a minute, neither the waiting-jobs chore nor polling could have."""
    import threading

    import activejob

    running, release = threading.Event(), threading.Event()

    @job("dep_gated", max_retries=0)
    class Gated(BaseJob[Any]):
        def perform(self, args: Any) -> None:
            running.set()
            release.wait(10)

    queue = activejob.configure(db_url, poll_interval=60, lease=5)
    try:
        first = Gated.perform_later()
        queue.start()
        assert running.wait(10)
        second = Run.set(depends_on=[first]).perform_later(label="second")
        assert second.status == "waiting"
        release.set()
        assert second.wait(timeout=10).status == "completed"
    finally:
        queue.stop(timeout=10)
        JobQueue.reset()
