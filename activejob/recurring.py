"""Recurring jobs on a cron schedule, declared in code or in settings.

    @job("nightly_cleanup", cron="0 2 * * *")          # every day at 02:00 UTC
    class NightlyCleanup(BaseJob): ...

    activejob.recurring("*/15 * * * *", SyncAccounts, args={"full": False}, key="sync-accounts")

    activejob.configure(recurring=[                     # the same, as settings
        {"key": "nightly", "job": "cleanup", "cron": "0 3 * * *", "timezone": "Europe/Rome"},
    ])

A running queue keeps the next occurrence of every schedule enqueued as a scheduled job
whose unique key names the slot (`cron:<key>:<time>`), so however many workers run,
each slot runs once, on time, even if no worker was looking at that moment. `catch_up`
says what becomes of the slots that passed while no worker ran at all (see `CATCH_UP`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from . import clock
from .errors import ConfigurationError, JobArgumentsError, UnknownJobError
from .options import show

if TYPE_CHECKING:
    from .definition import BaseJob
    from .enqueuing import EnqueueRequest

CATCH_UP = ("none", "latest", "all")
"""What a worker does, when it finds that slots of a schedule passed while no worker ran:
`"none"` (the default) runs none of them, only the next slot to come; `"latest"` runs the
most recent one, once; `"all"` runs each of them (the latest `CATCH_UP_LIMIT`), oldest first.
A slot counts as missed once the slot after it has come too: a worker back five minutes late
for a nightly job still runs it."""

CATCH_UP_LIMIT = 100
"""The most missed slots of one schedule that `catch_up="all"` enqueues (the latest ones)."""

KEY_PREFIX = "cron:"


@dataclass(frozen=True)
class Recurring:
    """One schedule: a job type, its arguments, and a cron expression.

        schedule = activejob.recurring("0 3 * * *", Cleanup, key="nightly", timezone="Europe/Rome")
        schedule.next_after(datetime(2030, 1, 1, tzinfo=UTC))   # 2030-01-01 02:00 UTC
    """

    key: str
    cron: str
    job: type[BaseJob[Any]]
    args: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    queue: str | None = None
    priority: int | None = None
    catch_up: str = "none"
    source: str = "code"  # or "settings": where it was declared

    @property
    def key_prefix(self) -> str:
        """What the unique key of each of its slots starts with."""
        return f"{KEY_PREFIX}{self.key}:"

    def next_after(self, when: datetime) -> datetime:
        """The first occurrence strictly after `when`, in UTC."""
        return _next_after(self.cron, self.timezone, when)

    def missed(self, after: datetime, until: datetime, limit: int = CATCH_UP_LIMIT) -> tuple[list[datetime], bool]:
        """The slots in (`after`, `until`], at most the latest `limit`, oldest first; and
        whether there were more. Walks back from `until`, so a long outage costs `limit` steps."""
        local = clock.as_utc(until).astimezone(ZoneInfo(self.timezone)) + timedelta(microseconds=1)
        walk = croniter(self.cron, local)
        slots: list[datetime] = []
        while len(slots) <= limit:
            slot = clock.as_utc(walk.get_prev(datetime))
            if slot <= after:
                break
            slots.append(slot)
        more = len(slots) > limit
        return sorted(slots[:limit]), more

    def request(self, slot: datetime | None, max_args_bytes: int) -> EnqueueRequest:
        """The job of `slot`, due then, whose unique key names the slot (each slot runs once);
        or, with None, a job due now beside the slots (`queue.run_schedule`)."""
        from .enqueuing import ConfiguredJob

        configured = ConfiguredJob(self.job).set(queue=self.queue, priority=self.priority)
        if slot is not None:
            configured = configured.set(wait_until=slot, unique_key=f"{self.key_prefix}{slot.isoformat()}")
        return configured.request(self.args, max_args_bytes=max_args_bytes)

    def describe(self, now: datetime | None = None, last: datetime | None = None) -> dict[str, Any]:
        """A JSON-ready summary, for `queue.recurring()`, the CLI and the dashboard."""
        return {"key": self.key, "cron": self.cron, "job": self.job.options.name, "args": self.args,
                "timezone": self.timezone, "next_run": self.next_after(now or clock.now()).isoformat(),
                "catch_up": self.catch_up, "queue": self.queue or self.job.options.queue,
                "priority": self.job.options.priority if self.priority is None else self.priority,
                "source": self.source, "last_enqueued": last.isoformat() if last else None, "error": None}


schedules: dict[str, Recurring] = {}
"""Every schedule registered in code in this process, by key."""


def recurring(cron: str, job: type[BaseJob[Any]], *, args: dict[str, Any] | None = None, key: str | None = None,
              timezone: str = "UTC", queue: str | None = None, priority: int | None = None,
              catch_up: str = "none") -> Recurring:
    """Run `job` with `args` on a cron schedule (five fields; `timezone` names the zone
    the expression is read in). Returns the schedule; the same `key` replaces it.

        activejob.recurring("0 9 * * 1", WeeklyReport, args={"team": "ops"}, key="weekly-ops",
                            timezone="Europe/Paris", catch_up="latest")

    `catch_up` is "none", "latest" or "all" (see `CATCH_UP`).
    """
    name = job.options.name
    key = key or name
    _check(name, cron, timezone, catch_up)
    schedule = Recurring(key=key, cron=cron, job=job, args=dict(args or {}), timezone=timezone,
                         queue=queue, priority=priority, catch_up=catch_up)
    _check_args(schedule)
    schedules[key] = schedule
    return schedule


def _check(who: str, cron: Any, timezone: Any, catch_up: Any) -> None:
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise ConfigurationError(f"{who}: {show(cron)} is not a valid cron expression (e.g. '0 2 * * *')")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigurationError(f"{who}: unknown time zone {show(timezone)} (e.g. 'UTC', 'Europe/Rome')") from None
    if catch_up not in CATCH_UP:
        raise ConfigurationError(f"{who}: catch_up must be one of {', '.join(map(repr, CATCH_UP))}, "
                                 f"got {show(catch_up)}")


def _check_args(schedule: Recurring) -> None:
    try:
        schedule.request(clock.now(), max_args_bytes=1 << 62)  # invalid args fail now, not at 2 am
    except JobArgumentsError as error:
        message = str(error).removeprefix(f"{error.job}: ")
        raise JobArgumentsError(error.job, f"schedule {schedule.key!r}: {message}", error.fields) from None


def _next_after(cron: str, timezone: str, when: datetime) -> datetime:
    local = clock.as_utc(when).astimezone(ZoneInfo(timezone))
    nxt: datetime = croniter(cron, local).get_next(datetime)
    return clock.as_utc(nxt)


# -- declared in settings -------------------------------------------------------------

_FIELDS = ("key", "job", "cron", "args", "timezone", "queue", "priority", "catch_up")


@dataclass(frozen=True)
class Declared:
    """A schedule as settings declare it, its job named: resolved into a `Recurring` when a
    worker, the CLI or the dashboard needs it, since job types may be imported after
    `configure(recurring=[...])`. Made by `declare`."""

    key: str
    job: str
    cron: str
    args: dict[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"
    queue: str | None = None
    priority: int | None = None
    catch_up: str = "none"

    def resolve(self, jobs: Mapping[str, type[BaseJob[Any]]]) -> Recurring:
        """The schedule, with its job type found in `jobs` (the registry) and its arguments
        checked against the job's schema. Raises UnknownJobError or JobArgumentsError, each
        naming the schedule's key."""
        cls = jobs.get(self.job)
        if cls is None:
            reason = (f"no job type named {self.job!r} is registered; import the module that defines it "
                      "(activejob worker --import MODULE)")
            try:
                jobs[self.job]
            except UnknownJobError as error:  # the registry's words, with its "did you mean"
                reason = str(error)
            except LookupError:
                pass
            raise UnknownJobError(f"schedule {self.key!r}: {reason}")
        schedule = Recurring(key=self.key, cron=self.cron, job=cls, args=dict(self.args), timezone=self.timezone,
                             queue=self.queue, priority=self.priority, catch_up=self.catch_up, source="settings")
        try:
            _check_args(schedule)
        except ConfigurationError as error:  # an option its slots' jobs cannot have (a key too long)
            raise ConfigurationError(f"schedule {self.key!r}: {error}") from None
        return schedule

    def describe(self, now: datetime | None = None, last: datetime | None = None,
                 error: str | None = None) -> dict[str, Any]:
        """The summary of a schedule that does not resolve (`error` says why)."""
        return {"key": self.key, "cron": self.cron, "job": self.job, "args": self.args,
                "timezone": self.timezone, "next_run": _next_after(self.cron, self.timezone,
                                                                   now or clock.now()).isoformat(),
                "catch_up": self.catch_up, "queue": self.queue, "priority": self.priority, "source": "settings",
                "last_enqueued": last.isoformat() if last else None, "error": error}


