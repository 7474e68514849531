"""`JobQueue`'s batch verbs: what `with Batch(...)` calls, and reading or cancelling a batch."""

from __future__ import annotations

from . import clock
from .emit import emit
from .queue_base import QueueBase, an_id
from .records import BatchInfo, JobInfo


class QueueBatches(QueueBase):
    """Making, sealing, reading and cancelling batches."""

    def create_batch(self, *, description: str | None, owner: str | None, callbacks: str | None) -> int:
        """A new batch's id (what `with Batch(...)` calls; its callbacks already encoded)."""
        return self.store.create_batch(description=description, owner=owner, callbacks=callbacks, now=clock.now())

    def seal_batch(self, batch_id: int) -> None:
        """The batch's block has ended: it completes once its members have all finished."""
        records = self.store.seal_batch(an_id(batch_id, "batch"), clock.now())
        if records:
            self._wake()
        emit(records)

    def get_batch(self, batch_id: int) -> BatchInfo | None:
        """The batch with this id and how far its members are, or None.

            info = queue.get_batch(batch.id)
            print(f"{info.completed}/{info.total} done, {info.failed} failed, {info.progress:.0%}")
        """
        return self.store.get_batch(an_id(batch_id, "batch"))

    def batch_members(self, batch_id: int, *, limit: int = 500) -> list[JobInfo]:
        """The jobs of a batch, oldest first."""
        return self.store.batch_members(an_id(batch_id, "batch"), limit=limit)

    def batch_callbacks(self, batch_id: int) -> list[JobInfo]:
        """The callback jobs a batch has enqueued so far."""
        return self.store.batch_callbacks(an_id(batch_id, "batch"))

    def list_batches(self, *, limit: int = 50, unfinished: bool | None = None,
                     owner: str | None = None) -> list[BatchInfo]:
        """The newest batches first (`unfinished=True`: only those still running)."""
        return self.store.list_batches(limit=limit, unfinished=unfinished, owner=owner)

    def cancel_batch(self, batch_id: int) -> BatchInfo:
        """Cancel every member not yet finished (running ones as soon as their workers hear);
        the batch then finishes, and its on_complete callback runs. Returns the batch now."""
        running, records = self.store.cancel_batch(an_id(batch_id, "batch"), clock.now())
        emit(records)
        for job_id in running:
            if self._runner is not None:
                self._runner.cancel_local(job_id)
        info = self.store.get_batch(an_id(batch_id, "batch"))
        assert info is not None  # cancel_batch raised JobNotFound otherwise
        self._wake()
        return info
