"""Parents and children: a job waits for the jobs it spawned, then runs again."""

from __future__ import annotations

from typing import Any

import jobs_for_workers as wk
from pydantic import BaseModel
from runner_support import wait_for

from activejob import BaseJob, JobQueue, job


class Part(BaseModel):
    n: int


class Parts(BaseModel):
    count: int


@job("kids_square", schema=Part)
class SquarePart(BaseJob[Part]):
    def perform(self, args: Part) -> int:
        return args.n * args.n


@job("kids_fail", schema=Part, max_retries=0)
class FailPart(BaseJob[Part]):
    def perform(self, args: Part) -> None:
        raise ValueError("bad part")


@job("kids_sum", schema=Parts)
class SumParts(BaseJob[Parts]):
    def perform(self, args: Parts) -> dict[str, Any]:
        children = self.children()
        if not children:
            for n in range(args.count):
                SquarePart.set(parent=self).perform_later(n=n)
            self.wait_for_children()
        return {"total": sum(c.result for c in children), "statuses": sorted({c.status for c in children})}


def test_a_parent_waits_for_its_children_then_runs_again(queue: JobQueue) -> None:
    parent = SumParts.perform_later(count=4)
    queue.run_until_idle()
    info = queue.get_job(parent.id)
    assert info is not None and info.status == "completed"
    assert info.result == {"total": 0 + 1 + 4 + 9, "statuses": ["completed"]}
    assert info.attempts == 1  # waiting does not spend an attempt
    types = [e.type for e in queue.events(parent.id)]
    assert types == ["enqueued", "started", "waiting", "enqueued", "started", "completed"]


def test_children_record_their_parent_and_inherit_its_owner(queue: JobQueue) -> None:
    parent = SumParts.set(owner="ann").perform_later(count=2)
    queue.run_until_idle()
    children = queue.list_jobs(parent_id=parent.id)
    assert len(children) == 2
    assert {c.owner for c in children} == {"ann"}


def test_a_parent_is_waiting_while_children_are_pending(queue: JobQueue) -> None:
    queue.settings.concurrency = 1

    @job("kids_slow_parent", schema=Parts)
    class Parent(BaseJob[Parts]):
        def perform(self, args: Parts) -> None:
            if not self.children():
                SquarePart.set(parent=self, wait=3600).perform_later(n=1)
                self.wait_for_children()

    parent = Parent.perform_later(count=1)
    queue.run_until_idle()
    assert queue.get_job(parent.id).status == "waiting"  # type: ignore[union-attr]


def test_failed_children_still_wake_the_parent(queue: JobQueue) -> None:
    @job("kids_mixed", schema=Parts)
    class Mixed(BaseJob[Parts]):
        def perform(self, args: Parts) -> list[str]:
            if not self.children():
                SquarePart.set(parent=self).perform_later(n=2)
                FailPart.set(parent=self).perform_later(n=3)
                self.wait_for_children()
            return sorted(c.status for c in self.children())

    parent = Mixed.perform_later(count=2)
    queue.run_until_idle()
    assert queue.get_job(parent.id).result == ["completed", "failed"]  # type: ignore[union-attr]


def test_cancelling_a_parent_cancels_its_unfinished_children(queue: JobQueue) -> None:
    @job("kids_waits_long", schema=Parts)
    class WaitsLong(BaseJob[Parts]):
        def perform(self, args: Parts) -> None:
            if not self.children():
                for n in range(args.count):
                    SquarePart.set(parent=self, wait=3600).perform_later(n=n)
                self.wait_for_children()

    parent = WaitsLong.perform_later(count=3)
    queue.run_until_idle()
    assert queue.cancel(parent.id) == "cancelled"
    assert {c.status for c in queue.list_jobs(parent_id=parent.id)} == {"cancelled"}


def test_deleting_the_last_unfinished_child_wakes_the_parent(queue: JobQueue) -> None:
    @job("kids_one_late", schema=Parts)
    class OneLate(BaseJob[Parts]):
        def perform(self, args: Parts) -> int:
            if self.checkpoint_data is None:
                self.checkpoint({"spawned": True})
                SquarePart.set(parent=self, wait=3600).perform_later(n=1)
                self.wait_for_children()
            return len(self.children())

    parent = OneLate.perform_later(count=1)
    queue.run_until_idle()
    (late,) = queue.list_jobs(parent_id=parent.id)
    queue.delete(late.id)
    queue.run_until_idle()
    info = queue.get_job(parent.id)
    assert info is not None and (info.status, info.result) == ("completed", 0)


def test_the_parents_wake_up_is_sent_as_a_signal_in_the_worker(queue: JobQueue) -> None:
    from activejob import signals

    woken: list[int] = []

    def on_enqueued(sender: object, **event: Any) -> None:
        if event.get("reason") == "children finished":
            woken.append(event["job_id"])

    with signals.job_enqueued.connected_to(on_enqueued):
        parent = SumParts.perform_later(count=2)
        queue.run_until_idle()
    assert woken == [parent.id]


def test_a_parent_with_no_children_to_wait_for_goes_on_at_once(queue: JobQueue) -> None:
    parent = SumParts.perform_later(count=0)
    queue.run_until_idle()
    info = queue.get_job(parent.id)
    assert info is not None and (info.status, info.result) == ("completed", {"total": 0, "statuses": []})
    assert [e.type for e in queue.events(parent.id)] == ["enqueued", "started", "completed"]


def test_a_parent_whose_children_have_all_finished_goes_on_at_once(queue: JobQueue) -> None:
    @job("kids_wait_twice", schema=Parts)
    class WaitsTwice(BaseJob[Parts]):
        def perform(self, args: Parts) -> int:
            if not self.children():
                SquarePart.set(parent=self).perform_later(n=3)
                self.wait_for_children()
            self.wait_for_children()  # run again: its one child is done, nothing to wait for
            return len(self.children())

    parent = WaitsTwice.perform_later(count=1)
    queue.run_until_idle()
    info = queue.get_job(parent.id)
    assert info is not None and (info.status, info.result) == ("completed", 1)
    assert [e.type for e in queue.events(parent.id)].count("waiting") == 1


def test_inline_runs_a_parent_with_no_children_to_wait_for() -> None:
    from activejob.testing import inline

    with inline():
        handle = SumParts.perform_later(count=0)
    assert (handle.status, handle.result) == ("completed", {"total": 0, "statuses": []})


def test_cancelling_a_parent_stops_its_children_running_in_this_process_at_once(queue: JobQueue, tmp_path: Any) -> None:
    # Heartbeats a minute apart: without hearing the cancel at once, the child would run that long.
    queue.settings.lease, queue.settings.heartbeat_interval = 180, 60

    @job("kids_blocking_parent", schema=Parts)
    class Parent(BaseJob[Parts]):
        def perform(self, args: Parts) -> None:
            if not self.children():
                wk.WkBlock.set(parent=self).perform_later(release=str(tmp_path / "never"), limit=120)
                self.wait_for_children()

    parent = Parent.perform_later(count=1)
    queue.start()
    try:
        wait_for(lambda: [c.status for c in queue.list_jobs(parent_id=parent.id)] == ["running"]
                 and queue.get_job(parent.id).status == "waiting")  # type: ignore[union-attr]
        assert queue.cancel(parent.id) == "cancelled"  # it was waiting: cancelled at once, its child marked
        child = queue.list_jobs(parent_id=parent.id)[0]
        wait_for(lambda: queue.get_job(child.id).status == "cancelled", 10)  # type: ignore[union-attr]
    finally:
        queue.stop(timeout=20)
