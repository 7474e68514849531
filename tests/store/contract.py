"""What the store contract tests share: a fixed moment to pass as `now` (no verb here reads
the clock, so every timestamp is exact), requests, outcomes, and a view of one store with
the verbs' usual arguments filled in."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from activejob.records import Claimed, EventRecord, JobInfo
from activejob.store import NewJob, Outcome, Store

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = 30.0
NAME = "contract_job"


def at(seconds: float) -> datetime:
    """NOW plus `seconds`."""
    return NOW + timedelta(seconds=seconds)


def request(name: str = NAME, *, queue: str = "default", priority: int = 0, run_at: datetime = NOW,
            max_retries: int = 3, args: str = '{"n": 1}', **more: Any) -> NewJob:
    return NewJob(name=name, args=args, queue=queue, priority=priority, run_at=run_at, max_retries=max_retries,
                  **more)


@dataclass
class Jobs:
    """A test's view of one store: the verbs' usual arguments filled in."""

    store: Store

    @property
    def sqlite(self) -> bool:
        return self.store.dialect == "sqlite"

    def add(self, count: int = 1, **options: Any) -> list[int]:
        return self.store.enqueue([request(**options) for _ in range(count)], NOW)[0]

    def claim(self, limit: int = 10, *, worker: str = "w1", names: Sequence[str] = (NAME,), now: datetime = NOW,
              queues: Sequence[str] | None = None, lease: float = LEASE) -> list[Claimed]:
        return self.store.claim(worker_id=worker, names=list(names), queues=queues, limit=limit, now=now,
                                lease=lease)[0]

    def running(self, count: int = 1, **options: Any) -> list[Claimed]:
        """`count` new jobs, claimed by w1."""
        ids = self.add(count, **options)
        claimed = self.claim(count, names=[options.get("name", NAME)])
        assert [c.id for c in claimed] == ids
        return claimed

    def get(self, job_id: int) -> JobInfo:
        info = self.store.get(job_id)
        assert info is not None, f"no job {job_id}"
        return info

    def status(self, job_id: int) -> str:
        return self.get(job_id).status

    def log(self, after: int = 0, **filters: Any) -> list[EventRecord]:
        return self.store.events(after=after, **filters)

    def last_event(self) -> int:
        return self.store.last_event_id()

    def logged(self, records: list[EventRecord], after: int) -> None:
        """The events a verb returned are exactly the rows it appended to the log."""
        assert sorted(records, key=lambda r: r.id) == self.log(after)


def completed(job: Claimed, result: str | None = "42") -> Outcome:
    return Outcome(job.id, job.lease_token, "completed", "completed", result=result)


def failed(job: Claimed, error: str = "ValueError: boom") -> Outcome:
    return Outcome(job.id, job.lease_token, "failed", "failed", error=error, traceback="Traceback ...")


def retrying(job: Claimed, run_at: datetime) -> Outcome:
    return Outcome(job.id, job.lease_token, "pending", "retrying", error="ValueError: again", run_at=run_at)


def requeued(job: Claimed) -> Outcome:
    return Outcome(job.id, job.lease_token, "pending", "requeued", refund_attempt=True)


def cancelled(job: Claimed) -> Outcome:
    return Outcome(job.id, job.lease_token, "cancelled", "cancelled")


def waiting(job: Claimed) -> Outcome:
    return Outcome(job.id, job.lease_token, "waiting", "waiting", refund_attempt=True)


def forged(outcome: Outcome) -> Outcome:
    """The same outcome under a lease token nobody holds."""
    return Outcome(outcome.job_id, "not-the-token", outcome.status, outcome.event, result=outcome.result,
                   error=outcome.error, run_at=outcome.run_at, refund_attempt=outcome.refund_attempt)


class OtherWriter:
    """Another process's write transaction on a SQLite file: holds the write lock until released."""

    def __init__(self, url: str) -> None:
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=0)
        conn.execute("BEGIN IMMEDIATE")
        self.conn: sqlite3.Connection | None = conn

    def release(self) -> None:
        """Roll back and close (again is harmless)."""
        if self.conn is None:
            return
        self.conn.rollback()
        self.conn.close()
        self.conn = None


@contextmanager
def writing_in_another_thread(store: Store) -> Iterator[None]:
    """Another thread of this process is inside a store write (SQLite: holds the store's write lock)."""
    inside, leave = threading.Event(), threading.Event()

    def write() -> None:
        with store.write():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        assert inside.wait(10), "the other thread never began its write"
        yield
    finally:
        leave.set()
        thread.join(10)
