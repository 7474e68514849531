"""Recurring jobs on a cron schedule.

    @job("nightly_cleanup", cron="0 2 * * *")          # every day at 02:00 UTC
    class NightlyCleanup(BaseJob): ...

    activejob.recurring("*/15 * * * *", SyncAccounts, args={"full": False}, key="sync-accounts")

A running queue keeps the next occurrence of every schedule enqueued as a scheduled job
whose unique key names the slot (`cron:<key>:<time>`), so however many workers run,
each slot runs once, on time, even if no worker was looking at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from . import clock
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .definition import BaseJob
    from .enqueuing import EnqueueRequest


@dataclass(frozen=True)
class Recurring:
    """One schedule: a job type, its arguments, and a cron expression."""

    key: str
    cron: str
    job: type[BaseJob[Any]]
    args: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    queue: str | None = None
    priority: int | None = None

    def next_after(self, when: datetime) -> datetime:
        """The first occurrence strictly after `when`, in UTC."""
        local = clock.as_utc(when).astimezone(ZoneInfo(self.timezone))
        nxt: datetime = croniter(self.cron, local).get_next(datetime)
        return clock.as_utc(nxt)

    def request(self, slot: datetime, max_args_bytes: int) -> EnqueueRequest:
        from .enqueuing import ConfiguredJob

        configured = ConfiguredJob(self.job).set(
            wait_until=slot, queue=self.queue, priority=self.priority,
            unique_key=f"cron:{self.key}:{slot.isoformat()}",
        )
        return configured.request(self.args, max_args_bytes=max_args_bytes)

    def describe(self, now: datetime | None = None) -> dict[str, Any]:
        return {"key": self.key, "cron": self.cron, "job": self.job.options.name, "args": self.args,
                "timezone": self.timezone, "next_run": self.next_after(now or clock.now()).isoformat()}


schedules: dict[str, Recurring] = {}
"""Every schedule registered in this process, by key."""


def recurring(cron: str, job: type[BaseJob[Any]], *, args: dict[str, Any] | None = None, key: str | None = None,
              timezone: str = "UTC", queue: str | None = None, priority: int | None = None) -> Recurring:
    """Run `job` with `args` on a cron schedule (five fields; `timezone` names the zone
    the expression is read in). Returns the schedule; the same `key` replaces it."""
    name = job.options.name
    key = key or name
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise ConfigurationError(f"{name}: {cron!r} is not a valid cron expression (e.g. '0 2 * * *')")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"{name}: unknown time zone {timezone!r}") from None
    schedule = Recurring(key=key, cron=cron, job=job, args=dict(args or {}), timezone=timezone,
                         queue=queue, priority=priority)
    schedule.request(clock.now(), max_args_bytes=1 << 62)  # invalid args fail now, not at 2 am
    schedules[key] = schedule
    return schedule
