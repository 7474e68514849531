"""The settings of a JobQueue, checked once, with errors that say what to fix."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

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


def _database_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"database_url must be a string such as {_EXAMPLE_URLS}, got {value!r}")
    if not value.strip():
        # "" would reach SQLAlchemy as "sqlite://", a private in-memory database: jobs enqueued
        # there vanish with the process and no other worker ever sees them.
        raise ConfigurationError(
            f"database_url is empty ({value!r}): set it to a database URL such as {_EXAMPLE_URLS} "
            f"(on the command line: --database-url or {ENV_URL}), or leave it out to use "
            f"{ENV_URL}, else sqlite:///activejob.db in the working directory")
    return value


def _seconds(name: str, value: Any, *, allow_zero: bool = False) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


@dataclass
class Settings:
    """Options of `activejob.configure(...)` / `JobQueue(...)`; see docs/reference/settings.md."""

    database_url: str = field(default_factory=default_database_url)
    concurrency: int = 10
    queues: tuple[str, ...] | None = None  # None: every queue; "mail:5,default" also caps mail at 5
    poll_interval: float = 1.0
    lease: float = 30.0
    heartbeat_interval: float | None = None  # default: min(1s, lease / 3)
    shutdown_grace: float = 30.0
    cancel_grace: float = 5.0  # how long a sync job may take to notice a cancel request
    progress_interval: float = 0.25
    retention: dict[str, timedelta] = field(default_factory=dict)
    event_retention: timedelta = DEFAULT_RETENTION
    prune_interval: float = 60.0
    max_args_bytes: int = 1_000_000
    auto_migrate: bool = True
    pool_size: int = 5
    watch: bool = True  # wake on other processes' writes (NOTIFY / data_version)
    worker_id: str | None = None
    queue_limits: dict[str, int] = field(init=False, default_factory=dict)  # from `queues`

    def __post_init__(self) -> None:
        self.database_url = _database_url(self.database_url)
        if not isinstance(self.concurrency, int) or isinstance(self.concurrency, bool) or self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be a whole number >= 1, got {self.concurrency!r}")
        self.queues, self.queue_limits = _queues(self.queues)
        for name in ("poll_interval", "lease", "progress_interval", "prune_interval"):
            setattr(self, name, _seconds(name, getattr(self, name)))
        for name in ("shutdown_grace", "cancel_grace"):
            setattr(self, name, _seconds(name, getattr(self, name), allow_zero=True))
        if self.heartbeat_interval is None:
            self.heartbeat_interval = min(1.0, self.lease / 3)
        self.heartbeat_interval = _seconds("heartbeat_interval", self.heartbeat_interval)
        if self.heartbeat_interval >= self.lease:
            raise ConfigurationError("heartbeat_interval must be shorter than the lease")
        if not isinstance(self.pool_size, int) or isinstance(self.pool_size, bool) or self.pool_size < 1:
            raise ConfigurationError(f"pool_size must be a whole number >= 1, got {self.pool_size!r}")
        for name in ("watch", "auto_migrate"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.worker_id is not None and (not isinstance(self.worker_id, str) or not self.worker_id.strip()):
            raise ConfigurationError(f"worker_id must be a non-empty string (or None), got {self.worker_id!r}")
        if not isinstance(self.max_args_bytes, int) or self.max_args_bytes < 2:
            raise ConfigurationError(f"max_args_bytes must be a positive whole number, got {self.max_args_bytes!r}")
        retention = {s: DEFAULT_RETENTION for s in ("completed", "failed", "cancelled")}
        for status, keep in dict(self.retention or {}).items():
            if status not in retention:
                raise ConfigurationError(
                    f"retention is per finished status (completed, failed, cancelled), not {status!r}")
            if not isinstance(keep, timedelta):
                keep = timedelta(seconds=_seconds("retention", keep))
            retention[status] = keep
        self.retention = retention
        if not isinstance(self.event_retention, timedelta):
            self.event_retention = timedelta(seconds=_seconds("event_retention", self.event_retention))

    @classmethod
    def build(cls, **options: Any) -> Settings:
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(f"unknown setting(s) {unknown}; known: {', '.join(sorted(known))}")
        if options.get("database_url") is None:
            options.pop("database_url", None)
        settings = cls(**options)
        if options.get("concurrency") is None and settings.queues and \
                set(settings.queues) == set(settings.queue_limits):
            # Every queue has its own limit: together they are the worker's concurrency.
            settings.concurrency = sum(settings.queue_limits.values())
        return settings


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
        entries = []
        for item in value:
            name, _, limit = str(item).partition(":")
            entries.append((name, limit or None))
    names: list[str] = []
    limits: dict[str, int] = {}
    for name, limit in entries:
        name = name.strip()
        if not name:
            raise ConfigurationError(f"queues: an empty queue name in {value!r}")
        names.append(name)
        if limit is None:
            continue
        try:
            number = int(limit)
        except (TypeError, ValueError):
            number = 0
        if isinstance(limit, bool) or number < 1 or (isinstance(limit, float) and not limit.is_integer()):
            raise ConfigurationError(f"queues: the limit of {name!r} must be a whole number >= 1, got {limit!r}")
        limits[name] = number
    if "*" in names:
        if limits:
            raise ConfigurationError("queues: per-queue limits need every queue named, not '*'")
        return None, {}
    return tuple(dict.fromkeys(names)) or None, limits
