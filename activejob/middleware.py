"""Process-wide middleware: objects that wrap every enqueue and every perform.

    class Audit:
        def enqueue(self, enqueue, proceed):          # perform_later & co.
            handles = proceed()                      # writes the jobs
            print("enqueued", enqueue.name, [h.id for h in handles])
            return handles

        def perform(self, perform, proceed):          # each attempt of a `def perform` job
            print("running", perform.name, perform.job_id, "attempt", perform.attempt)
            return proceed()

        async def aperform(self, perform, proceed):   # each attempt of an `async def perform` job
            return await proceed()

    activejob.configure(database_url="sqlite:///jobs.db", middleware=[Audit()])

Every hook is optional. `enqueue` wraps `perform_later`, `perform_at`, `perform_in` and
`perform_all_later` (one call for the whole list), and their `a`-twins too unless the
object also has `aenqueue`; `perform` wraps the attempts run as plain functions, `aperform`
those run on the event loop (an `async def perform`, or a job with an async callback). A
hook not calling `proceed` refuses: an enqueue then raises `EnqueueRefused` (raise it
yourself to give the reason); a perform completes without running the job, with the hook's
return value as its result. The first middleware in the list is the outermost.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from .errors import ConfigurationError, EnqueueRefused
from .request import EnqueueRequest

HOOKS = ("enqueue", "aenqueue", "perform", "aperform")


@dataclass(eq=False)
class Enqueue:
    """One enqueue call on its way to the queue, as hooks see it: `job` is the job class,
    `requests` the jobs to write (one, or the whole list of a `perform_all_later`), and
    `handles` what the write returned (set once it has happened)."""

    job: type
    requests: list[EnqueueRequest]
    handles: list[Any] | None = None

    @property
    def name(self) -> str:
        return self.requests[0].name if self.requests else str(getattr(self.job, "__name__", "?"))

    @property
    def request(self) -> EnqueueRequest:
        """The first (for `perform_later`, the only) job being enqueued."""
        return self.requests[0]

    @property
    def args(self) -> list[dict[str, Any]]:
        """The arguments of each job, decoded from the JSON that will be stored."""
        return [json.loads(r.args) for r in self.requests]

    def merge_meta(self, **values: Any) -> None:
        """Add `values` to every job's `meta` (kept with the job, read back at perform)."""
        for request in self.requests:
            merge_meta(request, **values)


@dataclass(eq=False)
class Perform:
    """One attempt about to run, as hooks see it: `job` is the job instance (`job.job_id`,
    `job.attempt`, `job.context`), `args` the arguments (the schema's model), `meta` what
    travelled with the job from its enqueue (a dict; empty for `perform_now`)."""

    job: Any
    args: Any
    meta_text: str | None = None
    _meta: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.job.context.name)

    @property
    def job_id(self) -> int | None:
        return self.job.context.job_id  # type: ignore[no-any-return]

    @property
    def attempt(self) -> int:
        return int(self.job.context.attempt)

    @property
    def queue(self) -> str | None:
        return self.job.context.queue  # type: ignore[no-any-return]

    @property
    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = loads_meta(self.meta_text)
        return self._meta


def loads_meta(text: str | None) -> dict[str, Any]:
    """A job's `meta` JSON as a dict ({} when there is none or it is not an object)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def merge_meta(request: EnqueueRequest, **values: Any) -> None:
    """Add `values` to `request.meta` (JSON text), keeping what is there (a per-call timeout)."""
    request.meta = json.dumps({**loads_meta(request.meta), **values})


# -- the process-wide list ---------------------------------------------------------------


@dataclass(frozen=True)
class _Stack:
    items: tuple[Any, ...] = ()
    enqueue: tuple[Any, ...] = ()  # those with an `enqueue` hook
    aenqueue: tuple[Any, ...] = ()  # those with `aenqueue` or, failing it, `enqueue`
    perform: tuple[Any, ...] = ()
    aperform: tuple[Any, ...] = ()


_configured: tuple[Any, ...] = ()
_instruments: tuple[Any, ...] = ()  # installed by activejob.tracing.instrument(): kept across configure()
_stack = _Stack()


def check(items: Any) -> tuple[Any, ...]:
    """`items` as a tuple of middleware, or a ConfigurationError naming the one that has no hook."""
    if items is None:
        return ()
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise ConfigurationError(f"middleware must be a list of objects, got {items!r}")
    for item in items:
        if isinstance(item, type):
            raise ConfigurationError(f"middleware takes instances, got the class {item.__name__}: "
                                     f"write {item.__name__}()")
        if not any(callable(getattr(item, hook, None)) for hook in HOOKS):
            raise ConfigurationError(f"middleware {item!r} has none of the hooks {', '.join(HOOKS)}")
    return tuple(items)


def install(items: Sequence[Any]) -> None:
    """Make `items` the configured middleware (what `configure(middleware=[...])` does)."""
    global _configured
    _configured = check(list(items))
    _rebuild()


def instrument(item: Any) -> None:
    """Add an outermost middleware that outlives `configure()` (tracing); once only."""
    global _instruments
    if item not in _instruments:
        _instruments = (*_instruments, *check([item]))
        _rebuild()


def uninstrument(item: Any) -> None:
    global _instruments
    _instruments = tuple(i for i in _instruments if i is not item)
    _rebuild()


def installed() -> tuple[Any, ...]:
    """Every middleware, outermost first."""
    return _stack.items


def _rebuild() -> None:
    global _stack
    items = (*_instruments, *_configured)

    def having(*names: str) -> tuple[Any, ...]:
        return tuple(i for i in items if any(callable(getattr(i, n, None)) for n in names))

    _stack = _Stack(items, having("enqueue"), having("aenqueue", "enqueue"), having("perform"), having("aperform"))


def wraps_enqueue() -> bool:
    return bool(_stack.enqueue)


def wraps_aenqueue() -> bool:
    return bool(_stack.aenqueue)


def wraps_perform() -> bool:
    return bool(_stack.perform)


def wraps_aperform() -> bool:
    return bool(_stack.aperform)


def _by(item: Any) -> str:
    return type(item).__name__


def refused_by(enqueue: Enqueue, by: str, error: EnqueueRefused) -> EnqueueRefused:
    """`error`, said to come from `by` refusing `enqueue`'s job, unless it already names one."""
    if error.job is None:
        error.job, error.by = enqueue.name, by
    return error


