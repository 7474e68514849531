"""Assertions on enqueued and performed jobs, with failure messages that list the jobs found
instead: `assert_enqueued()`, `assert_not_enqueued()`, `assert_performed()`.

    with capture_enqueued():
        signup("a@example.com")
        assert_enqueued(SendEmail, args={"to": "a@example.com"}, queue="mail")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .. import clock
from .capture import CapturedJobs, EnqueuedJob, _captures, _current_queue, _from_info

if TYPE_CHECKING:
    from ..definition import BaseJob
    from ..queue import JobQueue


ArgsMatcher = Mapping[str, Any] | BaseModel | Callable[[dict[str, Any]], bool]
"""What `args=` of the assertions takes: a dict the job's arguments contain, a model
they equal, or a predicate of the arguments dict."""

_SHOWN = 20


def _jobs_from(source: JobQueue | CapturedJobs | None, status: str | None = None) -> list[EnqueuedJob]:
    """Every job of the innermost capture (or `inline()`), else of the queue, oldest first."""
    if source is None and _captures:
        source = _captures[-1]
    if isinstance(source, CapturedJobs):
        return [j for j in source.jobs if status is None or j.status == status]
    queue = _current_queue(source)
    out: list[EnqueuedJob] = []
    page = 1000
    while True:
        rows = queue.list_jobs(status=status, limit=page, offset=len(out), order="oldest")
        out.extend(_from_info(r) for r in rows)
        if len(rows) < page:
            return out


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    try:
        return to_jsonable_python(value)
    except Exception:  # compared as given
        return value


class _Criteria:
    def __init__(self, job: str | type[BaseJob[Any]] | None, args: ArgsMatcher | None, queue: str | None,
                 at: datetime | None) -> None:
        self.name = None if job is None else (job if isinstance(job, str) else job.options.name)
        self.args = args
        self.queue = queue
        self.at = None if at is None else clock.as_utc(at)
        self.exact: dict[str, Any] | None = None
        self.subset: dict[str, Any] | None = None
        if isinstance(args, BaseModel):
            self.exact = args.model_dump(mode="json")
        elif isinstance(args, Mapping):
            self.subset = {str(k): _jsonable(v) for k, v in args.items()}
        elif args is not None and not callable(args):
            raise TypeError(f"args= is a dict, a pydantic model or a predicate, not {args!r}")

    def matches(self, job: EnqueuedJob) -> bool:
        if self.name is not None and job.name != self.name:
            return False
        if self.queue is not None and job.queue != self.queue:
            return False
        if self.at is not None and abs((clock.as_utc(job.run_at) - self.at).total_seconds()) >= 1:
            return False
        if self.exact is not None:
            return job.args == self.exact
        if self.subset is not None:
            return all(key in job.args and job.args[key] == value for key, value in self.subset.items())
        if callable(self.args):
            return bool(self.args(dict(job.args)))
        return True

    def __str__(self) -> str:
        parts = [f"{self.name} job" if self.name else "job"]
        if self.exact is not None:
            parts.append(f"with args == {self.exact!r}")
        elif self.subset is not None:
            parts.append(f"with args {self.subset!r}")
        elif self.args is not None:
            parts.append(f"with args matching {getattr(self.args, '__name__', repr(self.args))}")
        if self.queue is not None:
            parts.append(f"on queue {self.queue!r}")
        if self.at is not None:
            parts.append(f"at {self.at.isoformat(timespec='seconds')}")
        return " ".join(parts)


def _listing(title: str, jobs: Sequence[EnqueuedJob]) -> str:
    if not jobs:
        return f"{title}: none"
    lines = [f"  {j.describe()}" + (f" error={j.error!r}" if j.error else "") for j in jobs[:_SHOWN]]
    if len(jobs) > _SHOWN:
        lines.append(f"  ... and {len(jobs) - _SHOWN} more")
    return f"{title} ({len(jobs)}):\n" + "\n".join(lines)


def _check(verb: str, status: str | None, job: str | type[BaseJob[Any]] | None, args: ArgsMatcher | None,
           queue: str | None, at: datetime | None, count: int | None,
           source: JobQueue | CapturedJobs | None) -> list[EnqueuedJob]:
    criteria = _Criteria(job, args, queue, at)
    everything = _jobs_from(source)
    found = [j for j in everything if (status is None or j.status == status) and criteria.matches(j)]
    if (bool(found) if count is None else len(found) == count):
        return found
    if count is None:
        head = f"no {criteria} was {verb}"
    else:
        head = f"expected {count} {verb} {criteria}{'s' if count != 1 else ''}, found {len(found)}"
    others = [j for j in everything if j not in found]
    parts = [head]
    if found:
        parts.append(_listing("matching", found))
    instead = "enqueued instead" if verb == "enqueued" else "jobs instead (with their status)"
    parts.append(_listing(instead if not found else "other jobs", others))
    raise AssertionError("\n".join(parts))


def assert_enqueued(job: str | type[BaseJob[Any]] | None = None, args: ArgsMatcher | None = None, *,
                    queue: str | None = None, at: datetime | None = None, count: int | None = None,
                    job_queue: JobQueue | CapturedJobs | None = None) -> list[EnqueuedJob]:
    """Assert that a job was enqueued (whatever its status now); returns the matching jobs.

        with capture_enqueued():
            signup("a@example.com")
            assert_enqueued(SendEmail, args={"to": "a@example.com"}, queue="mail")

    - `job`: the job class or its name (None: any job).
    - `args`: a dict the job's arguments contain (other keys are not compared; values as
      they are stored, so a datetime matches its ISO form), a pydantic model they equal,
      or a predicate of the arguments dict: `args=lambda a: a["to"].endswith("@example.com")`.
    - `queue`: the queue name; `at`: the `run_at` (within a second; naive is UTC).
    - `count`: exactly that many must match (default: at least one).

    Reads the innermost `capture_enqueued()` or `inline()`, else the process-wide queue's
    database (or `job_queue`: a `JobQueue` or a `CapturedJobs`). The failure message lists
    the jobs that were enqueued instead.
    """
    return _check("enqueued", None, job, args, queue, at, count, job_queue)


def assert_not_enqueued(job: str | type[BaseJob[Any]] | None = None, args: ArgsMatcher | None = None, *,
                        queue: str | None = None, at: datetime | None = None,
                        job_queue: JobQueue | CapturedJobs | None = None) -> None:
    """Assert that no job matching these criteria (as for `assert_enqueued`) was enqueued."""
    criteria = _Criteria(job, args, queue, at)
    found = [j for j in _jobs_from(job_queue) if criteria.matches(j)]
    if found:
        raise AssertionError(f"expected no {criteria} to be enqueued\n{_listing('found', found)}")


def assert_performed(job: str | type[BaseJob[Any]] | None = None, args: ArgsMatcher | None = None, *,
                     queue: str | None = None, at: datetime | None = None, count: int | None = None,
                     job_queue: JobQueue | CapturedJobs | None = None) -> list[EnqueuedJob]:
    """Assert that a job was performed: it ran and `completed` (on the queue, under
    `inline()`, or by `jobs.perform_all()`); the criteria are `assert_enqueued`'s. The
    failure message lists the other jobs with their status (and error, for failed ones)."""
    return _check("performed", "completed", job, args, queue, at, count, job_queue)
