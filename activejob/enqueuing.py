"""How a job is put on the queue: options for one enqueue (`Job.set(...)`), and the two
hooks the layers above fill in, so definitions never depend on them: the backend that
`perform_later` hands requests to (the JobQueue), and the runner of `perform_now`."""

from __future__ import annotations

import contextvars
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from . import arguments, callbacks, clock, enqueue_options, job_keys, middleware
from .errors import ConfigurationError, JobArgumentsError, JobOptionsError
from .options import show
from .request import EnqueueRequest as EnqueueRequest  # re-exported: the JobQueue and tests import it from here

if TYPE_CHECKING:
    from .definition import BaseJob
    from .handle import JobHandle

S = TypeVar("S", bound=BaseModel)


class Backend(Protocol):
    @property
    def max_args_bytes(self) -> int: ...

    def enqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]: ...
    async def aenqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]: ...
    def create_batch(self, *, description: str | None, owner: str | None, callbacks: str | None) -> int: ...
    def seal_batch(self, batch_id: int) -> None: ...


_backend: Callable[[], Backend] | None = None


def set_backend(factory: Callable[[], Backend] | None) -> Callable[[], Backend] | None:
    """Where `perform_later` sends jobs (the queue module sets `JobQueue.get` when imported;
    `activejob.testing.capture_enqueued()` an in-memory one). Returns the factory it replaced,
    so a caller can put it back; None leaves no backend."""
    global _backend
    previous, _backend = _backend, factory
    return previous


def backend() -> Backend:
    if _backend is None:
        raise ConfigurationError("no job queue: import activejob and call activejob.configure(...)")
    return _backend()


class Deferral(Protocol):
    def __call__(self, job: str, enqueue: Callable[[], list[JobHandle]], count: int, *,
                 requested: bool | None) -> list[JobHandle] | None: ...


# A framework's transactions are joined from above, as the backend is: its integration (the
# Django app) registers a hook that holds an enqueue back until the caller's transaction commits.
_deferral: Deferral | None = None


def set_deferral(hook: Deferral | None) -> Deferral | None:
    """Let a framework hold enqueues back until its transaction commits; returns the hook it replaced.

    The hook is called as `hook(job_name, enqueue, count, requested=on_commit)` for every enqueue
    without `session=` and without `on_commit=False`. It returns None to enqueue now, or `count`
    handles after arranging to call `enqueue()` on commit (`activejob.contrib.django` registers
    one that uses `transaction.on_commit`):

        previous = enqueuing.set_deferral(my_hook)
    """
    global _deferral
    previous, _deferral = _deferral, hook
    return previous


def after_commit(what: str, write: Callable[[], None]) -> bool:
    """Run `write` once the caller's transaction commits, through the framework's hook; False
    when nothing holds enqueues back now (no hook, or no transaction open), and `write` is not run."""
    if _deferral is None:
        return False

    def written() -> list[JobHandle]:
        write()
        return []

    return _deferral(what, written, 0, requested=None) is not None


class RunNow(Protocol):
    def __call__(self, job: type[BaseJob[Any]], args: BaseModel, /, *, owner: str | None = None,
                 timeout: float | None = None) -> Any: ...


class ArunNow(Protocol):
    def __call__(self, job: type[BaseJob[Any]], args: BaseModel, /, *,
                 owner: str | None = None, timeout: float | None = None) -> Awaitable[Any]: ...


# perform_now runs a job in the caller and fires its signals: the work of `inline.py`, in the
# execution layer above this one. So it is handed in from above, as the backend is: the
# package's __init__ (which runs before any activejob module is used) passes inline.py's runners.
_run_now: tuple[RunNow, ArunNow] | None = None


def set_run_now(run: RunNow, arun: ArunNow) -> None:
    """What `perform_now` and `aperform_now` run the job with (set by `activejob/__init__.py`)."""
    global _run_now
    _run_now = (run, arun)


def _now_runners() -> tuple[RunNow, ArunNow]:
    if _run_now is None:
        raise ConfigurationError("perform_now is not set up: it needs `import activejob`, which wires it")
    return _run_now


