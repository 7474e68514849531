"""The exceptions users raise from jobs and the errors the framework raises to users."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: handles belong to a later layer
    from .handle import JobHandle


class ActiveJobError(Exception):
    """Base class of every error raised by activejob."""


class ConfigurationError(ActiveJobError):
    """A job definition or a queue setting is invalid; the message says how to fix it."""


class JobArgumentsError(ActiveJobError, ValueError):
    """A job's arguments were refused: they fail the schema or cannot be stored as JSON.

    Nothing was written. `job` is the job's name and `fields` the offending field paths.
    """

    def __init__(self, job: str, message: str, fields: list[str] | None = None) -> None:
        self.job = job
        self.fields = fields or []
        super().__init__(f"{job}: {message}")


class JobOptionsError(ConfigurationError, ValueError):
    """An enqueue option (`Job.set(priority=..., owner=...)`) was refused: not of its type,
    out of the range its column holds, or text no database can store.

    Nothing was written. `job` is the job's name and `option` the option's name (the first,
    when the message names several). A ValueError too, since the value often comes from
    user input (an owner, a unique key).
    """

    def __init__(self, job: str, option: str, message: str) -> None:
        self.job = job
        self.option = option
        super().__init__(f"{job}: {option} {message}")


class DuplicateJobError(ActiveJobError):
    """A job enqueued with `unique_mode="raise"` found its unique key held by another job.

    Nothing of the call was written (a `perform_all_later` is refused whole). `existing` is
    the `JobHandle` of the job holding the key, `job` the refused job's name, `unique_key` the key:

        try:
            SyncAccount.set(unique_key="sync:7", unique_mode="raise").perform_later(account_id=7)
        except DuplicateJobError as error:
            print("already queued as job", error.existing.id, error.existing.status)
    """

    def __init__(self, job: str, unique_key: str, existing: JobHandle) -> None:
        self.job = job
        self.unique_key = unique_key
        self.existing = existing
        super().__init__(f"{job}: unique key {unique_key!r} is held by job {existing.id} ({existing.name}); "
                         "unique_mode='raise' refuses a second one")


class EnqueueRefused(ActiveJobError):
    """A middleware or an enqueue callback refused an enqueue: nothing was written.

    Raise it from a middleware's `enqueue` hook or a `before_enqueue`/`around_enqueue`
    callback with the reason; activejob adds the job and who refused (`job`, `by`):

        class Maintenance:
            def enqueue(self, enqueue, proceed):
                raise EnqueueRefused("the shop is in maintenance until 22:00")

    `SendEmail.perform_later(...)` then raises `EnqueueRefused: send_email: enqueue refused by
    Maintenance: the shop is in maintenance until 22:00; nothing was written`.
    """

    def __init__(self, reason: str, *, job: str | None = None, by: str | None = None) -> None:
        self.reason = reason
        self.job = job
        self.by = by
        super().__init__(reason)

    def __str__(self) -> str:
        if self.job is None:
            return self.reason
        by = f" by {self.by}" if self.by else ""
        return f"{self.job}: enqueue refused{by}: {self.reason}; nothing was written"


class UnknownJobError(ActiveJobError, LookupError):
    """No job type is registered under this name."""


class JobNotFound(ActiveJobError, LookupError):
    """No job has this id (it may have been deleted or pruned)."""


class UnknownScheduleError(ActiveJobError, LookupError):
    """No cron schedule has this key (`queue.run_schedule`)."""


class InvalidTransition(ActiveJobError):
    """The job is not in a state that allows what was asked (e.g. deleting a running job)."""



class JobTimeout(ActiveJobError, TimeoutError):
    """An attempt ran longer than the job's `timeout`."""



class Retry(Exception):
    """Raise from `perform` to run the job again later.

    Counts as an attempt; when attempts are spent the job fails.

        raise Retry(in_=timedelta(minutes=5))        # or at=datetime, or in_=seconds
    """

    def __init__(
        self,
        reason: str = "retry requested",
        *,
        in_: timedelta | float | None = None,
        at: datetime | None = None,
    ) -> None:
        super().__init__(reason)
        # Checked here, where the mistake is: the raise line shows in the job's traceback.
        if in_ is not None and at is not None:
            raise ValueError("Retry takes in_ or at, not both")
        if isinstance(in_, timedelta):
            in_ = in_.total_seconds()
        if in_ is not None and (isinstance(in_, bool) or not isinstance(in_, int | float)
                                or not abs(in_) < float("inf")):  # (a negative delay runs it at once)
            raise ValueError(f"Retry(in_=...) takes a timedelta or a number of seconds, got {in_!r}")
        if at is not None and not isinstance(at, datetime):
            raise ValueError(f"Retry(at=...) takes a datetime, got {at!r}")
        self.delay: float | None = in_
        self.at = at


class Discard(Exception):
    """Raise from `perform` to fail the job at once, with no further attempts.

        raise Discard("the account was closed")
    """


class WaitForChildren(BaseException):
    """Raised by `self.wait_for_children()`: the job waits (status `waiting`) until all
    its children have finished, then runs again."""


class JobCancelled(BaseException):
    """Raised inside a job (by `check_cancelled()`) when someone asked to cancel it.

    Derives from BaseException, like Rails' continuation interrupt, so an ordinary
    `except Exception` in user code cannot swallow it.
    """
