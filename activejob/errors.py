"""The exceptions users raise from jobs and the errors the framework raises to users."""

from __future__ import annotations

from datetime import datetime, timedelta


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

    Nothing was written. `job` is the job's name and `option` the option's name. A
    ValueError too, since the value often comes from user input (an owner, a unique key).
    """

    def __init__(self, job: str, option: str, message: str) -> None:
        self.job = job
        self.option = option
        super().__init__(f"{job}: {option} {message}")


class UnknownJobError(ActiveJobError, LookupError):
    """No job type is registered under this name."""


class JobNotFound(ActiveJobError, LookupError):
    """No job has this id (it may have been deleted or pruned)."""


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
        if isinstance(in_, timedelta):
            in_ = in_.total_seconds()
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
