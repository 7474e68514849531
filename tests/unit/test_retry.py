"""`retry.decide`: the pure decision after a failed attempt, rule by rule, first match wins."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from activejob.backoff import Fixed
from activejob.errors import Discard, JobArgumentsError, JobTimeout, Retry, UnknownJobError
from activejob.retry import NEVER_RETRIED, RetryDecision, attempts_spent, decide

pytestmark = pytest.mark.timeout(5)


class Recorded:
    """A backoff that remembers the attempts it was asked about."""

    def __init__(self, seconds: float = 7.0) -> None:
        self.seconds = seconds
        self.asked: list[int] = []

    def __call__(self, attempt: int) -> float:
        self.asked.append(attempt)
        return self.seconds


def never(attempt: int) -> float:
    raise AssertionError(f"the backoff was consulted for attempt {attempt}")


def test_discard_fails_even_with_attempts_left() -> None:
    decision = decide(Discard("account closed"), attempt=1, max_retries=5, backoff=never)
    assert decision == RetryDecision(False, reason="not retryable")


@pytest.mark.parametrize("error", [
    Discard("gone"), JobArgumentsError("send_email", "bad args"), UnknownJobError("no such job"),
])
def test_errors_no_attempt_can_fix_are_never_retried(error: BaseException) -> None:
    assert isinstance(error, NEVER_RETRIED)
    assert decide(error, attempt=1, max_retries=5, backoff=never).retry is False


def test_never_retried_errors_win_over_retry_on_naming_them() -> None:
    decision = decide(JobArgumentsError("j", "bad"), attempt=1, max_retries=5, backoff=never,
                      retry_on=(JobArgumentsError,))
    assert decision.retry is False and decision.reason == "not retryable"


def test_discard_on_fails_a_matching_error() -> None:
    decision = decide(KeyError("k"), attempt=1, max_retries=5, backoff=never, discard_on=(KeyError,))
    assert decision == RetryDecision(False, reason="discard_on")


def test_discard_on_matches_subclasses() -> None:
    decision = decide(ConnectionResetError(), attempt=1, max_retries=5, backoff=never, discard_on=(OSError,))
    assert decision.reason == "discard_on"


def test_discard_on_wins_over_retry_on() -> None:
    decision = decide(KeyError("k"), attempt=1, max_retries=5, backoff=never,
                      retry_on=(KeyError,), discard_on=(KeyError,))
    assert decision.reason == "discard_on"


def test_discard_on_wins_over_a_retry_request() -> None:
    decision = decide(Retry(in_=5), attempt=1, max_retries=5, backoff=never, discard_on=(Retry,))
    assert decision.retry is False and decision.reason == "discard_on"


def test_retry_with_at_runs_at_that_moment() -> None:
    at = datetime(2030, 1, 1, 12, tzinfo=UTC)
    decision = decide(Retry(at=at), attempt=1, max_retries=3, backoff=never)
    assert decision == RetryDecision(True, at=at, reason="requested")


def test_retry_with_a_naive_at_means_utc() -> None:
    decision = decide(Retry(at=datetime(2030, 1, 1, 12)), attempt=1, max_retries=3, backoff=never)
    assert decision.at == datetime(2030, 1, 1, 12, tzinfo=UTC)


def test_retry_with_an_aware_at_is_converted_to_utc() -> None:
    paris_noon = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=1)))
    decision = decide(Retry(at=paris_noon), attempt=1, max_retries=3, backoff=never)
    assert decision.at == datetime(2030, 1, 1, 11, tzinfo=UTC)
    assert decision.at is not None and decision.at.tzinfo is UTC


def test_retry_with_a_delay_waits_that_long() -> None:
    decision = decide(Retry(in_=12.5), attempt=1, max_retries=3, backoff=never)
    assert decision == RetryDecision(True, delay=12.5, reason="requested")


def test_retry_with_a_timedelta_waits_its_seconds() -> None:
    decision = decide(Retry(in_=timedelta(minutes=5)), attempt=1, max_retries=3, backoff=never)
    assert decision.delay == 300.0


def test_retry_with_a_negative_delay_runs_again_at_once() -> None:
    assert decide(Retry(in_=-10), attempt=1, max_retries=3, backoff=never).delay == 0.0


def test_retry_without_a_time_takes_the_backoff_for_this_attempt() -> None:
    backoff = Recorded(9)
    decision = decide(Retry(), attempt=2, max_retries=3, backoff=backoff)
    assert decision == RetryDecision(True, delay=9.0, reason="requested")
    assert backoff.asked == [2]


def test_retry_is_honoured_even_when_retry_on_does_not_name_it() -> None:
    decision = decide(Retry(in_=1), attempt=1, max_retries=3, backoff=never, retry_on=(ConnectionError,))
    assert decision.retry is True and decision.reason == "requested"


def test_retry_fails_once_attempts_are_spent() -> None:
    decision = decide(Retry(in_=1), attempt=4, max_retries=3, backoff=never)
    assert decision == RetryDecision(False, reason="attempts spent")


def test_retry_on_fails_an_error_it_does_not_name() -> None:
    decision = decide(ValueError("v"), attempt=1, max_retries=3, backoff=never, retry_on=(ConnectionError,))
    assert decision == RetryDecision(False, reason="not in retry_on")


def test_retry_on_retries_an_error_it_names_or_a_subclass() -> None:
    decision = decide(ConnectionResetError(), attempt=1, max_retries=3, backoff=Recorded(4),
                      retry_on=(ConnectionError,))
    assert decision == RetryDecision(True, delay=4.0, reason="error")


def test_retry_on_still_stops_when_attempts_are_spent() -> None:
    decision = decide(ConnectionError(), attempt=4, max_retries=3, backoff=never, retry_on=(ConnectionError,))
    assert decision.reason == "attempts spent"


def test_any_error_is_retried_while_attempts_last() -> None:
    decision = decide(ValueError("v"), attempt=3, max_retries=3, backoff=Recorded(2))
    assert decision == RetryDecision(True, delay=2.0, reason="error")


def test_an_error_fails_on_the_last_attempt() -> None:
    decision = decide(ValueError("v"), attempt=4, max_retries=3, backoff=never)
    assert decision == RetryDecision(False, reason="attempts spent")


def test_no_retries_means_the_first_failure_is_final() -> None:
    assert decide(ValueError("v"), attempt=1, max_retries=0, backoff=never).retry is False


def test_a_timeout_is_retried_like_any_error() -> None:
    assert decide(JobTimeout("slow"), attempt=1, max_retries=1, backoff=Recorded(1)).retry is True


def test_a_base_exception_from_the_job_is_retried_like_any_error() -> None:
    assert decide(KeyboardInterrupt(), attempt=1, max_retries=1, backoff=Recorded(1)).retry is True


def test_the_backoff_is_asked_about_the_attempt_that_failed() -> None:
    backoff = Recorded()
    for attempt in (1, 2, 3):
        decide(ValueError(), attempt=attempt, max_retries=5, backoff=backoff)
    assert backoff.asked == [1, 2, 3]


def test_an_integer_backoff_comes_back_as_float_seconds() -> None:
    decision = decide(ValueError(), attempt=1, max_retries=1, backoff=lambda _attempt: 3)
    assert decision.delay == 3.0 and isinstance(decision.delay, float)


def test_a_policy_object_works_as_the_backoff() -> None:
    assert decide(ValueError(), attempt=1, max_retries=1, backoff=Fixed(5)).delay == 5.0


def test_the_decision_is_frozen() -> None:
    decision = decide(ValueError(), attempt=1, max_retries=1, backoff=Fixed(5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.retry = False  # type: ignore[misc]


@pytest.mark.parametrize(("attempt", "max_retries", "spent"), [
    (1, 0, True), (1, 1, False), (2, 1, True), (3, 3, False), (4, 3, True),
])
def test_attempts_are_spent_after_max_retries_plus_one(attempt: int, max_retries: int, spent: bool) -> None:
    assert attempts_spent(attempt, max_retries) is spent


@pytest.mark.parametrize(("options", "message"), [
    ({"in_": "soon"}, "Retry\\(in_=...\\) takes a timedelta or a number of seconds, got 'soon'"),
    ({"in_": float("inf")}, "got inf"),
    ({"in_": float("nan")}, "got nan"),
    ({"at": "2030-01-01"}, "Retry\\(at=...\\) takes a datetime, got '2030-01-01'"),
    ({"in_": 5, "at": datetime(2030, 1, 1, tzinfo=UTC)}, "Retry takes in_ or at, not both"),
])
def test_a_retry_with_no_usable_time_is_refused_where_it_is_raised(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Retry(**options)
