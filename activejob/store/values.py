"""The plain values the verbs take and hand back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class NewJob:
    name: str
    args: str
    queue: str
    priority: int
    run_at: datetime
    max_retries: int
    owner: str | None = None
    parent_id: int | None = None
    unique_key: str | None = None
    concurrency_key: str | None = None  # jobs of a type with a per-key concurrency limit


@dataclass(slots=True)
class Outcome:
    """How one attempt ended, to be written by `finish` if the lease still holds."""

    job_id: int
    token: str
    status: str  # completed | failed | cancelled | pending (retry or requeue)
    event: str  # completed | failed | cancelled | retrying | requeued
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    run_at: datetime | None = None
    refund_attempt: bool = False  # a shutdown requeue does not count the attempt
    data: dict[str, Any] = field(default_factory=dict)
    frees_limited_slot: bool = False  # a job type with a concurrency limit: other workers may wait for it

    @property
    def wakes_workers(self) -> bool:
        """Whether idle workers elsewhere should look for jobs once this is written: the job
        is due again, or it held a slot of a limited type that another worker may take."""
        return self.status == "pending" or self.frees_limited_slot


@dataclass(slots=True)
class ProgressUpdate:
    job_id: int
    token: str
    progress: dict[str, Any] | None = None  # progress, message, phase, current, total
    checkpoint: str | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Heartbeat:
    lost: set[int]  # jobs this worker no longer owns
    cancel: set[int]  # jobs someone asked to cancel
