"""Enqueues that wait for the Django transaction: the hook this app registers with
`activejob.enqueuing.set_deferral`, and the handle `perform_later` returns meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.db import transaction

from activejob.errors import JobNotFound
from activejob.handle import JobHandle

if TYPE_CHECKING:
    from activejob.records import JobInfo


class _NotYet:
    """Where a deferred handle's reads go until its transaction commits."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _refuse(self) -> JobNotFound:
        return JobNotFound(f"{self.name} is not enqueued yet: it waits for its transaction to commit, "
                           "and is dropped if that rolls back")

    def get_job(self, job_id: int) -> JobInfo | None:
        raise self._refuse()

    def cancel(self, job_id: int) -> str:
        raise self._refuse()


class DeferredJobHandle(JobHandle):
    """A job enqueued inside `transaction.atomic()`, written when the transaction commits.

    Until then `id` is None and reading or cancelling it raises `JobNotFound`; from the
    commit on it is an ordinary handle. A rollback drops the job, and the handle never
    gets an id (as in Rails, the job object exists, the stored job does not).

        with transaction.atomic():
            order = Order.objects.create(...)
            handle = ShipOrder.perform_later(order_id=order.pk)
            handle.id          # None: nothing is written yet
        handle.id              # the job's id, once committed
        handle.status          # "pending"
    """

    __slots__ = ()

    def __init__(self, name: str) -> None:
        super().__init__(None, name, _NotYet(name))  # type: ignore[arg-type]  # no id before the commit

    def __repr__(self) -> str:
        return f"<JobHandle {self.name} #{self.id}>" if self.committed else f"<JobHandle {self.name} (on commit)>"

    @property
    def committed(self) -> bool:
        """Whether the transaction committed and the job was written."""
        return self.id is not None

    def _bind(self, written: JobHandle) -> None:
        self.id = written.id
        self._queue = written._queue


class Deferral:
    """Holds enqueues made inside `atomic()` on `alias` until it commits (`set_deferral`'s hook).

    `automatic` (ACTIVEJOB['ON_COMMIT']) defers every such enqueue; without it only
    `Job.set(on_commit=True)` does. Outside `atomic()` the job is written at once.
    """

    def __init__(self, alias: str = "default", *, automatic: bool = True) -> None:
        self.alias = alias
        self.automatic = automatic

    def __call__(self, job: str, enqueue: Callable[[], list[JobHandle]], count: int, *,
                 requested: bool | None) -> list[JobHandle] | None:
        if not (requested or self.automatic):
            return None
        if not transaction.get_connection(self.alias).in_atomic_block:
            return None  # autocommit: there is nothing to wait for
        handles = [DeferredJobHandle(job) for _ in range(count)]

        def write() -> None:
            for held, written in zip(handles, enqueue(), strict=True):
                held._bind(written)

        # A savepoint that rolls back discards this too; an error writing the job after the
        # commit is raised from the end of the atomic block (the caller's data is committed).
        transaction.on_commit(write, using=self.alias)
        return list(handles)
