"""How a job is put on the queue: options for one enqueue (`Job.set(...)`) and the
backend hook the JobQueue fills in, so definitions never depend on storage."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from . import arguments, clock
from .errors import ConfigurationError, JobArgumentsError
from .store import NewJob

if TYPE_CHECKING:
    from .definition import BaseJob
    from .handle import JobHandle

S = TypeVar("S", bound=BaseModel)


EnqueueRequest = NewJob
"""One job, validated and encoded, ready to be written (the store's `NewJob`)."""


class Backend(Protocol):
    @property
    def max_args_bytes(self) -> int: ...

    def enqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]: ...
    async def aenqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]: ...


_backend: Callable[[], Backend] | None = None


def set_backend(factory: Callable[[], Backend]) -> None:
    """Called by the queue module: where `perform_later` sends jobs."""
    global _backend
    _backend = factory


def backend() -> Backend:
    if _backend is None:
        raise ConfigurationError("no job queue: import activejob and call activejob.configure(...)")
    return _backend()


def _seconds(value: timedelta | float | int) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True)
class ConfiguredJob(Generic[S]):
    """A job type with options for the next enqueue, as `Job.set(...)` returns.

        SendEmail.set(queue="mail", priority=10, wait=timedelta(minutes=5)).perform_later(to=..., subject=...)
        SendEmail.set(owner="user-42").perform_later(...)     # the job's owner, for per-user views
        SendEmail.set(session=db_session).perform_later(...)  # commits with the caller's transaction
        SendEmail.set(unique_key="welcome-42").perform_later(...)  # at most one job per key
    """

    job: type[BaseJob[S]]
    queue: str | None = None
    priority: int | None = None
    wait: timedelta | float | None = None
    wait_until: datetime | None = None
    owner: str | None = None
    parent: Any = None
    session: Any = None
    unique_key: str | None = None

    def set(self, **options: Any) -> ConfiguredJob[S]:
        unknown = set(options) - set(self.__dataclass_fields__) - {"job"}
        if unknown or "job" in options:
            allowed = "queue, priority, wait, wait_until, owner, parent, session, unique_key"
            raise ConfigurationError(f"{self.job.options.name}: unknown option(s) {sorted(unknown)}; use {allowed}")
        return replace(self, **options)

    # -- building requests ------------------------------------------------------------

    def _run_at(self, now: datetime) -> datetime:
        if self.wait_until is not None:
            return clock.as_utc(self.wait_until)
        if self.wait is not None:
            return now + timedelta(seconds=_seconds(self.wait))
        return now

    def request(self, args: S | dict[str, Any] | None = None, /, *, run_at: datetime | None = None,
                max_args_bytes: int, **kwargs: Any) -> EnqueueRequest:
        opts = self.job.options
        if isinstance(args, dict):
            kwargs = {**args, **kwargs}
            args = None
        model = arguments.validate(opts.name, opts.schema, args, kwargs)
        text = arguments.encode(opts.name, model, max_args_bytes)
        parent, owner = self.parent, self.owner
        if hasattr(parent, "context"):  # a running job passed as `parent=self`
            owner = owner if owner is not None else parent.context.owner
            parent = parent.job_id
        parent = getattr(parent, "id", parent)
        return EnqueueRequest(
            name=opts.name, args=text, queue=self.queue or opts.queue,
            priority=opts.priority if self.priority is None else int(self.priority),
            run_at=run_at or self._run_at(clock.now()), max_retries=opts.max_retries,
            owner=None if owner is None else str(owner),
            parent_id=None if parent is None else int(parent),
            unique_key=None if self.unique_key is None else str(self.unique_key),
            concurrency_key=_concurrency_key(opts.name, opts.concurrency_key, model),
        )

    # -- enqueue verbs ----------------------------------------------------------------

    def perform_later(self, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        """Validate and store the job; a worker runs it as soon as it can."""
        b = backend()
        return b.enqueue([self.request(args, max_args_bytes=b.max_args_bytes, **kwargs)], self.session)[0]

    async def aperform_later(self, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        """`perform_later` for async callers: the write runs off the event loop."""
        b = backend()
        return (await b.aenqueue([self.request(args, max_args_bytes=b.max_args_bytes, **kwargs)], self.session))[0]

    def perform_at(self, when: datetime, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        """Run at `when` (a naive datetime is taken as UTC)."""
        return self.set(wait_until=when, wait=None).perform_later(args, **kwargs)

    async def aperform_at(self, when: datetime, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        return await self.set(wait_until=when, wait=None).aperform_later(args, **kwargs)

    def perform_in(self, delay: timedelta | float, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        """Run after `delay` (a timedelta or seconds)."""
        return self.set(wait=delay, wait_until=None).perform_later(args, **kwargs)

    async def aperform_in(self, delay: timedelta | float, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        return await self.set(wait=delay, wait_until=None).aperform_later(args, **kwargs)

    def _bulk(self, items: Iterable[S | dict[str, Any]], max_args_bytes: int) -> list[EnqueueRequest]:
        requests = []
        run_at = self._run_at(clock.now())
        for index, item in enumerate(items):
            try:
                requests.append(self.request(item, run_at=run_at, max_args_bytes=max_args_bytes))
            except JobArgumentsError as error:
                raise JobArgumentsError(error.job, f"item {index}: {str(error).split(': ', 1)[1]}",
                                        error.fields) from None
        return requests

    def perform_all_later(self, items: Iterable[S | dict[str, Any]]) -> list[JobHandle]:
        """Enqueue many jobs in one transaction; all are validated before any is written."""
        b = backend()
        requests = self._bulk(items, b.max_args_bytes)
        return b.enqueue(requests, self.session) if requests else []

    async def aperform_all_later(self, items: Iterable[S | dict[str, Any]]) -> list[JobHandle]:
        b = backend()
        requests = self._bulk(items, b.max_args_bytes)
        return await b.aenqueue(requests, self.session) if requests else []

    def perform_now(self, args: S | None = None, /, **kwargs: Any) -> Any:
        """Run the job here and now, with no database; returns its result, raises its error."""
        from .now import run_now

        return run_now(self.job, self._now_args(args, kwargs), owner=self.owner)

    async def aperform_now(self, args: S | None = None, /, **kwargs: Any) -> Any:
        from .now import arun_now

        return await arun_now(self.job, self._now_args(args, kwargs), owner=self.owner)

    def _now_args(self, args: S | dict[str, Any] | None, kwargs: dict[str, Any]) -> BaseModel:
        opts = self.job.options
        if isinstance(args, dict):
            kwargs = {**args, **kwargs}
            args = None
        model = arguments.validate(opts.name, opts.schema, args, kwargs)
        # The same JSON round trip as a stored job, so perform_now sees what a worker would.
        text = arguments.encode(opts.name, model, 1 << 62)
        return opts.schema.model_validate_json(text)


def is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn)


def _concurrency_key(job: str, key: Callable[[Any], Any] | None, args: Any) -> str | None:
    """The key a per-key concurrency limit counts this job under (refused before anything is written)."""
    if key is None:
        return None
    try:
        value = key(args)
    except Exception as error:
        raise JobArgumentsError(job, f"concurrency_key raised {type(error).__name__}: {error}") from error
    text = str(value)
    if value is None or not text or len(text) > 255:
        raise JobArgumentsError(job, f"concurrency_key must give a non-empty key of at most 255 characters, "
                                     f"got {value!r}")
    return text
