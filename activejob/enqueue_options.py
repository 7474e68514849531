"""What `Job.set(...)` accepts, checked by pydantic as `@job(...)`'s options are
(`job_options.py`): each option's type, range and wording, before anything is written. A
value that is wrong is a `JobOptionsError` naming the job and the option.

    >>> check("resize", {"priority": 2**40, "wait": "soon"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    activejob.errors.JobOptionsError: resize: priority must be ..., got 1099511627776; wait must be ..., got 'soon'
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    InstanceOf,
    Strict,
    ValidationError,
    ValidationInfo,
)

from .errors import ConfigurationError, JobOptionsError
from .job_options import Priority, QueueName, RetryBudget
from .options import Says, problems, refuse, show, unknown_names
from .request import BIGINT_MAX, text_problem, whole_number


def check(job: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options given to `job`'s `set(...)`, checked, in the form they are kept (an owner
    as its text, `unique_until` seconds as a timedelta, `depends_on` as job ids)."""
    given = {option: value for option, value in given.items() if value is not None}
    if not given:  # a job type's plain ConfiguredJob, a chain's step: nothing to check
        return {}
    try:
        checked = Given.model_validate(given)
    except ValidationError as error:
        raise _refusal(job, error) from None
    return {option: getattr(checked, option) for option in given}


def refuse_unknown(job: str, names: Iterable[str]) -> None:
    """Refuse option names `set(...)` does not take, listing those it does."""
    unknown = sorted(set(names) - _OPTION_NAMES)
    if unknown:
        raise ConfigurationError(f"{job}: unknown option(s) {unknown}; use {', '.join(OPTIONS)}")


def _finite_seconds(value: Any) -> float | None:
    """`value` in seconds if it is a timedelta or a real, finite number (not a bool), else None."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    return float(value)


def _wait(value: Any) -> Any:
    seconds = _finite_seconds(value)
    if seconds is None:
        raise ValueError("not a delay")
    try:
        timedelta(seconds=seconds)
    except OverflowError:
        refuse(f"wait is out of range: {show(value)}")
    return value


def _timeout(value: Any) -> Any:
    seconds = _finite_seconds(value)
    if seconds is None or seconds <= 0:
        raise ValueError("not a timeout")
    return value


def _stored_text(value: Any, info: ValidationInfo) -> str:
    # Kept as their str(): an owner may be a user id. Not a function's, which names the function.
    option = info.field_name
    if callable(value):
        refuse(f"{option} must be text (or a value with a text form, such as a user id), not a function")
    try:
        text = str(value)
    except ValueError as error:  # an int past sys.get_int_max_str_digits()
        refuse(f"{option} has no text form: {error}")
    problem = text_problem(text, str(option))
    if problem:
        refuse(f"{option} {problem}")
    return text


def _key(value: Any, info: ValidationInfo) -> Any:
    """unique_key: text, or a function of the job's arguments, as on `@job` (job_keys.key_of
    calls it for each job, and refuses what it gives when no column can hold it)."""
    return value if callable(value) else _stored_text(value, info)


def _unique_until(value: Any) -> str | timedelta:
    if value in ("started", "finished"):
        return str(value)
    seconds = _finite_seconds(value)
    if seconds is None or seconds <= 0:
        raise ValueError("not a holding time")
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


def _an_id(value: Any) -> int | None:
    """The job or batch id `value` stands for (an object with an `id`, or the id), or None."""
    number = whole_number(getattr(value, "id", value))
    return number if number is not None and 1 <= number <= BIGINT_MAX else None


def _batch(value: Any) -> Any:
    if _an_id(value) is None:
        raise ValueError("not a batch")
    return value


def _parent(value: Any) -> Any:
    # A running job passed as `parent=self` has no id of its own yet: its context holds it.
    if not hasattr(value, "context") and _an_id(value) is None:
        raise ValueError("not a job")
    return value


def _job_ids(value: Any) -> tuple[int, ...]:
    """Job ids from handles, JobInfos, ids, or a list of them, each once."""
    items = value if isinstance(value, list | tuple | set | frozenset) else [value]
    ids = []
    for item in items:
        number = _an_id(item)
        if number is None:
            refuse(f"depends_on takes jobs, handles or job ids, got {show(item)}")
        ids.append(number)
    return tuple(dict.fromkeys(ids))


def _alone(on_commit: bool, info: ValidationInfo) -> bool:
    if on_commit and info.data.get("session") is not None:
        refuse("on_commit cannot be combined with session=, which already joins that session's "
               "transaction: pass one of them")
    return on_commit


class Given(BaseModel):
    """The options of one `set(...)`. Only those given are checked: None, the default,
    leaves the job type's own."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    queue: QueueName | None = None
    priority: Priority | None = None
    wait: Annotated[Any, BeforeValidator(_wait), Says("must be a timedelta or a number of seconds")] = None
    wait_until: Annotated[InstanceOf[datetime], Says("must be a datetime")] | None = None
    owner: Annotated[str, BeforeValidator(_stored_text), Says("must have a text form")] | None = None
    parent: Annotated[Any, BeforeValidator(_parent), Says("must be a job, a handle or a job id")] = None
    session: Any = None  # before on_commit, whose check reads it
    unique_key: Annotated[Any, BeforeValidator(_key), Says("must be text or a function of the job's arguments")] = None
    unique_mode: Annotated[Literal["skip", "replace", "debounce", "raise"],
                           Says("must be one of 'skip', 'replace', 'debounce', 'raise'")] | None = None
    unique_until: Annotated[Any, BeforeValidator(_unique_until),
                            Says("must be 'started', 'finished' or a timedelta > 0")] = None
    batch: Annotated[Any, BeforeValidator(_batch), Says("must be a Batch, a BatchInfo or a batch id")] = None
    depends_on: Annotated[Any, BeforeValidator(_job_ids), Says("takes jobs, handles or job ids")] = None
    run_on_failure: Annotated[bool, Strict(), Says("must be True or False")] = False
    max_retries: RetryBudget | None = None
    timeout: Annotated[Any, BeforeValidator(_timeout), Says("must be a number of seconds > 0")] = None
    on_commit: Annotated[bool, Strict(), AfterValidator(_alone), Says("must be True, False or None")] | None = None


OPTIONS = tuple(Given.model_fields)
"""Every option `set(...)` takes."""
_OPTION_NAMES = frozenset(OPTIONS)


def _refusal(job: str, error: ValidationError) -> JobOptionsError:
    refuse_unknown(job, unknown_names(error))
    found = problems(error, Given)
    option, first = found[0]
    rest = [sentence for _, sentence in found[1:]]
    return JobOptionsError(job, option, "; ".join([first.removeprefix(f"{option} "), *rest]))
