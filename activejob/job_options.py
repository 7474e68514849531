"""What `@job(...)` accepts, checked by pydantic: every option's type, range and wording, and
the checks of several options together. `job()` (`definition.py`) builds `JobOptions` from
what `check` returns; an option that is wrong is a ConfigurationError naming the job.

    >>> from activejob import job
    >>> job("resize", max_retries=-1, queue="")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    activejob.errors.ConfigurationError: resize: max_retries must be ..., got -1; queue must be a non-empty string...
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal, Self

from annotated_types import Ge, Gt, Le
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)

from . import backoff as backoffs
from . import rate_limits, upcasting
from .errors import ConfigurationError
from .options import Says, problems, refuse, show, unknown_names
from .request import INTEGER_MAX, PRIORITY_MAX, PRIORITY_MIN, PRIORITY_RANGE, text_problem, whole_number


def check(name: Any, given: dict[str, Any]) -> Definition:
    """`@job(name, **given)` checked, every option of it; or a ConfigurationError naming the job
    and each option that is wrong, what it must be and what it got."""
    try:
        return Definition.model_validate({"name": name, **given})
    except ValidationError as error:
        raise ConfigurationError(_refusal(name, error)) from None


def _job_name(value: Any) -> str:
    # Worded apart from the other options: a name that is wrong cannot name the job.
    if not isinstance(value, str) or not value.strip():
        refuse(f"a job needs a non-empty name, got {show(value)}")
    problem = text_problem(value, "name")
    if problem:
        refuse(f"the job name {show(value)} {problem}")
    return value


def _queue_name(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")  # worded by the field: "must be a non-empty string"
    problem = text_problem(value, "queue")
    if problem:
        refuse(f"queue {problem}")
    return value


def _seconds(value: Any) -> Any:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _index(value: Any) -> Any:
    # numpy's integers count as whole numbers; what whole_number refuses (bools, floats,
    # strings) goes on as it is, for Strict() to refuse.
    number = whole_number(value)
    return value if number is None else number


def _classes(value: Any) -> Any:
    return (value,) if isinstance(value, type) else (value or ())


QueueName = Annotated[str, Strict(), AfterValidator(_queue_name), Says("must be a non-empty string")]
"""A queue's name, as `@job(queue=...)` and `Job.set(queue=...)` take it."""

Priority = Annotated[int, BeforeValidator(_index), Strict(), Ge(PRIORITY_MIN), Le(PRIORITY_MAX), Says(PRIORITY_RANGE)]
"""A priority, which the 32-bit column holds."""

RetryBudget = Annotated[int, BeforeValidator(_index), Strict(), Ge(0), Le(INTEGER_MAX),
                        Says(f"must be a whole number from 0 to {INTEGER_MAX}")]
"""How many times a job is retried (`max_retries`)."""

Exceptions = Annotated[tuple[type[BaseException], ...], BeforeValidator(_classes), Says("takes exception classes")]
"""One exception class or any number of them (`retry_on=ConnectionError`, `discard_on=[KeyError]`)."""


class Definition(BaseModel):
    """What `@job(...)` was given, checked: pydantic reports every option that is wrong at
    once, and `job()` words them as one ConfigurationError naming the job. The defaults are
    `job()`'s own, so that its signature stays the one place that states them."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, BeforeValidator(_job_name)]
    schema_: Annotated[type[BaseModel], Says("must be a pydantic BaseModel subclass")] = Field(alias="schema")
    max_retries: RetryBudget
    backoff: Any  # a name, seconds or a callable; once checked (with base, cap and jitter), the policy
    backoff_base: Annotated[float, Strict(), Says("must be a number of seconds")]
    backoff_cap: Annotated[float, Strict(), Says("must be a number of seconds")]
    backoff_jitter: Annotated[float, Strict(), Says("must be a number from 0 to 1")]
    timeout: Annotated[Annotated[float, BeforeValidator(_seconds), Strict(), Gt(0)] | None,
                       Says("must be a number of seconds > 0 (or None)")]
    queue: QueueName
    priority: Priority
    retry_on: Exceptions
    discard_on: Exceptions
    label: Annotated[str | None, Says("must be a string (or None)")]
    description: Annotated[str | None, Says("must be a string (or None)")]
    phases: Annotated[tuple[str, ...], Says("must be a list of phase names")]
    resource_link: Annotated[Callable[[dict[str, Any]], str | None] | None,
                             Says("takes a function of the arguments (or None)")]
    cron: Annotated[str | None, Says("must be a cron expression such as '0 2 * * *' (or None)")]
    concurrency_limit: Annotated[Annotated[int, Strict(), Ge(1)] | None, Says("must be a whole number >= 1 (or None)")]
    concurrency_key: Annotated[Callable[[Any], Any] | None,
                               Says("takes a function of the arguments, and needs concurrency_limit")]

    unique_key: Annotated[str | Callable[[Any], Any] | None,
                          Says("must be a string or a function of the arguments (or None)")]
    unique_mode: Annotated[Literal["skip", "replace", "debounce", "raise"],
                           Says("must be 'skip', 'replace', 'debounce' or 'raise'")]
    unique_until: Annotated[Literal["started", "finished"] | timedelta,
                            Says("must be 'started', 'finished' or a timedelta")]
    rate_limit: Annotated[tuple[int, timedelta] | None, BeforeValidator(rate_limits.parse_option),
                          Says("must be like '10/s', '600/m', '100/h' or (10, timedelta(seconds=1)) (or None)")]
    rate_limit_key: Annotated[Callable[[Any], Any] | None,
                              Says("takes a function of the arguments, and needs rate_limit")]
    version: Annotated[int, Strict(), Ge(1), Le(INTEGER_MAX), Says("must be a whole number >= 1")]
    upcasters: Annotated[dict[Annotated[int, Strict()], Callable[[dict[str, Any]], dict[str, Any]]] | None,
                         Says("must map an older version (int) to a function of the arguments dict (or None)")]

    @model_validator(mode="after")
    def _together(self) -> Self:
        """The checks of several options at once (pydantic runs them once each option is valid)."""
        if self.concurrency_key is not None and self.concurrency_limit is None:
            refuse("concurrency_key takes a function of the arguments, and needs concurrency_limit")
        if self.rate_limit_key is not None and self.rate_limit is None:
            refuse("rate_limit_key takes a function of the arguments, and needs rate_limit")
        upcasting_problem = upcasting.problem(self.version, self.upcasters)
        if upcasting_problem:
            refuse(upcasting_problem)
        try:
            self.backoff = backoffs.resolve(self.backoff, base=self.backoff_base, cap=self.backoff_cap,
                                            jitter=self.backoff_jitter)
        except ValueError as error:
            refuse(str(error))
        return self


def _refusal(name: Any, error: ValidationError) -> str:
    """What was wrong with a `@job(...)`, every option of it, in one message naming the job."""
    found = problems(error, Definition)
    about_name = [sentence for option, sentence in found if option == "name"]
    if about_name:
        return about_name[0]
    sentences = [sentence for _, sentence in found]
    unknown = unknown_names(error)
    if unknown:
        sentences.insert(0, f"unknown option(s) {unknown} for @job")
    return f"{name}: {'; '.join(sentences)}"
