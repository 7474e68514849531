"""Structured logs: every record logged while a job runs says which job it is about.

The worker marks each attempt (`running_job`), in the thread a sync job runs on and in the
task of an async one, so any log record made meanwhile (by the job's own code, by a
library it calls, by activejob's loggers) can carry `job_id`, `job_name` and `attempt`.
`JobLogFilter` puts them on the records a handler sees (None outside a job);
`JsonFormatter` writes each record as one line of JSON with them:

    import logging
    from activejob.logs import JobLogFilter, JsonFormatter

    handler = logging.StreamHandler()
    handler.addFilter(JobLogFilter())
    handler.setFormatter(JsonFormatter())            # or logging.Formatter("%(job_id)s %(message)s")
    logging.getLogger().addHandler(handler)

`activejob worker` does this itself (`--log-format json` for the JSON lines).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["FIELDS", "JobFields", "JobLogFilter", "JsonFormatter", "current_job", "install", "job_fields",
           "running_job"]

FIELDS = ("job_id", "job_name", "attempt")
"""The attributes `JobLogFilter` adds to every log record."""


@dataclass(frozen=True, slots=True)
class JobFields:
    """The job an attempt runs: what log records made during it carry."""

    job_id: int | None
    job_name: str
    attempt: int


_current: ContextVar[JobFields | None] = ContextVar("activejob_running_job", default=None)


def current_job() -> JobFields | None:
    """The job running in this thread or task, or None outside a job.

    >>> current_job() is None
    True
    >>> with running_job(7, "send_email", 1):
    ...     current_job()
    JobFields(job_id=7, job_name='send_email', attempt=1)
    """
    return _current.get()


@contextlib.contextmanager
def running_job(job_id: int | None, job_name: str, attempt: int) -> Iterator[JobFields]:
    """Mark the code inside as running one attempt of a job (the worker's pipeline does).

    A context variable, so it holds for this thread or task only, and for what they start
    with a copy of their context (`asyncio` tasks, `contextvars.copy_context().run`)."""
    fields = JobFields(job_id, job_name, attempt)
    token = _current.set(fields)
    try:
        yield fields
    finally:
        _current.reset(token)


def job_fields(job_id: int | None, job_name: str, attempt: int) -> dict[str, Any]:
    """`extra=` for a log call about a job made outside its attempt (the worker settling a
    timeout on its own loop): the record then names that job, whatever runs meanwhile.

        log.warning("%s #%s timed out", name, job_id, extra=job_fields(job_id, name, attempt))
    """
    return {"job_id": job_id, "job_name": job_name, "attempt": attempt}


class JobLogFilter(logging.Filter):
    """Adds `job_id`, `job_name` and `attempt` to every record (None outside a job); a
    record that names its job already (`extra=job_fields(...)`) keeps its own. Never
    drops a record. Add it to a handler, so records of every logger get the fields:

        handler.addFilter(JobLogFilter())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            job = _current.get()
            record.job_id = job.job_id if job else None
            record.job_name = job.job_name if job else None
            record.attempt = job.attempt if job else None
        return True


# What every LogRecord has: anything else on a record came from `extra=` and is written too.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", *FIELDS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (UTC, ISO 8601), `level`, `logger`, `message`,
    `job_id`, `job_name`, `attempt`, then any `extra=` keys, and `exception` with the
    traceback when there is one. Values without a JSON form are written as their str().

        handler.setFormatter(JsonFormatter())
        # {"time": "2030-01-01T12:00:00.123+00:00", "level": "INFO", "logger": "myapp",
        #  "message": "charging", "job_id": 42, "job_name": "charge", "attempt": 1}
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = _current.get()
        for key in FIELDS:  # without a JobLogFilter on the handler: this thread's job, if any
            entry[key] = getattr(record, key, getattr(job, key, None))
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def install(handlers: list[logging.Handler] | None = None, *, json_lines: bool = False) -> None:
    """Add a `JobLogFilter` to `handlers` (default: the root logger's), and with
    `json_lines` make them write `JsonFormatter` lines. What `activejob worker` calls.

        logging.basicConfig(level=logging.INFO)
        install(json_lines=True)
    """
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        if not any(isinstance(f, JobLogFilter) for f in handler.filters):
            handler.addFilter(JobLogFilter())
        if json_lines:
            handler.setFormatter(JsonFormatter())
