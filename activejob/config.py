"""The settings of a JobQueue, checked once, with errors that say what to fix."""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from annotated_types import Ge, Gt
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    InstanceOf,
    ModelWrapValidatorHandler,
    PrivateAttr,
    Strict,
    ValidationError,
    model_validator,
)

from . import middleware, rate_limits
from .definition import registry
from .errors import ConfigurationError
from .options import Says, problems, refuse, unknown_names
from .recurring import Declared, declare

DEFAULT_RETENTION = timedelta(days=7)
ENV_URL = "ACTIVEJOB_DATABASE_URL"


def default_database_url() -> str:
    """`ACTIVEJOB_DATABASE_URL`, else `activejob.db` in the working directory.

    An empty variable counts as unset, as it does for the command line's options: `VAR=` is
    how env files and shells clear one. A value of only spaces has no such convention: it is a
    template that filled in nothing, and falling back to a local file would hide that.
    """
    value = os.environ.get(ENV_URL, "")
    if value and not value.strip():
        raise ConfigurationError(
            f"{ENV_URL} is blank ({value!r}): set it to a database URL such as {_EXAMPLE_URLS}, "
            "or unset it to use sqlite:///activejob.db in the working directory")
    return value or f"sqlite:///{Path.cwd() / 'activejob.db'}"


_EXAMPLE_URLS = "sqlite:///jobs.db or postgresql://user@host/app"


def _usable_url(value: str) -> str:
    if not value.strip():
        # "" would reach SQLAlchemy as "sqlite://", a private in-memory database: jobs enqueued
        # there vanish with the process and no other worker ever sees them.
        refuse(f"database_url is empty ({value!r}): set it to a database URL such as {_EXAMPLE_URLS} "
               f"(on the command line: --database-url or {ENV_URL}), or leave it out to use "
               f"{ENV_URL}, else sqlite:///activejob.db in the working directory")
    scheme = value.split("://", 1)[0].split("+", 1)[0] if "://" in value else "sqlite"
    if scheme not in ("sqlite", "postgres", "postgresql"):
        # Else SQLAlchemy would look for the database's driver and fail on a missing module.
        refuse(f"database_url {value.split('://', 1)[0]}://... is not a database activejob runs on: "
               f"use SQLite or PostgreSQL, such as {_EXAMPLE_URLS}")
    return value


def _worker_name(value: str) -> str:
    # Stored in the workers table and on each job it runs (200 characters, no NUL).
    if not value.strip() or len(value) > 200 or "\x00" in value:
        raise ValueError("not a worker id")  # worded by the field
    return value


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("negative")  # worded by the field
    return value


def _in_seconds(value: Any) -> Any:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _to_timedelta(value: Any) -> Any:
    # A number of seconds > 0 becomes a timedelta; anything else goes on as it is, for the
    # strict timedelta check to refuse (a timedelta is kept as given, even zero).
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        try:
            return timedelta(seconds=value)
        except OverflowError:
            pass
    return value


def _finished_status(value: str) -> str:
    if value not in FINISHED:
        raise ValueError("not a finished status")  # worded by the field
    return value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value  # as SQLite reads a PRAGMA's value


def _as_dict(value: Any) -> Any:
    if not value:  # None or {}: the default for every status
        return {}
    try:
        return dict(value)  # a mapping, or (status, duration) pairs
    except (TypeError, ValueError):
        return value  # refused by the dict check, in the field's words


def _schedules(value: Any) -> tuple[Declared, ...]:
    try:
        return declare(value or (), registry)
    except ConfigurationError as error:
        refuse(str(error))


def _rate_limits(value: Any) -> Any:
    if not value:
        return {}
    if not isinstance(value, dict):
        return value  # refused by the dict check, in the field's words
    limits = {}
    for queue, limit in value.items():
        try:
            limits[queue] = rate_limits.parse(limit)
        except ValueError as error:
            refuse(f"queue_rate_limits: the limit of {queue!r}: {error}")
    return limits


