"""The keys a job is filed under, drawn from its arguments when an option is a function:
`unique_key`, `concurrency_key` and `rate_limit_key`. Each is worked out before anything
is written, so a function that raises, or gives what no column holds, refuses the enqueue
with the job's name (`JobArgumentsError`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import JobArgumentsError
from .options import show
from .request import MAX_LENGTH, text_problem


def key_of(job: str, option: str, key: Any, args: Any) -> str | None:
    """A per-type key: a fixed string, or what a function of the arguments gives (refused
    before anything is written when the function raises or gives what no column holds)."""
    if key is None:
        return None
    if isinstance(key, str):
        return key
    try:
        value = key(args)
    except Exception as error:
        raise JobArgumentsError(job, f"{option} raised {type(error).__name__}: {error}") from error
    text = "" if value is None else str(value)
    if not text:
        raise JobArgumentsError(job, f"{option} must give a non-empty key, got {show(value)}")
    problem = text_problem(text, "unique_key" if option == "unique_key" else "concurrency_key")
    if problem:
        raise JobArgumentsError(job, f"{option} gave a key that {problem}")
    return text


def concurrency_key(job: str, key: Callable[[Any], Any] | None, args: Any) -> str | None:
    """The key a per-key concurrency limit counts this job under (refused before anything is written)."""
    if key is None:
        return None
    try:
        value = key(args)
    except Exception as error:
        raise JobArgumentsError(job, f"concurrency_key raised {type(error).__name__}: {error}") from error
    text = str(value)
    limit = MAX_LENGTH["concurrency_key"]
    if value is None or not text or len(text) > limit:
        raise JobArgumentsError(job, f"concurrency_key must give a non-empty key of at most {limit} characters, "
                                     f"got {show(value)}")
    problem = text_problem(text, "concurrency_key")
    if problem:
        raise JobArgumentsError(job, f"concurrency_key gave a key that {problem}")
    return text