def _seconds(value: timedelta | float | int) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True)
class ConfiguredJob(Generic[S]):
    """A job type with options for the next enqueue, as `Job.set(...)` returns.

        SendEmail.set(queue="mail", priority=10, wait=timedelta(minutes=5)).perform_later(to=..., subject=...)
        SendEmail.set(owner="user-42").perform_later(...)     # the job's owner, for per-user views
        SendEmail.set(session=db_session).perform_later(...)  # commits with the caller's transaction
        SendEmail.set(unique_key="welcome-42").perform_later(...)  # at most one job per key
        SendEmail.set(unique_key=lambda args: f"welcome-{args.to}").perform_all_later([...])  # a key per job
        SendEmail.set(on_commit=True).perform_later(...)  # once the Django transaction commits

    Options are checked when set (`enqueue_options.py`), before anything is written, and
    refused with `JobOptionsError` (a `ConfigurationError` and a `ValueError`) naming the job
    and the option, every wrong one at once: `priority`
    is an int that fits 32 bits; `queue` and `owner` hold at most 200 characters and
    `unique_key` 255, with no NUL character and no lone surrogate (such as "\\udcff").
    """

    job: type[BaseJob[S]]
    queue: str | None = None
    priority: int | None = None
    wait: timedelta | float | None = None
    wait_until: datetime | None = None
    owner: str | None = None
    parent: Any = None
    session: Any = None
    unique_key: str | Callable[[Any], Any] | None = None  # text, or a function of the job's arguments
    unique_mode: str | None = None  # 'skip', 'replace', 'debounce' or 'raise' (default: the type's)
    unique_until: str | timedelta | None = None  # 'started', 'finished' or a timedelta (default: the type's)
    batch: Any = None  # a Batch, a BatchInfo or a batch id (default: the `with Batch()` block around it)
    depends_on: Any = None  # handles or ids of jobs it waits for
    run_on_failure: bool = False  # with depends_on: run even if one of them failed or was cancelled
    max_retries: int | None = None  # this job's own retry budget (default: the type's)
    timeout: timedelta | float | None = None  # this job's own timeout in seconds (default: the type's)
    on_commit: bool | None = None  # wait for the caller's transaction (default: when one is open; see set_deferral)

    def __post_init__(self) -> None:
        # Checked once per set(...), not once per job: a bulk enqueue shares these options.
        given = {option: getattr(self, option) for option in enqueue_options.OPTIONS}
        checked = enqueue_options.check(self.job.options.name, given)
        for option, value in checked.items():
            object.__setattr__(self, option, value)

    def set(self, **options: Any) -> ConfiguredJob[S]:
        if not options:  # frozen: the same options are the same object
            return self
        enqueue_options.refuse_unknown(self.job.options.name, options)
        return replace(self, **options)

    # -- building requests ------------------------------------------------------------

    def _run_at(self, now: datetime) -> datetime:
        try:
            if self.wait_until is not None:
                return clock.as_utc(self.wait_until)
            if self.wait is not None:
                return now + timedelta(seconds=_seconds(self.wait))
        except OverflowError:
            option = "wait_until" if self.wait_until is not None else "wait"
            raise JobOptionsError(self.job.options.name, option,
                                  f"gives a time a datetime cannot hold: {show(getattr(self, option))}") from None
        return now

    def request(self, args: S | dict[str, Any] | None = None, /, *, run_at: datetime | None = None,
                max_args_bytes: int, **kwargs: Any) -> EnqueueRequest:
        return self._request(self._shared(clock.now(), run_at), args, kwargs, max_args_bytes)

    def _shared(self, now: datetime, run_at: datetime | None) -> dict[str, Any]:
        """What every job of one call takes from the options, whatever its arguments: worked
        out once per call, so a bulk enqueue does not redo it a thousand times."""
        opts = self.job.options
        parent, owner = self.parent, self.owner
        if parent is not None:  # (most calls have none: spare them two failed attribute lookups)
            if hasattr(parent, "context"):  # a running job passed as `parent=self`
                owner = owner if owner is not None else parent.context.owner
                parent = parent.job_id
            parent = getattr(parent, "id", parent)
        until = self.unique_until if self.unique_until is not None else opts.unique_until
        batch = self.batch if self.batch is not None else current_batch()
        meta = {"timeout": _seconds(self.timeout)} if self.timeout is not None else None
        return {
            "name": opts.name, "queue": self.queue or opts.queue,
            "priority": opts.priority if self.priority is None else self.priority,
            "run_at": run_at or self._run_at(now),
            "max_retries": opts.max_retries if self.max_retries is None else self.max_retries,
            "owner": None if owner is None else str(owner),
            "parent_id": None if parent is None else int(parent),
            "unique_mode": self.unique_mode or opts.unique_mode,
            "unique_until": None if until == "finished" else "time" if isinstance(until, timedelta) else until,
            "unique_expires_at": now + until if isinstance(until, timedelta) else None,
            "batch_id": None if batch is None else int(getattr(batch, "id", batch)),
            "depends_on": self.depends_on or (),
            "run_on_failure": self.run_on_failure,
            "args_version": None if opts.version == 1 else opts.version,
            "meta": None if meta is None else json.dumps(meta),
        }

    def _request(self, shared: dict[str, Any], args: S | dict[str, Any] | None, kwargs: dict[str, Any],
                 max_args_bytes: int) -> EnqueueRequest:
        """One job's request: its arguments validated and encoded, the keys drawn from them."""
        opts = self.job.options
        if isinstance(args, dict):
            kwargs = {**args, **kwargs}
            args = None
        model = arguments.validate(opts.name, opts.schema, args, kwargs)
        text = arguments.encode(opts.name, model, max_args_bytes)
        unique_key = job_keys.key_of(opts.name, "unique_key",
                                     opts.unique_key if self.unique_key is None else self.unique_key, model)
        return EnqueueRequest(
            args=text, unique_key=unique_key,
            concurrency_key=job_keys.key_of(opts.name, "concurrency_key", opts.concurrency_key, model),
            rate_key=job_keys.key_of(opts.name, "rate_limit_key", opts.rate_limit_key, model), **shared,
        )

    # -- enqueue verbs ----------------------------------------------------------------

    def _held(self, b: Backend, requests: list[EnqueueRequest]) -> list[JobHandle] | None:
        """Handles of jobs held back until the caller's transaction commits, or None to write them now."""
        if self.session is not None or self.on_commit is False:
            return None
        if _deferral is None:
            if self.on_commit:
                raise ConfigurationError(
                    f"{self.job.options.name}: on_commit=True needs a transaction to wait for, and no framework "
                    "hooks one in: add 'activejob.contrib.django' to INSTALLED_APPS, or pass session=")
            return None
        return _deferral(self.job.options.name, lambda: b.enqueue(requests, None), len(requests),
                         requested=self.on_commit)

    def _send(self, b: Backend, requests: list[EnqueueRequest]) -> list[JobHandle]:
        """Write the jobs (or hold them for the caller's commit), through the middleware and
        the job's enqueue callbacks when there are any."""
        def write() -> list[JobHandle]:
            held = self._held(b, requests)
            return held if held is not None else b.enqueue(requests, self.session)

        if not (middleware.wraps_enqueue() or callbacks.of(self.job).on_enqueue):
            return write()
        enqueue = middleware.Enqueue(self.job, requests)
        return middleware.run_enqueue(enqueue, lambda: callbacks.run_enqueue(self.job, enqueue, write))

    async def _asend(self, b: Backend, requests: list[EnqueueRequest]) -> list[JobHandle]:
        async def write() -> list[JobHandle]:
            held = self._held(b, requests)
            return held if held is not None else await b.aenqueue(requests, self.session)

        if not (middleware.wraps_aenqueue() or callbacks.of(self.job).on_enqueue):
            return await write()
        enqueue = middleware.Enqueue(self.job, requests)

        async def hooked() -> list[JobHandle]:
            return await callbacks.arun_enqueue(self.job, enqueue, write)

        return await middleware.arun_enqueue(enqueue, hooked)

    def perform_later(self, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        """Validate and store the job; a worker runs it as soon as it can."""
        b = backend()
        return self._send(b, [self.request(args, max_args_bytes=b.max_args_bytes, **kwargs)])[0]

    async def aperform_later(self, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        """`perform_later` for async callers: the write runs off the event loop."""
        b = backend()
        return (await self._asend(b, [self.request(args, max_args_bytes=b.max_args_bytes, **kwargs)]))[0]

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
        shared = self._shared(clock.now(), None)
        for index, item in enumerate(items):
            try:
                requests.append(self._request(shared, item, {}, max_args_bytes))
            except JobArgumentsError as error:
                raise JobArgumentsError(error.job, f"item {index}: {str(error).split(': ', 1)[1]}",
                                        error.fields) from None
        return requests

    def perform_all_later(self, items: Iterable[S | dict[str, Any]]) -> list[JobHandle]:
        """Enqueue many jobs in one transaction; all are validated before any is written."""
        b = backend()
        requests = self._bulk(items, b.max_args_bytes)
        if not requests:
            return []
        return self._send(b, requests)

    async def aperform_all_later(self, items: Iterable[S | dict[str, Any]]) -> list[JobHandle]:
        b = backend()
        requests = self._bulk(items, b.max_args_bytes)
        if not requests:
            return []
        return await self._asend(b, requests)

    def perform_now(self, args: S | None = None, /, **kwargs: Any) -> Any:
        """Run the job here and now, with no database; returns its result, raises its error."""
        run, _ = _now_runners()
        timeout = None if self.timeout is None else _seconds(self.timeout)  # this call's own, else the type's
        return run(self.job, self._now_args(args, kwargs), owner=self.owner, timeout=timeout)

    async def aperform_now(self, args: S | None = None, /, **kwargs: Any) -> Any:
        _, arun = _now_runners()
        timeout = None if self.timeout is None else _seconds(self.timeout)
        return await arun(self.job, self._now_args(args, kwargs), owner=self.owner, timeout=timeout)

    def _now_args(self, args: S | dict[str, Any] | None, kwargs: dict[str, Any]) -> BaseModel:
        opts = self.job.options
        if isinstance(args, dict):
            kwargs = {**args, **kwargs}
            args = None
        model = arguments.validate(opts.name, opts.schema, args, kwargs)
        # The same JSON round trip as a stored job, so perform_now sees what a worker would.
        text = arguments.encode(opts.name, model, 1 << 62)
        return opts.schema.model_validate_json(text)


# The batch a `with Batch(...)` block opened: jobs enqueued inside it join it (batch.py sets it).
_current_batch: contextvars.ContextVar[Any] = contextvars.ContextVar("activejob_batch", default=None)


def current_batch() -> Any:
    """The batch of the innermost `with Batch(...)` block around this call, or None."""
    return _current_batch.get()


def set_current_batch(batch: Any) -> contextvars.Token[Any]:
    return _current_batch.set(batch)


def reset_current_batch(token: contextvars.Token[Any]) -> None:
    _current_batch.reset(token)


def is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn)