def _middleware(value: Any) -> tuple[Any, ...]:
    try:
        return middleware.check(value)
    except ConfigurationError as error:
        refuse(str(error))


def _every_status(value: dict[str, timedelta]) -> dict[str, timedelta]:
    return {**dict.fromkeys(FINISHED, DEFAULT_RETENTION), **value}


FINISHED = ("completed", "failed", "cancelled")
"""The statuses whose jobs `retention` keeps for a while, then prunes."""

DatabaseUrl = Annotated[str, Strict(), AfterValidator(_usable_url),
                        Says(f"must be a string such as {_EXAMPLE_URLS}")]
Seconds = Annotated[float, BeforeValidator(_in_seconds), Strict(), Gt(0), Says("must be a positive number of seconds")]
Grace = Annotated[float, BeforeValidator(_in_seconds), Strict(), Ge(0), Says("must be a number of seconds >= 0")]
Kept = Annotated[timedelta, BeforeValidator(_to_timedelta), Strict(), AfterValidator(_not_negative)]
"""How long something is kept: a timedelta, or a number of seconds > 0."""
Whole = Annotated[int, Strict(), Ge(1), Says("must be a whole number >= 1")]
Flag = Annotated[bool, Strict(), Says("must be True or False")]


class Settings(BaseModel):
    """Options of `activejob.configure(...)` / `JobQueue(...)`; see docs/reference/settings.md.

        settings = Settings.build(database_url="sqlite:///jobs.db", queues="mail:2,default", lease=60)
        settings.queue_limits          # {"mail": 2}
        settings.heartbeat_interval    # 1.0

    Checked by pydantic when made; every value that is wrong is reported at once, as one
    ConfigurationError that names each setting, what it must be and what it got.
    """

    model_config = ConfigDict(extra="forbid")

    database_url: DatabaseUrl = Field(default_factory=default_database_url)
    concurrency: Whole = 10
    queues: tuple[str, ...] | None = None  # None: every queue; "mail:5,default" also caps mail at 5
    poll_interval: Seconds = 1.0
    lease: Seconds = 30.0
    heartbeat_interval: Annotated[Seconds | None, Says("must be a positive number of seconds")] = None
    shutdown_grace: Grace = 30.0
    cancel_grace: Grace = 5.0  # how long a sync job may take to notice a cancel request
    progress_interval: Seconds = 0.25
    retention: Annotated[dict[Annotated[str, AfterValidator(_finished_status)], Kept],
                         BeforeValidator(_as_dict), AfterValidator(_every_status),
                         Says("maps finished statuses (completed, failed, cancelled) to a timedelta "
                              "or a positive number of seconds")] = Field(default_factory=dict, validate_default=True)
    event_retention: Annotated[Kept, Says("must be a timedelta or a positive number of seconds")] = DEFAULT_RETENTION
    prune_interval: Seconds = 60.0
    max_args_bytes: Annotated[int, Strict(), Ge(2), Says("must be a whole number of bytes >= 2")] = 1_000_000
    auto_migrate: Flag = True
    pool_size: Whole = 5
    watch: Flag = True  # wake on other processes' writes (NOTIFY / data_version)
    worker_id: Annotated[Annotated[str, Strict(), AfterValidator(_worker_name)] | None,
                         Says("must be a non-empty string of at most 200 characters, with no NUL (or None)")] = None
    sqlite_synchronous: Annotated[Literal["NORMAL", "FULL"], BeforeValidator(_upper),
                                  Says("must be 'NORMAL' or 'FULL'")] = "NORMAL"
    recurring: Annotated[tuple[InstanceOf[Declared], ...], BeforeValidator(_schedules),
                         Says("must be a list of schedules such as [{'job': 'cleanup', 'cron': '0 3 * * *'}]")] = ()
    # At most so many starts of each queue's jobs in any window, over every worker that has it
    # in its settings (docs/howto/rate-limits.md): {"mail": "100/m"}.
    queue_rate_limits: Annotated[dict[str, tuple[int, timedelta]], BeforeValidator(_rate_limits),
                                 Says("maps queue names to rate limits such as '100/m' or (10, timedelta(seconds=1))")
                                 ] = Field(default_factory=dict)
    # Process-wide hooks around every enqueue and perform (docs/howto/callbacks.md), and
    # OpenTelemetry spans (docs/howto/tracing.md); `configure()` installs them.
    middleware: Annotated[tuple[Any, ...], BeforeValidator(_middleware),
                          Says("must be a list of middleware objects (with enqueue/perform hooks)")] = ()
    tracing: Flag = False
    _queue_limits: dict[str, int] = PrivateAttr(default_factory=dict)

    def __init__(self, **options: Any) -> None:
        try:
            super().__init__(**options)
        except ValidationError as error:
            raise ConfigurationError(_refusal(error)) from None

    @property
    def queue_limits(self) -> dict[str, int]:
        """The limits `queues` carries: {"mail": 5} for "mail:5,default". Only `queues` sets them."""
        return self._queue_limits

    @model_validator(mode="wrap")
    @classmethod
    def _split_queues(cls, options: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # The names stay in `queues`; the limits are kept apart, not a setting of their own.
        limits: dict[str, int] = {}
        if isinstance(options, dict) and "queues" in options:
            names, limits = _queues(options["queues"])
            options = {**options, "queues": names}
        settings = handler(options)
        settings._queue_limits = limits
        return settings

    @model_validator(mode="after")
    def _heartbeat(self) -> Self:
        if self.heartbeat_interval is None:
            self.heartbeat_interval = min(1.0, self.lease / 3)
        if self.heartbeat_interval >= self.lease:
            refuse("heartbeat_interval must be shorter than the lease")
        return self

    @classmethod
    def build(cls, **options: Any) -> Settings:
        if options.get("database_url") is None:
            options.pop("database_url", None)
        settings = cls(**options)
        if options.get("concurrency") is None and settings.queues and \
                set(settings.queues) == set(settings.queue_limits):
            # Every queue has its own limit: together they are the worker's concurrency.
            settings.concurrency = sum(settings.queue_limits.values())
        return settings


def _refusal(error: ValidationError) -> str:
    """Every setting that was refused, in one message."""
    sentences = [sentence for _, sentence in problems(error, Settings)]
    unknown = unknown_names(error)
    if unknown:
        sentences.insert(0, f"unknown setting(s) {unknown}; known: {', '.join(sorted(Settings.model_fields))}")
    return "; ".join(sentences)


def _queues(value: Any) -> tuple[tuple[str, ...] | None, dict[str, int]]:
    """`queues` as names in the order given, and the limits some of them carry: a string
    "mail:5,default", a list of such entries, or a mapping {"mail": 5, "default": None}."""
    if value is None:
        return None, {}
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    entries: list[tuple[str, Any]]
    if isinstance(value, dict):
        entries = [(str(name), limit) for name, limit in value.items()]
    else:
        try:
            items = list(value)
        except TypeError:
            refuse(f"queues must be a list of queue names or a string such as 'mail:5,default', got {value!r}")
        entries = []
        for item in items:
            name, _, limit = str(item).partition(":")
            entries.append((name, limit or None))
    names: list[str] = []
    limits: dict[str, int] = {}
    for name, limit in entries:
        name = name.strip()
        if not name:
            refuse(f"queues: an empty queue name in {value!r}")
        names.append(name)
        if limit is None:
            continue
        try:
            number = int(limit)
        except (TypeError, ValueError, OverflowError):
            number = 0
        if isinstance(limit, bool) or number < 1 or (isinstance(limit, float) and not limit.is_integer()):
            refuse(f"queues: the limit of {name!r} must be a whole number >= 1, got {limit!r}")
        limits[name] = number
    if "*" in names:
        if limits:
            refuse("queues: per-queue limits need every queue named, not '*'")
        return None, {}
    return tuple(dict.fromkeys(names)) or None, limits
