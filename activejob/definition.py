"""Job types: the `@job` decorator, `BaseJob`, their options and the registry.

    class EmailArgs(BaseModel):
        to: str
        subject: str

    @job("send_email", schema=EmailArgs, max_retries=3, backoff="exponential", timeout=30)
    class SendEmail(BaseJob[EmailArgs]):
        async def perform(self, args: EmailArgs) -> dict:
            self.progress(0.5, message="rendering")
            return {"sent": True}
"""

from __future__ import annotations

import difflib
import typing
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from . import callbacks, job_options, rate_limits
from .context import JobContext
from .enqueuing import ConfiguredJob, is_async
from .errors import ConfigurationError, UnknownJobError, WaitForChildren
from .job_class import check_perform

if TYPE_CHECKING:
    from .handle import JobHandle

S = TypeVar("S", bound=BaseModel)
J = TypeVar("J", bound="type[BaseJob[Any]]")


class NoArgs(BaseModel):
    """The schema of a job that takes no arguments."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class JobOptions:
    """Everything `@job(...)` said about a job type."""

    name: str
    schema: type[BaseModel]
    max_retries: int
    backoff: Callable[[int], float]
    timeout: float | None
    queue: str
    priority: int
    retry_on: tuple[type[BaseException], ...] = ()
    discard_on: tuple[type[BaseException], ...] = ()
    label: str = ""
    description: str = ""
    phases: tuple[str, ...] = ()
    resource_link: Callable[[dict[str, Any]], str | None] | None = None
    concurrency_limit: int | None = None
    concurrency_key: Callable[[Any], Any] | None = None
    # Unique jobs (docs/howto/unique-jobs.md): a key (text, or a function of the arguments),
    # what a duplicate does, and how long the key is held.
    unique_key: str | Callable[[Any], Any] | None = None
    unique_mode: str = "skip"
    unique_until: str | timedelta = "finished"
    # Rate limits (docs/howto/rate-limits.md): at most `rate_limit[0]` starts in any window of
    # `rate_limit[1]`, over every worker; per key with `rate_limit_key`.
    rate_limit: tuple[int, timedelta] | None = None
    rate_limit_key: Callable[[Any], Any] | None = None
    # Arguments that outlive a deploy: the schema version new jobs are written with, and
    # how to bring older arguments up to it ({old version: function(args dict) -> args dict}).
    version: int = 1
    upcasters: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary, for the CLI and the dashboard."""
        return {
            "name": self.name, "label": self.label, "description": self.description,
            "queue": self.queue, "priority": self.priority, "max_retries": self.max_retries,
            "timeout": self.timeout, "phases": list(self.phases), "concurrency_limit": self.concurrency_limit,
            "concurrency_per_key": self.concurrency_key is not None,
            "rate_limit": rate_limits.text(self.rate_limit) if self.rate_limit else None,
            "rate_limit_per_key": self.rate_limit_key is not None,
            "schema": self.schema.model_json_schema(),
        }


class Registry(Mapping[str, "type[BaseJob[Any]]"]):
    """Job types by name, as registered by `@job` in this process."""

    def __init__(self) -> None:
        self._jobs: dict[str, type[BaseJob[Any]]] = {}

    def __getitem__(self, name: str) -> type[BaseJob[Any]]:
        try:
            return self._jobs[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._jobs, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else (
                "; import the module that defines it (activejob worker --import MODULE)")
            raise UnknownJobError(f"no job type named {name!r} is registered{hint}") from None

    def __contains__(self, name: object) -> bool:
        # Mapping's own asks __getitem__ and expects KeyError, which the readable
        # UnknownJobError is not: `"send_email" in registry` would raise.
        return name in self._jobs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._jobs))

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, name: str, default: Any = None) -> Any:
        return self._jobs.get(name, default)

    def add(self, cls: type[BaseJob[Any]]) -> None:
        name = cls.options.name
        existing = self._jobs.get(name)
        if existing is not None and existing is not cls and _origin(existing) != _origin(cls):
            raise ConfigurationError(
                f"job name {name!r} is already registered by {_origin(existing)}; "
                f"{_origin(cls)} needs another name"
            )
        self._jobs[name] = cls  # the same class defined again (a module reload) replaces it

    def remove(self, name: str) -> None:
        self._jobs.pop(name, None)


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


