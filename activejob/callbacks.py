"""Job callbacks: methods of a job class that run around its enqueues and its performs.

    @job("send_email", schema=EmailArgs)
    class SendEmail(BaseJob[EmailArgs]):
        @before_enqueue
        def stamp(cls, enqueue):               # the job class, and the `Enqueue` on its way
            enqueue.merge_meta(requested_by="web")

        @around_perform
        def timed(self, args, proceed):        # the job instance, its arguments, the rest
            started = time.monotonic()
            result = proceed()
            self.log("took", seconds=time.monotonic() - started)
            return result

        def perform(self, args): ...

A class may have several hooks of each kind; they run in the order they are defined, base
classes' first (a subclass that defines a method of the same name replaces that hook in its
place; without the decorator, it removes it). Hooks may be `async def`:

- perform hooks: `before_perform(self, args)` runs before `perform` (raising fails the
  attempt, as `perform` raising would); `around_perform(self, args, proceed)` returns what
  the job returns (`proceed()` runs the rest; not calling it skips `perform`, and the job
  completes with what the hook returned); `after_perform(self, args)` runs once `perform`
  returned. Any async hook runs the job's attempts on the event loop (a plain `def perform`
  then runs on a thread), where `around_perform` hooks must be `async def` too
  (`await proceed()`).
- enqueue hooks: `before_enqueue(cls, enqueue)`, `around_enqueue(cls, enqueue, proceed)`
  (returns the handles `proceed()` returns; not calling it refuses the enqueue, which raises
  `EnqueueRefused`), `after_enqueue(cls, enqueue)` (with `enqueue.handles`). A
  `perform_all_later` is one enqueue: each hook runs once, and sees every job in
  `enqueue.requests`. `async def` enqueue hooks need the async verbs (`aperform_later`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import anyio

from .errors import ConfigurationError, EnqueueRefused
from .middleware import Enqueue, refused_by, wrap_aenqueue, wrap_enqueue

F = TypeVar("F", bound=Callable[..., Any])

KINDS = ("before_enqueue", "around_enqueue", "after_enqueue", "before_perform", "around_perform", "after_perform")
_MARK = "__activejob_callback__"
_CACHE = "_activejob_callbacks"


def _marker(kind: str) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        if not callable(fn):
            raise ConfigurationError(f"@{kind} decorates a method of a job class, not {fn!r}")
        setattr(fn, _MARK, kind)
        return fn

    mark.__name__ = mark.__qualname__ = kind
    mark.__doc__ = f"Mark a method of a job class as a `{kind}` callback (see `activejob.callbacks`)."
    return mark


before_enqueue = _marker("before_enqueue")
around_enqueue = _marker("around_enqueue")
after_enqueue = _marker("after_enqueue")
before_perform = _marker("before_perform")
around_perform = _marker("around_perform")
after_perform = _marker("after_perform")


@dataclass(frozen=True)
class Callbacks:
    """A job class's hooks of each kind, in the order they run."""

    before_enqueue: tuple[Callable[..., Any], ...] = ()
    around_enqueue: tuple[Callable[..., Any], ...] = ()
    after_enqueue: tuple[Callable[..., Any], ...] = ()
    before_perform: tuple[Callable[..., Any], ...] = ()
    around_perform: tuple[Callable[..., Any], ...] = ()
    after_perform: tuple[Callable[..., Any], ...] = ()

    @property
    def on_enqueue(self) -> bool:
        return bool(self.before_enqueue or self.around_enqueue or self.after_enqueue)

    @property
    def on_perform(self) -> bool:
        return bool(self.before_perform or self.around_perform or self.after_perform)

    @cached_property
    def async_perform(self) -> bool:
        """Whether a perform hook is `async def` (the attempts then run on the event loop)."""
        return any(_is_async(fn) for fn in (*self.before_perform, *self.around_perform, *self.after_perform))

    @cached_property
    def async_enqueue(self) -> bool:
        return any(_is_async(fn) for fn in (*self.before_enqueue, *self.around_enqueue, *self.after_enqueue))


NONE = Callbacks()


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn)


def _name(fn: Any) -> str:
    return str(getattr(fn, "__name__", fn))


