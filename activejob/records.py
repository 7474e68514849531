"""Plain read-only views of stored rows, handed from the store to everyone above it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .models import FINISHED, JobStatus


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # a corrupt row is shown as it is, never a crash


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as stored: what `queue.get_job(id)` and `queue.list_jobs()` return.

        info = queue.get_job(handle.id)
        info.status, info.progress, info.result, info.error
    """

    id: int
    name: str
    queue: str
    priority: int
    status: str
    args: Any
    result: Any
    error: str | None
    traceback: str | None
    attempts: int
    max_retries: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    progress: float | None
    progress_message: str | None
    progress_phase: str | None
    progress_current: int | None
    progress_total: int | None
    checkpoint: Any
    parent_id: int | None
    owner: str | None
    unique_key: str | None = None
    concurrency_key: str | None = None  # what a per-key concurrency limit counts it under
    batch_id: int | None = None
    args_version: int | None = None  # the schema version its args were written with (None: 1)
    meta: Any = None  # what travels with the job (trace context, per-call timeout), decoded
    unique_until: str | None = None
    unique_expires_at: datetime | None = None
    rate_key: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> JobInfo:
        values = {name: row[name] for name in cls.__dataclass_fields__ if name in row}
        values["args"] = _loads(row["args"])
        values["result"] = _loads(row["result"])
        values["checkpoint"] = _loads(row["checkpoint"])
        if "meta" in values:
            values["meta"] = _loads(values["meta"])
        values["cancel_requested"] = bool(row["cancel_requested"])
        return cls(**values)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration(self) -> float | None:
        """Seconds from the last start to the finish, when both are known."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        out["duration"] = self.duration
        return out


def signal_payload(event: str, *, job_id: int | None, name: str, queue: str, owner: str | None, status: str,
                   attempt: int, at: datetime, event_id: int | None = None,
                   data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keyword payload of an event's signal, as `activejob.signals` documents it: the
    event's own data, then the keys every signal has (which win over data of the same name).

    One shape whether the event was stored (`EventRecord.payload`) or never was
    (`perform_now`, checkpoints, jobs kept by `capture_enqueued`), so a receiver cannot tell
    the two apart; `job_id` and `event_id` are None when there is no row.
    """
    return {
        **(data or {}),
        "event_id": event_id, "job_id": job_id, "name": name, "queue": queue, "owner": owner,
        "status": status, "attempt": attempt, "event": event, "at": at,
    }


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of the event log, as signals and consumers see it."""

    id: int
    job_id: int | None
    """None for a batch's own events (`batch_finished`, ...)."""
    type: str
    name: str
    queue: str
    owner: str | None
    status: str
    attempt: int
    created_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    batch_id: int | None = None
    """The batch the event is about: its own events, and its members' events as read back
    from the log (events returned by the verbs that wrote them do not fill it in)."""

    @classmethod
    def from_row(cls, row: Any) -> EventRecord:
        data = _loads(row["data"]) or {}
        return cls(
            id=row["id"], job_id=row["job_id"], type=row["type"], name=row["name"],
            queue=row["queue"], owner=row["owner"], status=row["status"],
            attempt=row["attempt"], created_at=row["created_at"],
            data=data if isinstance(data, dict) else {"value": data},
            batch_id=row.get("batch_id"),
        )

    def payload(self) -> dict[str, Any]:
        """The keyword payload of the matching signal."""
        return signal_payload(self.type, job_id=self.job_id, name=self.name, queue=self.queue, owner=self.owner,
                              status=self.status, attempt=self.attempt, at=self.created_at, event_id=self.id,
                              data=self.data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: list[str] | None
    job_types: list[str]
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime
    queue_rate_limits: dict[str, str] = field(default_factory=dict)  # {"mail": "10/s"}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["heartbeat_at"] = self.heartbeat_at.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """A batch and how far its members are, as `queue.get_batch(id)` returns it and a batch
    callback reads it as `self.batch`.

        info = queue.get_batch(batch.id)
        info.total, info.completed, info.failed, info.finished, f"{info.progress:.0%}"
    """

    id: int
    description: str | None
    owner: str | None
    total: int
    pending: int  # includes members waiting for their dependencies or children
    running: int
    completed: int
    failed: int
    cancelled: int
    finished: bool  # every member has finished, and the callbacks are enqueued
    progress: float  # 0..1: finished members count 1, running ones their reported progress
    created_at: datetime
    finished_at: datetime | None = None
    failed_at: datetime | None = None  # when a member first failed for good
    cancelled_at: datetime | None = None
    sealed: bool = True  # its `with Batch()` block has ended

    @classmethod
    def from_row(cls, row: Any, members: dict[str, tuple[int, float]]) -> BatchInfo:
        """From a batch row and its members' (count, summed progress) by status."""
        count = {status: n for status, (n, _) in members.items()}
        total = sum(count.values())
        done = sum(count.get(s, 0) for s in ("completed", "failed", "cancelled"))
        running_progress = members.get("running", (0, 0.0))[1]
        return cls(
            id=row["id"], description=row["description"], owner=row["owner"], total=total,
            pending=count.get("pending", 0) + count.get("waiting", 0), running=count.get("running", 0),
            completed=count.get("completed", 0), failed=count.get("failed", 0),
            cancelled=count.get("cancelled", 0), finished=row["finished_at"] is not None,
            progress=1.0 if row["finished_at"] is not None else min(1.0, (done + running_progress) / total)
            if total else 0.0,
            created_at=row["created_at"], finished_at=row["finished_at"], failed_at=row["failed_at"],
            cancelled_at=row["cancelled_at"], sealed=row["sealed_at"] is not None,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job this worker now owns: the row as claimed, and the token that fences it."""

    id: int
    name: str
    queue: str
    owner: str | None
    args: str
    attempts: int
    max_retries: int
    lease_token: str
    checkpoint: str | None
    parent_id: int | None
    batch_id: int | None = None
    args_version: int | None = None  # the schema version its args were written with (None: 1)
    meta: str | None = None  # JSON: what travels with the job (trace context, per-call timeout)


STATUSES = tuple(s.value for s in JobStatus)
