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
    job_id: int
    type: str
    name: str
    queue: str
    owner: str | None
    status: str
    attempt: int
    created_at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any) -> EventRecord:
        data = _loads(row["data"]) or {}
        return cls(
            id=row["id"], job_id=row["job_id"], type=row["type"], name=row["name"],
            queue=row["queue"], owner=row["owner"], status=row["status"],
            attempt=row["attempt"], created_at=row["created_at"],
            data=data if isinstance(data, dict) else {"value": data},
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

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["started_at"] = self.started_at.isoformat()
        out["heartbeat_at"] = self.heartbeat_at.isoformat()
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
