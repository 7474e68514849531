"""What happens after an attempt fails: a pure decision from the error and the job.

>>> from activejob.backoff import Fixed
>>> decide(ValueError("x"), attempt=1, max_retries=3, backoff=Fixed(5)).delay
5.0
>>> decide(ValueError("x"), attempt=4, max_retries=3, backoff=Fixed(5)).retry
False
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from . import clock
from .errors import Discard, JobArgumentsError, Retry, UnknownJobError


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    at: datetime | None = None
    reason: str = ""


NEVER_RETRIED: tuple[type[BaseException], ...] = (Discard, JobArgumentsError, UnknownJobError)
"""Errors no attempt can fix: retrying them only delays the failure."""


def attempts_spent(attempt: int, max_retries: int) -> bool:
    """Whether attempt number `attempt` (1-based, as counted when it was claimed) was the
    job's last: `max_retries` retries make `max_retries + 1` attempts. The decision below and
    the recovery of a lost worker's jobs both ask this.

    >>> attempts_spent(3, max_retries=3)
    False
    >>> attempts_spent(4, max_retries=3)
    True
    >>> attempts_spent(1, max_retries=0)
    True
    """
    return attempt > max_retries


def decide(
    error: BaseException,
    *,
    attempt: int,
    max_retries: int,
    backoff: Callable[[int], float],
    retry_on: tuple[type[BaseException], ...] = (),
    discard_on: tuple[type[BaseException], ...] = (),
) -> RetryDecision:
    """Retry or fail? `attempt` is the attempt that just failed (1-based); `max_retries=3`
    allows four attempts. The first rule that matches wins: Discard and errors no retry
    can fix fail; `discard_on` fails; `Retry` asks for its own time; a `retry_on` list,
    when given, is the only errors retried; then anything is retried while attempts last.
    """
    attempts_left = not attempts_spent(attempt, max_retries)
    if isinstance(error, NEVER_RETRIED):
        return RetryDecision(False, reason="not retryable")
    if discard_on and isinstance(error, discard_on):
        return RetryDecision(False, reason="discard_on")
    if isinstance(error, Retry):
        if not attempts_left:
            return RetryDecision(False, reason="attempts spent")
        if error.at is not None:
            return RetryDecision(True, at=clock.as_utc(error.at), reason="requested")
        delay = error.delay if error.delay is not None else backoff(attempt)
        return RetryDecision(True, delay=max(float(delay), 0.0), reason="requested")
    if retry_on and not isinstance(error, retry_on):
        return RetryDecision(False, reason="not in retry_on")
    if not attempts_left:
        return RetryDecision(False, reason="attempts spent")
    return RetryDecision(True, delay=float(backoff(attempt)), reason="error")
