"""Batches: a group of jobs, and callbacks once they have all finished."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from activejob import BaseJob, Batch, BatchInfo, ConfigurationError, InvalidTransition, JobNotFound, JobQueue, job


class Row(BaseModel):
    n: int


SEEN: list[tuple[str, Any]] = []


@job("batch_row", schema=Row, max_retries=0)
class ImportRow(BaseJob[Row]):
    def perform(self, args: Row) -> int:
        if args.n < 0:
            raise ValueError("negative row")
        return args.n


@job("batch_row_adds_sibling", schema=Row, max_retries=0)
class AddsSibling(BaseJob[Row]):
    def perform(self, args: Row) -> None:
        ImportRow.set(batch=self.batch).perform_later(n=args.n + 100)


@job("batch_summary")
class Summarize(BaseJob[Any]):
    def perform(self, args: Any) -> dict[str, Any]:
        batch = self.batch
        assert isinstance(batch, BatchInfo)
        SEEN.append(("complete", batch))
        return {"total": batch.total, "completed": batch.completed, "failed": batch.failed}


@job("batch_publish")
class Publish(BaseJob[Any]):
    def perform(self, args: Any) -> None:
        SEEN.append(("success", self.batch))


@job("batch_alert")
class Alert(BaseJob[Any]):
    def perform(self, args: Any) -> None:
        SEEN.append(("failure", self.batch))


@pytest.fixture(autouse=True)
def _forget() -> None:
    SEEN.clear()


def kinds() -> list[str]:
    return [kind for kind, _ in SEEN]


def test_jobs_enqueued_in_the_block_belong_to_the_batch(queue: JobQueue) -> None:
    with Batch(description="import 2026-12") as batch:
        one = ImportRow.perform_later(n=1)
        more = ImportRow.perform_all_later([{"n": 2}, {"n": 3}])
    outside = ImportRow.perform_later(n=4)
    assert batch.id is not None
    assert {queue.get_job(h.id).batch_id for h in [one, *more]} == {batch.id}  # type: ignore[union-attr]
    assert queue.get_job(outside.id).batch_id is None  # type: ignore[union-attr]
    info = queue.get_batch(batch.id)
    assert info is not None
    assert (info.description, info.total, info.pending, info.finished) == ("import 2026-12", 3, 3, False)


def test_on_complete_and_on_success_run_once_after_every_member_completed(queue: JobQueue) -> None:
    with Batch(on_complete=Summarize, on_success=Publish, on_failure=Alert) as batch:
        ImportRow.perform_all_later([{"n": i} for i in range(5)])
    queue.run_until_idle()
    assert sorted(kinds()) == ["complete", "success"]
    info = queue.get_batch(batch.id)  # type: ignore[arg-type]
    assert info is not None and info.finished and info.completed == 5 and info.progress == 1.0
    summary = queue.list_jobs(name="batch_summary")
    assert len(summary) == 1 and summary[0].result == {"total": 5, "completed": 5, "failed": 0}


def test_a_failed_member_runs_on_failure_once_and_on_complete_but_not_on_success(queue: JobQueue) -> None:
    with Batch(on_complete=Summarize, on_success=Publish, on_failure=Alert) as batch:
        ImportRow.perform_all_later([{"n": 1}, {"n": -1}, {"n": -2}, {"n": 3}])
    queue.run_until_idle()
    assert sorted(kinds()) == ["complete", "failure"]
    info = queue.get_batch(batch.id)  # type: ignore[arg-type]
    assert info is not None and (info.completed, info.failed, info.finished) == (2, 2, True)
    assert info.failed_at is not None


def test_the_callback_reads_the_batch_as_self_batch(queue: JobQueue) -> None:
    with Batch(on_complete=Summarize) as batch:
        ImportRow.perform_later(n=1)
    queue.run_until_idle()
    (_, seen), = SEEN
    assert seen.id == batch.id and seen.finished and seen.total == 1


def test_an_empty_batch_completes_when_its_block_ends(queue: JobQueue) -> None:
    with Batch(on_complete=Summarize):
        pass
    queue.run_until_idle()
    assert kinds() == ["complete"]


def test_a_member_adds_a_sibling_before_the_batch_finishes(queue: JobQueue) -> None:
    with Batch(on_complete=Summarize) as batch:
        AddsSibling.perform_later(n=1)
    queue.run_until_idle()
    info = queue.get_batch(batch.id)  # type: ignore[arg-type]
    assert info is not None and info.total == 2 and info.completed == 2
    (_, seen), = SEEN
    assert seen.total == 2


def test_batch_add_enqueues_a_member_later(queue: JobQueue) -> None:
    with Batch(on_complete=Summarize) as batch:
        ImportRow.perform_later(n=1)
    assert batch.id is not None and not queue.get_batch(batch.id).finished  # type: ignore[union-attr]
    later = Batch.open(batch.id)
    with later:
        handle = later.add(ImportRow, n=7)
    assert queue.get_job(handle.id).batch_id == batch.id  # type: ignore[union-attr]
    queue.run_until_idle()
    assert queue.get_batch(batch.id).total == 2  # type: ignore[union-attr]
    assert kinds() == ["complete"]


def test_no_member_joins_a_batch_that_has_finished(queue: JobQueue) -> None:
    with Batch(on_complete=Summarize) as batch:
        ImportRow.perform_later(n=1)
    queue.run_until_idle()
    assert batch.id is not None and queue.get_batch(batch.id).finished  # type: ignore[union-attr]
    with pytest.raises(InvalidTransition, match=rf"batch_row: batch {batch.id} has finished or was cancelled"):
        ImportRow.set(batch=batch.id).perform_later(n=2)
    with pytest.raises(InvalidTransition, match="has finished"), Batch.open(batch.id) as later:
        later.add(ImportRow, n=3)
    assert queue.get_batch(batch.id).total == 1  # type: ignore[union-attr]
    assert kinds() == ["complete"]  # its callback ran once, for the members it had


def test_no_member_joins_a_cancelled_batch(queue: JobQueue) -> None:
    with Batch() as batch:
        ImportRow.perform_in(3600, n=1)
    assert batch.id is not None
    queue.cancel_batch(batch.id)
    with pytest.raises(InvalidTransition, match=rf"batch {batch.id} has finished or was cancelled"):
        ImportRow.set(batch=batch.id).perform_later(n=2)


def test_no_member_joins_a_batch_that_does_not_exist(queue: JobQueue) -> None:
    with pytest.raises(JobNotFound, match="batch_row: no batch with id 424242"):
        ImportRow.set(batch=424242).perform_all_later([{"n": 1}, {"n": 2}])
    assert queue.list_jobs() == []


def test_async_with_collects_members_from_async_code(queue: JobQueue) -> None:
    async def main() -> int | None:
        async with Batch(on_complete=Summarize) as batch:
            await ImportRow.aperform_later(n=1)
            await asyncio.gather(*(ImportRow.aperform_later(n=i) for i in range(2, 4)))
        return batch.id

    batch_id = asyncio.run(main())
    assert batch_id is not None
    assert queue.get_batch(batch_id).total == 3  # type: ignore[union-attr]
    queue.run_until_idle()
    assert kinds() == ["complete"]


def test_cancel_batch_cancels_unfinished_members_and_completes_it(queue: JobQueue) -> None:
    with Batch(on_complete=Summarize, on_success=Publish) as batch:
        ImportRow.perform_all_later([{"n": 1}, {"n": 2}])
    info = queue.cancel_batch(batch.id)  # type: ignore[arg-type]
    assert (info.cancelled, info.finished) == (2, True)
    queue.run_until_idle()
    assert kinds() == ["complete"]


def test_cancelling_the_last_unfinished_members_one_by_one_finishes_the_batch_at_once(queue: JobQueue) -> None:
    with Batch(on_complete=Summarize) as batch:
        first, second, third = ImportRow.perform_all_later([{"n": 1}, {"n": 2}, {"n": 3}])
    queue.cancel(first.id)
    assert not queue.get_batch(batch.id).finished  # type: ignore[arg-type, union-attr]
    queue.cancel_many([second.id, third.id])
    info = queue.get_batch(batch.id)  # type: ignore[arg-type]
    assert info is not None and (info.cancelled, info.finished) == (3, True)
    own = [e for e in queue.events(batch_id=batch.id) if e.job_id is None]
    assert [(e.type, e.status) for e in own] == [("batch_finished", "cancelled")]
    assert [j.status for j in queue.list_jobs(name="batch_summary")] == ["pending"]  # no chore needed


def test_callback_arguments_are_checked_when_the_batch_is_created(queue: JobQueue) -> None:
    with pytest.raises(Exception, match="batch_row"), Batch(on_complete=(ImportRow, {"n": "not a number"})):
        pass
    assert queue.list_batches() == []


def test_a_finished_batch_records_batch_finished_once_with_its_counts(queue: JobQueue) -> None:
    with Batch(on_complete=Summarize, description="rows") as batch:
        ImportRow.perform_all_later([{"n": 1}, {"n": 2}])
    queue.run_until_idle()
    assert queue.store.settle_batches([batch.id], datetime.now(UTC)) == []  # type: ignore[list-item]  (settled once)
    own = [e for e in queue.events(batch_id=batch.id) if e.job_id is None]
    assert [(e.type, e.status, e.batch_id) for e in own] == [("batch_finished", "completed", batch.id)]
    assert {k: own[0].data[k] for k in ("total", "completed", "failed", "cancelled", "description")} == {
        "total": 2, "completed": 2, "failed": 0, "cancelled": 0, "description": "rows"}


def test_a_batchs_events_include_its_members_events_and_nothing_else(queue: JobQueue) -> None:
    with Batch() as batch:
        member = ImportRow.perform_later(n=1)
    outsider = ImportRow.perform_later(n=2)
    queue.run_until_idle()
    found = queue.events(batch_id=batch.id)
    assert {e.job_id for e in found} == {member.id, None}
    assert outsider.id not in {e.job_id for e in found}
    assert {e.batch_id for e in found} == {batch.id}
    assert [e.type for e in found if e.job_id == member.id] == ["enqueued", "started", "completed"]


def test_a_failing_member_records_batch_failed_then_a_failed_batch_finished(queue: JobQueue) -> None:
    with Batch() as batch:
        ImportRow.perform_all_later([{"n": -1}, {"n": 2}])
    queue.run_until_idle()
    own = [(e.type, e.status, e.data["failed"]) for e in queue.events(batch_id=batch.id) if e.job_id is None]
    assert own == [("batch_failed", "failed", 1), ("batch_finished", "failed", 1)]


def test_cancel_batch_records_batch_cancelled_and_a_cancelled_batch_finished(queue: JobQueue) -> None:
    with Batch(owner="ann") as batch:
        ImportRow.perform_all_later([{"n": 1}, {"n": 2}])
    queue.cancel_batch(batch.id)  # type: ignore[arg-type]
    queue.cancel_batch(batch.id)  # type: ignore[arg-type]  (a second cancel records nothing more)
    own = [e for e in queue.events(batch_id=batch.id) if e.job_id is None]
    assert [(e.type, e.status) for e in own] == [("batch_cancelled", "cancelled"), ("batch_finished", "cancelled")]
    assert {e.owner for e in own} == {"ann"}


def test_batch_events_go_out_as_batch_signals_sent_by_batch(queue: JobQueue) -> None:
    from activejob import signals

    seen: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **event: Any) -> None:
        seen.append((sender, event))

    signals.batch_finished.connect(receiver)
    try:
        with Batch(description="signalled") as batch:
            ImportRow.perform_later(n=1)
        queue.run_until_idle()
    finally:
        signals.batch_finished.disconnect(receiver)
    ((sender, event),) = seen
    assert sender == "batch"
    assert (event["job_id"], event["batch_id"], event["status"], event["total"], event["description"]) == (
        None, batch.id, "completed", 1, "signalled")


def test_cancelling_a_finished_batch_changes_nothing_and_records_nothing(queue: JobQueue) -> None:
    with Batch() as batch:
        ImportRow.perform_later(n=1)
    queue.run_until_idle()
    info = queue.cancel_batch(batch.id)  # type: ignore[arg-type]
    assert (info.completed, info.cancelled, info.cancelled_at) == (1, 0, None)
    assert [e.type for e in queue.events(batch_id=batch.id) if e.job_id is None] == ["batch_finished"]


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("owner", "x" * 201, "owner is 201 characters long"),
    ("owner", "a\udcff", "owner contains a lone surrogate"),
    ("description", "d\x00", "description contains a NUL character"),
])
def test_a_batch_refuses_what_its_columns_cannot_hold_before_writing(queue: JobQueue, field: str, value: str,
                                                                     problem: str) -> None:
    with pytest.raises(ConfigurationError, match=f"Batch: {problem}"):
        Batch(**{field: value})  # type: ignore[arg-type]
    assert queue.list_batches() == []
