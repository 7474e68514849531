"""The example's jobs: a slow report with phases, a flaky import that retries, a quick email."""

from __future__ import annotations

import time
from typing import Any

import anyio
from pydantic import BaseModel, Field

from activejob import BaseJob, job


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


KINDS: dict[str, type[BaseJob[Any]]] = {"report": GenerateReport, "flaky": FlakyImport, "email": SendEmail}
"""What the page's buttons start."""
