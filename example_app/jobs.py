"""The example's jobs: a slow report with phases, a flaky import that retries, a quick email,
a fan-out to child jobs, a batch of thumbnails with a callback, and a nightly cleanup on a
cron schedule."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import anyio
from pydantic import BaseModel, Field

from activejob import BaseJob, JobQueue, NoArgs, clock, job


class ReportArgs(BaseModel):
    title: str = "Monthly sales"
    rows: int = Field(default=120, ge=1, le=100_000)
    seconds: float = Field(default=10.0, ge=0, le=600)  # how long the whole report takes


@job("generate_report", schema=ReportArgs, timeout=120, queue="reports",
     label="Generate report", phases=["collect", "aggregate", "render"])
class GenerateReport(BaseJob[ReportArgs]):
    """Builds a report in three phases, reporting "X of Y rows" as it goes."""

    async def perform(self, args: ReportArgs) -> dict[str, object]:
        step = args.seconds / (args.rows * 2 + 10)
        # Resume where a previous attempt stopped (a restart, a lost worker).
        start = (self.checkpoint_data or {}).get("collected", 0)
        for row in range(start + 1, args.rows + 1):
            await anyio.sleep(step)
            self.progress_count(row, args.rows, message=f"collecting row {row}", phase="collect")
            if row % 20 == 0:
                self.checkpoint({"collected": row})
        self.log("collected", rows=args.rows)
        for row in range(1, args.rows + 1):
            await anyio.sleep(step)
            self.progress_count(row, args.rows, message="aggregating", phase="aggregate")
        for page in range(1, 11):
            await anyio.sleep(step)
            self.progress_count(page, 10, message=f"rendering page {page} of 10", phase="render")
        return {"title": args.title, "rows": args.rows, "pages": 10}


class ImportArgs(BaseModel):
    source: str = "https://example.com/feed.csv"
    failures: int = Field(default=2, ge=0, le=5)  # attempts that fail before one succeeds


@job("flaky_import", schema=ImportArgs, max_retries=3, backoff="fixed", backoff_base=1.0,
     retry_on=[ConnectionError], label="Flaky import")
class FlakyImport(BaseJob[ImportArgs]):
    """Fails with ConnectionError on its first attempts, then succeeds: watch it retry."""

    def perform(self, args: ImportArgs) -> dict[str, object]:
        self.progress(0.3, message=f"attempt {self.attempt}: connecting to {args.source}")
        time.sleep(0.5)
        if self.attempt <= args.failures:
            raise ConnectionError(f"{args.source} did not answer (attempt {self.attempt})")
        self.progress(1.0, message="imported")
        return {"imported": 42, "attempts": self.attempt}


class EmailArgs(BaseModel):
    to: str = "someone@example.com"
    subject: str = "Hello from activejob"


@job("send_email", schema=EmailArgs, queue="mail", priority=10, label="Send email")
class SendEmail(BaseJob[EmailArgs]):
    """Pretends to send an email (a quarter of a second)."""

    def perform(self, args: EmailArgs) -> dict[str, object]:
        time.sleep(0.25)
        self.log("sent", to=args.to)
        return {"sent": True, "to": args.to}


class OrderArgs(BaseModel):
    order: int


@job("process_order", schema=OrderArgs, label="Process order")
class ProcessOrder(BaseJob[OrderArgs]):
    """One child of a fan-out: prices one order."""

    def perform(self, args: OrderArgs) -> int:
        time.sleep(0.2)
        return args.order * 10


class OrdersArgs(BaseModel):
    orders: int = Field(default=5, ge=1, le=100)


@job("process_orders", schema=OrdersArgs, label="Process orders (fan-out)")
class ProcessOrders(BaseJob[OrdersArgs]):
    """Fans out one child per order, waits for them all, then adds up their results."""

    def perform(self, args: OrdersArgs) -> dict[str, object]:
        if not self.children():  # the first run: fan out, then wait (the job is "waiting")
            for order in range(1, args.orders + 1):
                ProcessOrder.set(parent=self).perform_later(order=order)
            self.wait_for_children()
        # Run again once every child has finished.
        children = self.children()
        return {"orders": len(children), "total": sum(c.result or 0 for c in children),
                "failed": sum(c.status != "completed" for c in children)}


class CleanupArgs(BaseModel):
    older_than_hours: float = Field(default=24.0, ge=0)


@job("nightly_cleanup", schema=CleanupArgs, cron="0 3 * * *", label="Nightly cleanup")
class NightlyCleanup(BaseJob[CleanupArgs]):
    """Every night at 03:00 UTC (any running worker enqueues it, once per night): deletes the
    completed and cancelled jobs that finished more than `older_than_hours` ago."""

    def perform(self, args: CleanupArgs) -> dict[str, int]:
        queue = JobQueue.get()
        cutoff = clock.now() - timedelta(hours=args.older_than_hours)
        old = [j.id for j in queue.list_jobs(status=["completed", "cancelled"], limit=1000, order="oldest")
               if j.finished_at is not None and j.finished_at <= cutoff]
        self.progress(1.0, message=f"{len(old)} old jobs")
        return {"deleted": queue.delete_many(old) if old else 0}


class ThumbnailArgs(BaseModel):
    image: int


@job("make_thumbnail", schema=ThumbnailArgs, queue="media", label="Make thumbnail")
class MakeThumbnail(BaseJob[ThumbnailArgs]):
    """One member of an album's batch."""

    def perform(self, args: ThumbnailArgs) -> str:
        time.sleep(0.1)
        return f"thumb-{args.image}.png"


@job("album_ready", label="Album ready (batch callback)")
class AlbumReady(BaseJob[NoArgs]):
    """The batch's callback: runs once every thumbnail has finished, and reports on them."""

    def perform(self, args: NoArgs) -> dict[str, object]:
        batch = self.batch
        return {"album": batch.description, "thumbnails": batch.total, "completed": batch.completed,
                "failed": batch.failed}

KINDS: dict[str, type[BaseJob[Any]]] = {"report": GenerateReport, "flaky": FlakyImport, "email": SendEmail,
                                        "orders": ProcessOrders, "cleanup": NightlyCleanup}
"""What the page's buttons start."""
