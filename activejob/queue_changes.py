"""`JobQueue`'s changes to jobs and queues: cancel, retry and delete (one job or many),
pause and resume a queue, prune. Each sends the events it wrote as signals, and wakes this
process's worker when it made jobs due."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from . import clock
from .emit import emit
from .handle import JobHandle
from .queue_base import QueueBase, an_id
from .records import EventRecord

log = logging.getLogger("activejob")


class QueueChanges(QueueBase):
    """Cancelling, retrying and deleting jobs; pausing and resuming queues; pruning."""

    def cancel(self, job_id: int, *, expect: Sequence[str] | None = None) -> str:
        """Cancel a job: a pending one at once, a running one as soon as its worker hears
        (at once in this process, within a heartbeat elsewhere). Returns its status now.
        `expect` narrows the states it may be in (what a person saw on a page): a job that
        moved on meanwhile is left alone and InvalidTransition says its state."""
        status, records = self.store.request_cancel(an_id(job_id), clock.now(), expect=expect)
        self._wake_for(records)
        emit(records)
        if self._runner is not None:  # it, or descendants cancelled with it, may run here
            self._runner.cancel_local(an_id(job_id))
        return status

    def _wake_for(self, records: list[EventRecord]) -> None:
        """A cancel can make jobs due: a finished batch's callbacks, dependents that run anyway."""
        if any(r.type == "enqueued" for r in records):
            self._wake()

    def retry(self, job_id: int, *, expect: Sequence[str] | None = None) -> JobHandle:
        """Run a failed or cancelled job again, with its attempts reset. `expect` narrows the
        states it may be in (what a person saw on a page), so a stale click changes nothing."""
        records = self.store.retry_job(an_id(job_id), clock.now(), expect=expect)
        self._wake()
        emit(records)
        return JobHandle(an_id(job_id), records[0].name, self)

    def delete(self, job_id: int, *, expect: Sequence[str] | None = None) -> None:
        """Delete a job that is not running, with its events. `expect` narrows the states it
        may be in (what a person saw on a page): a job that moved on is left alone."""
        emit(self.store.delete(an_id(job_id), clock.now(), expect=expect))

    def retry_failed(self, name: str | None = None, *, queue: str | None = None, owner: str | None = None,
                     search: str | None = None) -> int:
        """Run every failed job again (of one job type, queue or owner, or matching a text
        search, as `list_jobs` filters), with fresh attempts; returns how many.

            queue.retry_failed()                       # all of them
            queue.retry_failed("send_email", search="timeout")
        """
        records = self.store.retry_failed(clock.now(), name=name, queue=queue, owner=owner, search=search)
        if records:
            self._wake()
        emit(records)
        return len(records)

    def cancel_many(self, job_ids: Sequence[int]) -> int:
        """Cancel these jobs: pending and waiting ones at once, running ones as soon as their
        workers hear. Finished or missing ones are left alone. Returns how many it cancelled
        or asked to stop.

            queue.cancel_many([12, 13, 14])
        """
        statuses, records = self.store.cancel_many(_job_ids(job_ids), clock.now())
        self._wake_for(records)
        emit(records)
        if self._runner is not None:
            for job_id, status in statuses.items():
                if status == "running":
                    self._runner.cancel_local(job_id)
        return len(statuses)

    def delete_many(self, job_ids: Sequence[int]) -> int:
        """Delete these jobs, with their events, where they are finished (completed, failed or
        cancelled); others are left alone. Returns how many it deleted.

            queue.delete_many([12, 13])
        """
        records = self.store.delete_many(_job_ids(job_ids), clock.now())
        emit(records)
        return len(records)

    def pause_queue(self, queue: str) -> bool:
        """Stop every worker, here and elsewhere, from starting jobs of `queue`: jobs already
        running finish, and enqueueing goes on. Returns False if it was paused already.

            queue.pause_queue("emails")     # the mail provider is down
            ...
            queue.resume_queue("emails")    # idle workers take them again at once
        """
        paused = self.store.pause_queue(_queue_name(queue), clock.now())
        if paused:
            log.info("queue %r paused", queue)
        return paused

    def resume_queue(self, queue: str) -> bool:
        """Let workers start jobs of a paused `queue` again. Returns False if it was not paused."""
        resumed = self.store.resume_queue(_queue_name(queue))
        if resumed:
            log.info("queue %r resumed", queue)
            self._wake()
        return resumed

    def prune(self) -> int:
        """Delete finished jobs past their retention now; returns how many."""
        now = clock.now()
        count = self.store.prune({s: now - keep for s, keep in self.settings.retention.items()})
        self.store.prune_events(now - self.settings.event_retention)
        return count


def _job_ids(job_ids: Sequence[int]) -> list[int]:
    if isinstance(job_ids, str | bytes) or any(isinstance(i, bool) or not isinstance(i, int) for i in job_ids):
        raise ValueError(f"job ids are whole numbers, got {job_ids!r}")
    return list(job_ids)


def _queue_name(queue: Any) -> str:
    if not isinstance(queue, str) or not queue.strip() or len(queue) > 200:
        raise ValueError(f"a queue name is a non-empty string of at most 200 characters, got {queue!r}")
    return queue