def collect(cls: type) -> Callbacks:
    """The hooks `cls` and its bases define, base classes first, each in definition order."""
    found: dict[str, tuple[str, Callable[..., Any]]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            kind = getattr(value, _MARK, None)
            if kind in KINDS:
                found[name] = (kind, value)  # a redefinition keeps the place of the one it replaces
            elif name in found:
                del found[name]  # overridden without the decorator: no longer a hook
    by_kind: dict[str, list[Callable[..., Any]]] = {kind: [] for kind in KINDS}
    for kind, fn in found.values():
        by_kind[kind].append(fn)
    if not any(by_kind.values()):
        return NONE
    return Callbacks(**{kind: tuple(fns) for kind, fns in by_kind.items()})


def of(cls: type) -> Callbacks:
    """`cls`'s callbacks (collected once, when `@job` registers it, or on first use)."""
    found = cls.__dict__.get(_CACHE)
    if found is None:
        found = collect(cls)
        setattr(cls, _CACHE, found)
    return found  # type: ignore[no-any-return]


def register(cls: type, name: str) -> Callbacks:
    """Collect and check `cls`'s callbacks when `@job(name)` registers it: a sync
    `around_perform` hook cannot wrap attempts that run on the event loop."""
    found = collect(cls)
    setattr(cls, _CACHE, found)
    if _is_async(getattr(cls, "perform", None)) or found.async_perform:
        for fn in found.around_perform:
            if not _is_async(fn):
                raise ConfigurationError(
                    f"{name}: around_perform hook {_name(fn)!r} is a plain def, but this job's attempts run on the "
                    "event loop (its perform or another perform hook is async def): make it async def and "
                    "`return await proceed()`")
    return found


# -- enqueue --------------------------------------------------------------------------------


def run_enqueue(cls: type, enqueue: Enqueue, write: Callable[[], list[Any]]) -> list[Any]:
    """`write()` wrapped in `cls`'s enqueue hooks (sync enqueue verbs)."""
    hooks = of(cls)
    if hooks.async_enqueue:
        fn = next(f for f in (*hooks.before_enqueue, *hooks.around_enqueue, *hooks.after_enqueue) if _is_async(f))
        raise ConfigurationError(f"{enqueue.name}: the enqueue hook {_name(fn)!r} is async def: enqueue with "
                                 "the async verbs (aperform_later, ...), or make it a plain def")
    for fn in hooks.before_enqueue:
        _refusable(enqueue, fn, fn, cls, enqueue)
    call = write
    for fn in reversed(hooks.around_enqueue):
        call = _around_enqueue(cls, fn, enqueue, call)
    enqueue.handles = call()
    for fn in hooks.after_enqueue:
        fn(cls, enqueue)
    return enqueue.handles


def _refusable(enqueue: Enqueue, hook: Any, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except EnqueueRefused as error:
        raise refused_by(enqueue, f"{_kind(hook)} hook {_name(hook)!r}", error) from None


def _kind(fn: Any) -> str:
    return str(getattr(fn, _MARK, "callback"))


def _around_enqueue(cls: type, fn: Callable[..., Any], enqueue: Enqueue,
                    inner: Callable[[], list[Any]]) -> Callable[[], list[Any]]:
    return wrap_enqueue(inner, enqueue, lambda proceed: fn(cls, enqueue, proceed),
                        by=f"around_enqueue hook {_name(fn)!r}", unproceeded="it returned without calling proceed()")


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def arun_enqueue(cls: type, enqueue: Enqueue, write: Callable[[], Awaitable[list[Any]]]) -> list[Any]:
    """`await write()` wrapped in `cls`'s enqueue hooks (async enqueue verbs): async hooks are
    awaited; a plain `around_enqueue` runs on a thread, its `proceed` coming back to the loop."""
    hooks = of(cls)
    for fn in hooks.before_enqueue:
        await _maybe_await(_refusable(enqueue, fn, fn, cls, enqueue))
    call = write
    for fn in reversed(hooks.around_enqueue):
        call = _aaround_enqueue(cls, fn, enqueue, call)
    enqueue.handles = await call()
    for fn in hooks.after_enqueue:
        await _maybe_await(fn(cls, enqueue))
    return enqueue.handles


def _aaround_enqueue(cls: type, fn: Callable[..., Any], enqueue: Enqueue,
                     inner: Callable[[], Awaitable[list[Any]]]) -> Callable[[], Awaitable[list[Any]]]:
    return wrap_aenqueue(inner, enqueue, (lambda proceed: fn(cls, enqueue, proceed)) if _is_async(fn) else None,
                         lambda proceed: fn(cls, enqueue, proceed), by=f"around_enqueue hook {_name(fn)!r}",
                         unproceeded="it returned without calling proceed()")


# -- perform --------------------------------------------------------------------------------


def perform_call(instance: Any, args: Any) -> Callable[[], Any]:
    """The attempt of a job whose hooks are all plain functions, as one call."""
    hooks = of(type(instance))

    def call() -> Any:
        for fn in hooks.before_perform:
            fn(instance, args)
        inner: Callable[[], Any] = lambda: instance.perform(args)  # noqa: E731
        for fn in reversed(hooks.around_perform):
            inner = _around_perform(fn, instance, args, inner)
        result = inner()
        for fn in hooks.after_perform:
            fn(instance, args)
        return result

    return call


def _around_perform(fn: Callable[..., Any], instance: Any, args: Any, inner: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: fn(instance, args, inner)


def aperform_call(instance: Any, args: Any) -> Callable[[], Awaitable[Any]]:
    """The attempt of a job run on the event loop, hooks and all, as one awaitable call: a
    plain `def perform` runs on a thread (given up on when the attempt is cancelled or times
    out, as the worker does with its sync jobs)."""
    hooks = of(type(instance))

    async def core() -> Any:
        if _is_async(instance.perform):
            return await instance.perform(args)
        return await anyio.to_thread.run_sync(instance.perform, args, abandon_on_cancel=True)

    async def call() -> Any:
        for fn in hooks.before_perform:
            await _maybe_await(fn(instance, args))
        inner: Callable[[], Awaitable[Any]] = core
        for fn in reversed(hooks.around_perform):
            inner = _aaround_perform(fn, instance, args, inner)
        result = await inner()
        for fn in hooks.after_perform:
            await _maybe_await(fn(instance, args))
        return result

    return call


def _aaround_perform(fn: Callable[..., Any], instance: Any, args: Any,
                     inner: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def step() -> Any:
        return await fn(instance, args, inner)

    return step

