"""Pausing and resuming queues: workers claim nothing from a paused queue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from .. import dialects
from .base import StoreBase, paused


class Queues(StoreBase):
    """pause_queue, resume_queue and paused_queues."""

    def pause_queue(self, queue: str, now: datetime) -> bool:
        """Stop workers from claiming `queue`'s jobs (running ones finish). False if it was paused."""
        with self.write() as c:
            stmt = dialects.insert_unless_exists(paused, "queue", self.dialect, partial=False)
            return c.execute(stmt.values(queue=queue, paused_at=now).returning(paused.c.queue)).first() is not None

    def resume_queue(self, queue: str) -> bool:
        """Let workers claim `queue`'s jobs again, waking idle ones. False if it was not paused."""
        with self.write() as c:
            resumed = c.execute(
                delete(paused).where(paused.c.queue == queue).returning(paused.c.queue)).first() is not None
            if resumed:
                dialects.notify(c)
        return resumed

    def paused_queues(self) -> dict[str, datetime]:
        """Paused queues and when each was paused."""
        with self.read() as c:
            return {q: at for q, at in c.execute(select(paused.c.queue, paused.c.paused_at).order_by(paused.c.queue))}
