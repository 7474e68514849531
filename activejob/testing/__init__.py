"""Helpers for testing code that uses activejob.

With no database at all: capture what `perform_later` enqueues, then run it.

    from activejob.testing import capture_enqueued

    def test_signup_sends_a_welcome_email():
        with capture_enqueued() as jobs:
            signup("a@example.com")
        assert [j.name for j in jobs] == ["send_email"]
        assert jobs[0].args == {"to": "a@example.com", "subject": "Welcome"}
        jobs.perform_all()                      # each job through perform_now
        assert jobs[0].status == "completed"

With the real queue (a SQLite file in a temporary directory): enqueue, run until idle,
then assert on what happened, signals included.

    queue = activejob.configure(f"sqlite:///{tmp_path}/jobs.db")
    with recorded_signals() as log:
        handle = SendEmail.perform_later(to="a@example.com", subject="Hi")
        perform_enqueued_jobs()
    assert log.names(handle.id) == ["job_enqueued", "job_started", "job_completed"]

Every name is imported from here; the modules behind them:

- `capture`: `capture_enqueued()`, `CapturedJobs`, `EnqueuedJob`, `MemoryJobHandle`, `enqueued_jobs()`
- `inline_jobs`: `inline()`, `InlineJobs`
- `through_time`: `perform_enqueued_jobs()`, `aperform_enqueued_jobs()`
- `assertions`: `assert_enqueued()`, `assert_not_enqueued()`, `assert_performed()`
- `recording`: `recorded_signals()`, `SignalLog`
"""

from __future__ import annotations

from .assertions import ArgsMatcher as ArgsMatcher
from .assertions import assert_enqueued, assert_not_enqueued, assert_performed
from .capture import CapturedJobs, EnqueuedJob, MemoryJobHandle, capture_enqueued, enqueued_jobs
from .capture import _captures as _captures
from .inline_jobs import InlineJobs, inline
from .recording import ALL_SIGNALS as ALL_SIGNALS
from .recording import SignalLog, recorded_signals
from .through_time import aperform_enqueued_jobs, perform_enqueued_jobs

__all__ = [
    "CapturedJobs",
    "EnqueuedJob",
    "InlineJobs",
    "MemoryJobHandle",
    "SignalLog",
    "aperform_enqueued_jobs",
    "assert_enqueued",
    "assert_not_enqueued",
    "assert_performed",
    "capture_enqueued",
    "enqueued_jobs",
    "inline",
    "perform_enqueued_jobs",
    "recorded_signals",
]