registry = Registry()


class BaseJob(Generic[S]):
    """The base of every job type. Define `perform`, decorate with `@job`.

    On the class: `perform_later`, `perform_at`, `perform_in`, `perform_all_later`,
    `perform_now`, `set(...)`, each with an `a`-prefixed awaitable twin.
    Inside `perform`: `self.progress`, `self.progress_count`, `self.log`,
    `self.checkpoint`, `self.checkpoint_data`, `self.job_id`, `self.attempt`,
    `self.cancelled`, `self.check_cancelled()`.
    """

    options: ClassVar[JobOptions]

    def __init__(self, context: JobContext | None = None) -> None:
        self.context = context or JobContext(job_id=None, name=self._name(), attempt=1)

    @classmethod
    def _name(cls) -> str:
        opts = cls.__dict__.get("options")
        return opts.name if opts is not None else cls.__name__

    def perform(self, args: S) -> Any:
        """Do the work. May be `async def` or plain `def`; the return value is stored."""
        raise NotImplementedError

    # -- inside a job -----------------------------------------------------------------

    @property
    def job_id(self) -> int | None:
        return self.context.job_id

    @property
    def attempt(self) -> int:
        """1 on the first run, 2 on the first retry, ..."""
        return self.context.attempt

    @property
    def checkpoint_data(self) -> Any:
        """What the last `checkpoint(...)` saved, also across retries and crashes."""
        return self.context.checkpoint_data

    @property
    def cancelled(self) -> bool:
        """True once someone asked to cancel this job (check it in long sync loops)."""
        return self.context.cancelled

    def check_cancelled(self) -> None:
        """Raise `JobCancelled` if someone asked to cancel this job."""
        self.context.check_cancelled()

    def progress(self, fraction: float, message: str | None = None, phase: str | None = None) -> None:
        """Report how far along the job is, 0.0 to 1.0: `self.progress(0.5, message="half")`."""
        self.context.progress(fraction, message, phase)

    def progress_count(self, current: int, total: int, message: str | None = None,
                       phase: str | None = None) -> None:
        """Report "X of Y": `self.progress_count(30, 120, message="rows")`."""
        self.context.progress_count(current, total, message, phase)

    def log(self, message: str, **data: Any) -> None:
        """Add a line to the job's timeline: `self.log("fetched", rows=120)`."""
        self.context.log(message, **data)

    def checkpoint(self, data: Any) -> None:
        """Save JSON data to resume from: `self.checkpoint({"offset": 1000})`."""
        self.context.checkpoint(data)

    def children(self) -> list[Any]:
        """The jobs enqueued with `set(parent=self)`, as `JobInfo`, oldest first."""
        reader = self.context.children_reader
        return reader() if reader is not None else []

    @property
    def batch(self) -> Any:
        """The batch this job belongs to, or that called it back (a `BatchInfo`, read now), or
        None: `Summarize`'s perform reads `self.batch.completed`; a member adds a sibling with
        `Job.set(batch=self.batch).perform_later(...)`."""
        reader = self.context.batch_reader
        return reader() if reader is not None else None

    def wait_for_children(self) -> None:
        """End this attempt and wait: the job is `waiting` until every child has finished,
        then it runs again (read `self.children()` or `self.checkpoint_data` to go on).
        With no child left unfinished (none was enqueued, or all have finished) there is
        nothing to wait for: it returns at once and `perform` goes on.

            def perform(self, args):
                if not self.children():
                    for part in parts:
                        ProcessPart.set(parent=self).perform_later(part=part)
                    self.wait_for_children()
                return {"parts": [c.result for c in self.children()]}
        """
        # Raised without a look when the children cannot be read (`perform_now`, which
        # cannot wait and says so): the waiting itself is the worker's.
        if self.context.children_reader is not None and all(c.finished for c in self.children()):
            return
        raise WaitForChildren()

    # -- enqueueing (class side) ------------------------------------------------------

    @classmethod
    def set(cls, **options: Any) -> ConfiguredJob[S]:
        """Options for one enqueue: `Job.set(queue="mail", wait=60).perform_later(...)`."""
        return cls._configured().set(**options)

    @classmethod
    def _configured(cls) -> ConfiguredJob[S]:
        # A ConfiguredJob without options is frozen and reads the type's options when used,
        # so one per class serves every call (perform_later runs once per job). Kept in the
        # class's own __dict__: a subclass must not answer with its parent's.
        plain: ConfiguredJob[S] | None = cls.__dict__.get("_plain_configured")
        if plain is None:
            plain = ConfiguredJob(cls)
            cls._plain_configured = plain  # type: ignore[attr-defined]
        return plain

    # Each verb is spelled out, rather than made by a loop or a descriptor over ConfiguredJob's,
    # so that type checkers see it with this class's schema `S`: a generated forwarder would
    # take its arguments as Any.

    @classmethod
    def perform_later(cls, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        """Store the job for a worker: `handle = SendEmail.perform_later(to="a@b.c", subject="Hi")`."""
        return cls._configured().perform_later(args, **kwargs)

    @classmethod
    async def aperform_later(cls, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        """`await SendEmail.aperform_later(...)` from async code."""
        return await cls._configured().aperform_later(args, **kwargs)

    @classmethod
    def perform_at(cls, when: datetime, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        """Run at a time: `SendEmail.perform_at(tomorrow_2am, to=..., subject=...)` (naive = UTC)."""
        return cls._configured().perform_at(when, args, **kwargs)

    @classmethod
    async def aperform_at(cls, when: datetime, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        return await cls._configured().aperform_at(when, args, **kwargs)

    @classmethod
    def perform_in(cls, delay: timedelta | float, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        """Run after a delay: `SendEmail.perform_in(timedelta(minutes=5), to=..., subject=...)`."""
        return cls._configured().perform_in(delay, args, **kwargs)

    @classmethod
    async def aperform_in(cls, delay: timedelta | float, args: S | None = None, /, **kwargs: Any) -> JobHandle:
        return await cls._configured().aperform_in(delay, args, **kwargs)

    @classmethod
    def perform_all_later(cls, items: Iterable[S | dict[str, Any]]) -> list[JobHandle]:
        """Bulk enqueue in one transaction: `SendEmail.perform_all_later([{...}, {...}])`."""
        return cls._configured().perform_all_later(items)

    @classmethod
    async def aperform_all_later(cls, items: Iterable[S | dict[str, Any]]) -> list[JobHandle]:
        return await cls._configured().aperform_all_later(items)

    @classmethod
    def perform_now(cls, args: S | None = None, /, **kwargs: Any) -> Any:
        """Run here, now, with no database: `result = SendEmail.perform_now(to=..., subject=...)`."""
        return cls._configured().perform_now(args, **kwargs)

    @classmethod
    async def aperform_now(cls, args: S | None = None, /, **kwargs: Any) -> Any:
        return await cls._configured().aperform_now(args, **kwargs)


def job(
    name: str,
    *,
    schema: type[BaseModel] | None = None,
    max_retries: int = 3,
    backoff: str | float | Callable[[int], float] = "exponential",
    backoff_base: float = 1.0,
    backoff_cap: float = 3600.0,
    backoff_jitter: float = 0.0,
    timeout: float | timedelta | None = None,
    queue: str = "default",
    priority: int = 0,
    retry_on: Any = (),
    discard_on: Any = (),
    label: str | None = None,
    description: str | None = None,
    phases: Any = (),
    resource_link: Callable[[dict[str, Any]], str | None] | None = None,
    cron: str | None = None,
    concurrency_limit: int | None = None,
    concurrency_key: Callable[[Any], Any] | None = None,
    unique_key: str | Callable[[Any], Any] | None = None,
    unique_mode: str = "skip",
    unique_until: str | timedelta = "finished",
    rate_limit: str | tuple[int, timedelta | float] | None = None,
    rate_limit_key: Callable[[Any], Any] | None = None,
    version: int = 1,
    upcasters: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
    **extra: Any,
) -> Callable[[J], J]:
    """Register a `BaseJob` subclass under `name`.

        @job("resize_image", schema=ResizeArgs, max_retries=5, backoff="linear", backoff_base=10,
             timeout=120, queue="media", priority=5, retry_on=[ConnectionError], discard_on=[KeyError],
             label="Resize image", phases=["download", "resize", "upload"],
             resource_link=lambda args: f"/images/{args['image_id']}")
        class ResizeImage(BaseJob[ResizeArgs]):
            def perform(self, args: ResizeArgs) -> None: ...

    `cron="0 2 * * *"` also runs the job on that schedule (UTC), with default arguments.
    `concurrency_limit=2` lets at most two jobs of this type run at once, over all workers
    (the rest wait, pending, for a slot); with `concurrency_key=lambda args: args.account_id`
    the limit holds for each key instead: two per account.
    `priority` is an int from -2**31 to 2**31 - 1 (higher runs first); `name` and
    `queue` hold at most 200 characters.
    `max_retries=3` means up to four attempts. `backoff` is "exponential", "linear",
    "fixed", a number of seconds, or a callable `(attempt) -> seconds`. `retry_on`
    narrows which errors are retried (others fail at once); `discard_on` errors fail
    at once. Unknown keyword options are refused, to catch typos.
    """
    given = job_options.check(name, {
        "schema": NoArgs if schema is None else schema, "max_retries": max_retries, "backoff": backoff,
        "backoff_base": backoff_base, "backoff_cap": backoff_cap, "backoff_jitter": backoff_jitter,
        "timeout": timeout, "queue": queue, "priority": priority, "retry_on": retry_on,
        "discard_on": discard_on, "label": label, "description": description, "phases": phases,
        "resource_link": resource_link, "cron": cron, "concurrency_limit": concurrency_limit,
        "concurrency_key": concurrency_key, "unique_key": unique_key, "unique_mode": unique_mode,
        "unique_until": unique_until, "rate_limit": rate_limit, "rate_limit_key": rate_limit_key,
        "version": version, "upcasters": upcasters, **extra,
    })
    cron = given.cron
    options = JobOptions(
        name=given.name, schema=given.schema_, max_retries=given.max_retries, backoff=given.backoff,
        timeout=given.timeout, queue=given.queue, priority=given.priority, retry_on=given.retry_on,
        discard_on=given.discard_on, label=given.label or given.name.replace("_", " ").capitalize(),
        description=given.description or "", phases=given.phases, resource_link=given.resource_link,
        concurrency_limit=given.concurrency_limit, concurrency_key=given.concurrency_key,
        unique_key=given.unique_key, unique_mode=given.unique_mode, unique_until=given.unique_until,
        rate_limit=given.rate_limit, rate_limit_key=given.rate_limit_key,
        version=given.version, upcasters=given.upcasters,
    )

    def register(cls: J) -> J:
        if not (isinstance(cls, type) and issubclass(cls, BaseJob)):
            raise ConfigurationError(f"{name}: @job decorates BaseJob subclasses, not {cls!r}")
        if cls.perform is BaseJob.perform:
            raise ConfigurationError(f"{name}: {cls.__qualname__} must define perform(self, args) "
                                     "(or perform(self), for a job without arguments)")
        callbacks.register(cls, name)
        if schema is None and (declared := _declared_schema(cls)) is not None:
            # `class SendEmail(BaseJob[EmailArgs])` names its schema already: no need to repeat
            # it as schema=, and without it the job would take no arguments at all.
            object.__setattr__(options, "schema", declared)
        check_perform(cls, name, options.schema)
        cls.options = options
        if not options.description and cls.__doc__:
            object.__setattr__(options, "description", cls.__doc__.strip().splitlines()[0])
        registry.add(cls)
        if cron is not None:
            from .recurring import recurring

            recurring(cron, cls)
        return cls

    return register


def _declared_schema(cls: type) -> type[BaseModel] | None:
    """The model `cls` gives BaseJob as its type parameter (`BaseJob[EmailArgs]`), if any."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, BaseJob):
                args = typing.get_args(base)
                if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                    return args[0]
    return None


_ASYNC: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def job_is_async(cls: type[BaseJob[Any]]) -> bool:
    """Whether the job's attempts run on the event loop: an async perform, or an async callback.
    Asked for every job a worker starts, so kept per class (a class's perform does not change)."""
    found = _ASYNC.get(cls)
    if found is None:
        found = _ASYNC[cls] = is_async(cls.perform) or callbacks.of(cls).async_perform
    return found