def declare(entries: Any, jobs: Mapping[str, type[BaseJob[Any]]]) -> tuple[Declared, ...]:
    """The `recurring` setting checked: a list of mappings with `job` (a job name or class) and
    `cron`, and optionally `key` (default: the job's name), `args`, `timezone`, `queue`,
    `priority`, `catch_up`. Keys must differ. The arguments of those whose job is in `jobs`
    already are checked now; the others' when they are resolved. Raises ConfigurationError."""
    if isinstance(entries, Mapping | str | bytes) or not isinstance(entries, Iterable):
        raise ConfigurationError(f"recurring must be a list of schedules such as {_EXAMPLE}, got {show(entries)}")
    out: dict[str, Declared] = {}
    for index, entry in enumerate(entries):
        declared = _declared(index, entry)
        if declared.key in out:
            raise ConfigurationError(f"recurring: two schedules have the key {declared.key!r}; each needs its own")
        out[declared.key] = declared
        if jobs.get(declared.job) is not None:
            try:
                declared.resolve(jobs)
            except (JobArgumentsError, ConfigurationError) as error:
                raise ConfigurationError(f"recurring: {error}") from None
    return tuple(out.values())


_EXAMPLE = "[{'key': 'nightly', 'job': 'cleanup', 'cron': '0 3 * * *'}]"


