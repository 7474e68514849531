"""The keys a job is filed under, drawn from its arguments when an option is a function:
`unique_key`, `concurrency_key` and `rate_limit_key`. Each is worked out before anything
is written, so a function that raises, or gives what no column holds, refuses the enqueue
with the job's name (`JobArgumentsError`)."""

from __future__ import annotations

from typing import Any

from .errors import JobArgumentsError
from .options import show
from .request import text_problem


def key_of(job: str, option: str, key: Any, args: Any) -> str | None:
    """A per-type key (`option`: unique_key, concurrency_key or rate_limit_key): a fixed
    string, or what a function of the arguments gives (refused before anything is written
    when the function raises, or gives nothing or what its column cannot hold)."""
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