def run_enqueue(enqueue: Enqueue, write: Callable[[], list[Any]]) -> list[Any]:
    """`write()` wrapped in every middleware's `enqueue` hook, outermost first."""
    call = write
    for item in reversed(_stack.enqueue):
        call = _enqueue_step(item, enqueue, call)
    return call()


def _enqueue_step(item: Any, enqueue: Enqueue, inner: Callable[[], list[Any]]) -> Callable[[], list[Any]]:
    return wrap_enqueue(inner, enqueue, lambda proceed: item.enqueue(enqueue, proceed), by=_by(item),
                        unproceeded="its enqueue hook returned without calling proceed()")


def wrap_enqueue(inner: Callable[[], list[Any]], enqueue: Enqueue, hook: Callable[[Callable[[], list[Any]]], Any],
                 *, by: str, unproceeded: str) -> Callable[[], list[Any]]:
    """The enqueue `inner()` wrapped in one hook that must call `proceed()`. A refusal
    raised in it is told as `by`'s; a hook that returned without proceeding refuses the
    enqueue with `unproceeded`. Middleware and `around_enqueue` callbacks share it."""
    def step() -> list[Any]:
        went_on = False

        def proceed() -> list[Any]:
            nonlocal went_on
            went_on = True
            return inner()

        try:
            handles = hook(proceed)
        except EnqueueRefused as error:
            raise refused_by(enqueue, by, error) from None
        if not went_on:
            raise EnqueueRefused(unproceeded, job=enqueue.name, by=by)
        return handles  # type: ignore[no-any-return]

    return step


async def arun_enqueue(enqueue: Enqueue, write: Callable[[], Awaitable[list[Any]]]) -> list[Any]:
    """`write()` wrapped in every middleware's `aenqueue` hook (or its `enqueue` hook, run on a
    thread with a `proceed` that comes back to the event loop)."""
    call = write
    for item in reversed(_stack.aenqueue):
        call = _aenqueue_step(item, enqueue, call)
    return await call()


def _aenqueue_step(item: Any, enqueue: Enqueue,
                   inner: Callable[[], Awaitable[list[Any]]]) -> Callable[[], Awaitable[list[Any]]]:
    aenqueue = getattr(item, "aenqueue", None)
    return wrap_aenqueue(inner, enqueue, (lambda proceed: aenqueue(enqueue, proceed)) if callable(aenqueue) else None,
                         lambda proceed: item.enqueue(enqueue, proceed), by=_by(item),
                         unproceeded="its enqueue hook returned without calling proceed()")


def wrap_aenqueue(inner: Callable[[], Awaitable[list[Any]]], enqueue: Enqueue,
                  hook: Callable[[Callable[[], Awaitable[list[Any]]]], Awaitable[Any]] | None,
                  sync_hook: Callable[[Callable[[], list[Any]]], Any], *, by: str,
                  unproceeded: str) -> Callable[[], Awaitable[list[Any]]]:
    """`wrap_enqueue` for async enqueues: `hook` is given an awaitable `proceed`; without
    one, `sync_hook` runs on a thread, given a `proceed` that comes back to the event loop."""
    async def step() -> list[Any]:
        went_on = False

        async def aproceed() -> list[Any]:
            nonlocal went_on
            went_on = True
            return await inner()

        def proceed() -> list[Any]:
            nonlocal went_on
            went_on = True
            return anyio.from_thread.run(_awaited, inner)

        try:
            handles = await hook(aproceed) if hook is not None else await anyio.to_thread.run_sync(sync_hook, proceed)
        except EnqueueRefused as error:
            raise refused_by(enqueue, by, error) from None
        if not went_on:
            raise EnqueueRefused(unproceeded, job=enqueue.name, by=by)
        return handles  # type: ignore[no-any-return]

    return step


def run_perform(perform: Perform, call: Callable[[], Any]) -> Any:
    """`call()` (the attempt) wrapped in every middleware's `perform` hook."""
    for item in reversed(_stack.perform):
        call = _perform_step(item, perform, call)
    return call()


def _perform_step(item: Any, perform: Perform, inner: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: item.perform(perform, inner)


async def arun_perform(perform: Perform, call: Callable[[], Awaitable[Any]]) -> Any:
    """`await call()` (the attempt) wrapped in every middleware's `aperform` hook."""
    for item in reversed(_stack.aperform):
        call = _aperform_step(item, perform, call)
    return await call()


def _aperform_step(item: Any, perform: Perform, inner: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def step() -> Any:
        return await item.aperform(perform, inner)

    return step


async def _awaited(call: Callable[[], Awaitable[Any]]) -> Any:
    return await call()
