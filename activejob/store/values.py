"""The plain values the verbs take and hand back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..request import EnqueueRequest

TEXT_LIMIT = 16_384
"""Stored error messages, tracebacks and progress messages are cut to this many characters."""

SHORT_LIMIT = 200
"""Columns of names (a progress phase) hold this many characters."""


def storable(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    r"""`text` as every database can keep it: lone surrogates and NUL escaped, cut to `limit`.

    A job may put anything in an error or a progress report; one value the database
    refuses would otherwise fail the whole transaction it is written in, again and again.

    >>> storable("bad \udcff, nul \x00")
    'bad \\udcff, nul \\x00'
    >>> storable("abcdefghij" * 10, limit=40)
    'abcdefghi…cdefghij [100 characters, cut]'
    """
    if text is None:
        return None
    if not text.isascii():
        # UTF-8 refuses lone surrogates: keep them visible as \udcff rather than fail.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in text:  # PostgreSQL text cannot hold NUL
        text = text.replace("\x00", "\\x00")
    if len(text) <= limit:
        return text
    return cut(text, limit)


def cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, saying how long it was; the start and the
    end are kept (a traceback's last lines are its most useful)."""
    note = f" [{len(text)} characters, cut]"
    keep = limit - len(note) - 1
    if keep < 2:
        return text[:limit]
    head = (keep + 1) // 2
    return text[:head] + "…" + text[len(text) - (keep - head):] + note


NewJob = EnqueueRequest
"""An alias, kept for code that imports `activejob.store.NewJob`: the one request type lives
in `activejob.request`, below both the definitions that build it and the store that writes it."""


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
    # What writing it found, set by `finish`: jobs wait for this one (`has_dependents`, read
    # under the row's lock), so they are settled once it is written. Only then is that
    # worth a look: a dependent added later finds this job ended and settles itself.
    has_dependents: bool = False

    def __post_init__(self) -> None:
        if self.error is not None:
            self.error = storable(self.error)
        if self.traceback is not None:
            self.traceback = storable(self.traceback)

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

    def __post_init__(self) -> None:
        if self.progress is not None:
            self.progress = {**self.progress, "message": storable(self.progress.get("message")),
                             "phase": storable(self.progress.get("phase"), SHORT_LIMIT)}


@dataclass(slots=True)
class Heartbeat:
    lost: set[int]  # jobs this worker no longer owns
    cancel: set[int]  # jobs someone asked to cancel
