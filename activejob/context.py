"""What a job can reach while it runs: progress, logs, checkpoints, cancellation.

Every method is a plain call, safe from async code and from the worker thread a sync
job runs in. The queue's runner collects what is reported and writes it, throttled,
to the database; under `perform_now` it goes straight to the signals.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from . import clock
from .errors import JobCancelled

# The keys a log line's data shares with its own (`at`) and with every signal's payload
# (`records.signal_payload`), which win there: a receiver of job_log does not see the data's.
RESERVED_LOG_KEYS = frozenset({"message", "at", "event", "event_id", "job_id", "name", "queue", "owner", "status",
                               "attempt"})

log = logging.getLogger("activejob.worker")
_warned: set[tuple[str, tuple[str, ...]]] = set()


class JobContext:
    """The running attempt of one job, as the job sees it through `self`."""

    def __init__(self, *, job_id: int | None, name: str, attempt: int, checkpoint: Any = None,
                 queue: str = "default", owner: str | None = None, parent_id: int | None = None) -> None:
        self.job_id = job_id
        self.name = name
        self.attempt = attempt
        self.queue = queue
        self.owner = owner
        self.parent_id = parent_id
        self.checkpoint_data = checkpoint
        self._cancelled = False  # a flag, not an Event: nothing waits on it, and a worker makes one per job
        self._lock = threading.Lock()
        self.cancel_reason: str | None = None
        # Latest reported values, waiting for the runner to write them.
        self.pending_progress: dict[str, Any] | None = None
        self.pending_checkpoint: str | None = None
        self.pending_logs: list[dict[str, Any]] = []
        self.last_progress: dict[str, Any] | None = None
        # Set by the runner: how this job reads its children (None under perform_now).
        self.children_reader: Callable[[], list[Any]] | None = None
        # The batch it belongs to (or, for a batch callback, the batch that called it), and
        # how it reads that batch's state now (None under perform_now).
        self.batch_id: int | None = None
        self.batch_reader: Callable[[], Any] | None = None

    # -- reporting --------------------------------------------------------------------

    def progress(self, fraction: float, message: str | None = None, phase: str | None = None) -> None:
        if not isinstance(fraction, int | float) or math.isnan(fraction):
            raise ValueError(f"{self.name}: progress must be a number between 0 and 1, got {fraction!r}")
        value = {"progress": min(max(float(fraction), 0.0), 1.0), "message": message, "phase": phase,
                 "current": None, "total": None}
        self._report_progress(value)

    def progress_count(self, current: int, total: int, message: str | None = None,
                       phase: str | None = None) -> None:
        if total < 0 or current < 0:
            raise ValueError(f"{self.name}: progress_count needs current >= 0 and total >= 0")
        fraction = min(current / total, 1.0) if total else 0.0
        self._report_progress({"progress": fraction, "message": message, "phase": phase,
                               "current": int(current), "total": int(total)})

    def _report_progress(self, value: dict[str, Any]) -> None:
        with self._lock:
            self.pending_progress = value
            self.last_progress = value
        self.on_report()

    def log(self, message: str, **data: Any) -> None:
        if taken := tuple(sorted(RESERVED_LOG_KEYS.intersection(data))):
            self._shadowed(taken)
        entry = {**data, "message": str(message), "at": clock.now()}
        with self._lock:
            self.pending_logs.append(entry)
        self.on_report()

    def _shadowed(self, keys: tuple[str, ...]) -> None:
        """Say once per job type and keys that a log line's data is hidden where it shares a
        key with the line or the signal (kept in the event log, but for `at`). A warning,
        not an error: a job is not failed for what it logs."""
        if (self.name, keys) in _warned:
            return
        _warned.add((self.name, keys))
        log.warning("%s: self.log data %s share(s) a name with what every job_log line and signal carries "
                    "(%s): job_log receivers get the signal's own; rename the key to keep it visible",
                    self.name, ", ".join(keys), ", ".join(sorted(RESERVED_LOG_KEYS)))

    def checkpoint(self, data: Any) -> None:
        try:
            text = json.dumps(data, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{self.name}: checkpoint data must be JSON-serialisable: {error}") from None
        with self._lock:
            self.checkpoint_data = json.loads(text)
            self.pending_checkpoint = text
        self.on_report()

    def on_report(self) -> None:
        """Hook: something new waits to be written."""

    def take(self) -> tuple[dict[str, Any] | None, str | None, list[dict[str, Any]]]:
        """Hand over (and clear) what was reported since the last call."""
        with self._lock:
            out = (self.pending_progress, self.pending_checkpoint, self.pending_logs)
            self.pending_progress, self.pending_checkpoint, self.pending_logs = None, None, []
        return out

    # -- cancellation -----------------------------------------------------------------

    def request_cancel(self, reason: str = "cancelled") -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def check_cancelled(self) -> None:
        if self._cancelled:
            raise JobCancelled(self.cancel_reason or "cancelled")