def _declared(index: int, entry: Any) -> Declared:
    if isinstance(entry, Declared):  # checked already (the settings of another queue)
        return entry
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"recurring[{index}] must be a mapping such as {_EXAMPLE[1:-1]}, got {show(entry)}")
    job = entry.get("job")
    if isinstance(job, type) and hasattr(job, "options"):  # a job class is named by its name
        job = job.options.name
    key = entry.get("key", job)
    who = f"recurring: schedule {key!r}" if isinstance(key, str) and key else f"recurring[{index}]"
    unknown = sorted(set(map(str, entry)) - set(_FIELDS))
    if unknown:
        raise ConfigurationError(f"{who}: unknown field(s) {unknown}; known: {', '.join(_FIELDS)}")
    if not isinstance(job, str) or not job.strip():
        raise ConfigurationError(f"{who}: job must be a job name such as 'cleanup', got {show(entry.get('job'))}")
    if not isinstance(key, str) or not key.strip():
        raise ConfigurationError(f"{who}: key must be a non-empty string, got {show(key)}")
    if "cron" not in entry:
        raise ConfigurationError(f"{who}: cron is missing (e.g. '0 3 * * *')")
    args = entry.get("args") or {}
    if not isinstance(args, Mapping):
        raise ConfigurationError(f"{who}: args must be a mapping of the job's arguments, got {show(args)}")
    queue, priority = entry.get("queue"), entry.get("priority")
    if queue is not None and (not isinstance(queue, str) or not queue.strip()):
        raise ConfigurationError(f"{who}: queue must be a non-empty string (or None), got {show(queue)}")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ConfigurationError(f"{who}: priority must be a whole number (or None), got {show(priority)}")
    timezone, catch_up = entry.get("timezone", "UTC"), entry.get("catch_up", "none")
    _check(who, entry["cron"], timezone, catch_up)
    return Declared(key=key, job=job, cron=entry["cron"], args=dict(args), timezone=timezone, queue=queue,
                    priority=priority, catch_up=catch_up)


def effective(declared: Iterable[Declared], jobs: Mapping[str, type[BaseJob[Any]]]
              ) -> tuple[list[Recurring], dict[str, tuple[Declared, str]]]:
    """The schedules a queue keeps: those registered in code, with those its settings declare
    replacing any of the same key; and, by key, the declared ones that do not resolve, with why."""
    found = dict(schedules)
    problems: dict[str, tuple[Declared, str]] = {}
    for entry in declared:
        try:
            found[entry.key] = entry.resolve(jobs)
        except (UnknownJobError, JobArgumentsError, ConfigurationError) as error:
            found.pop(entry.key, None)
            problems[entry.key] = (entry, str(error))
    return list(found.values()), problems


def describe_all(declared: Iterable[Declared], jobs: Mapping[str, type[BaseJob[Any]]],
                 last_jobs: Callable[[list[str]], Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Every schedule a queue keeps, by key, each as `describe` has it, with the last slot
    enqueued (`last_jobs`: the store's `last_stamped_jobs`) and that slot's job id and status."""
    found, problems = effective(declared, jobs)
    keys = [s.key for s in found] + list(problems)
    stored = last_jobs([f"{KEY_PREFIX}{key}:" for key in keys])
    out = []
    for key in keys:
        job = stored.get(f"{KEY_PREFIX}{key}:")
        last = slot_of(key, job.unique_key or "") if job is not None else None
        entry, error = problems.get(key, (None, None))
        summary = entry.describe(now, last, error) if entry is not None else \
            next(s for s in found if s.key == key).describe(now, last)
        summary["last_job_id"] = job.id if job is not None else None
        summary["last_status"] = job.status if job is not None else None
        out.append(summary)
    return sorted(out, key=lambda d: d["key"])


def slot_of(key: str, unique_key: str) -> datetime | None:
    """The slot a schedule's unique key names (`cron:<key>:<time>`), or None."""
    prefix = f"{KEY_PREFIX}{key}:"
    if not unique_key.startswith(prefix):
        return None
    try:
        return clock.as_utc(datetime.fromisoformat(unique_key[len(prefix):]))
    except ValueError:
        return None
