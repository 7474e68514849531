"""Rate limits as one claim keeps them: the starts inside each limit's sliding window.

Every start of a rate-limited job is one row of `activejob_rate_starts` under each key its
limits count it by (`type:<name>`, `type:<name>:<rate_key>`, `queue:<queue>`). A claim,
which takes turns with every other claim of limited jobs, counts the rows of the last window
per key, takes no more than the room, and writes a row per job it starts and key, all in its
transaction: so no window of that length ever holds more starts than the limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, insert, or_, select
from sqlalchemy.engine import Connection

from ..models import RateStart
from ..rate_limits import queue_key, type_key

rate_starts: Table = RateStart.__table__  # type: ignore[attr-defined]

Limit = tuple[int, timedelta]


@dataclass(frozen=True)
class RateLimits:
    """The rate limits a worker keeps: per job type (for the types in `per_key`, per rate key
    of the type) and per queue, each as (starts, window).

        RateLimits(types={"send_email": (10, timedelta(seconds=1))}, queues={"mail": (100, timedelta(minutes=1))})
    """

    types: Mapping[str, Limit] = field(default_factory=dict)
    per_key: frozenset[str] = frozenset()
    queues: Mapping[str, Limit] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.types or self.queues)

    def key_limits(self, name: str, rate_key: str | None, queue: str) -> list[tuple[str, Limit]]:
        """The keys one job's start counts under, with their limits."""
        out = []
        if name in self.types:
            out.append((type_key(name, rate_key if name in self.per_key else None), self.types[name]))
        if queue in self.queues:
            out.append((queue_key(queue), self.queues[queue]))
        return out


class RateBook:
    """What one claim sees of the rate limits: the room left under each key, and what it took."""

    def __init__(self, limits: RateLimits, names: Sequence[str], queues: Sequence[str] | None,
                 now: datetime) -> None:
        self.limits = limits
        self.now = now
        self.types = {n: limits.types[n] for n in names if n in limits.types}
        self.queues = {q: lim for q, lim in limits.queues.items() if queues is None or q in queues}
        self.used: dict[str, int] = {}  # starts inside the window, by key (keys not seen: none)
        self.oldest: dict[str, datetime] = {}
        self.taken: list[tuple[str, Limit]] = []

    def count(self, c: Connection) -> None:
        """Read the starts inside each window: one query per limit."""
        for name, (_count, window) in self.types.items():
            if name in self.limits.per_key:
                where = rate_starts.c.key.startswith(type_key(name, ""), autoescape=True)
            else:
                where = rate_starts.c.key == type_key(name)
            self._read(c, where, window)
        for queue, (_count, window) in self.queues.items():
            self._read(c, rate_starts.c.key == queue_key(queue), window)

    def _read(self, c: Connection, where: Any, window: timedelta) -> None:
        # No upper bound: a start another worker stamped later than our `now` (clocks differ
        # a little) still counts against us.
        for key, n, oldest in c.execute(
                select(rate_starts.c.key, func.count(), func.min(rate_starts.c.started_at))
                .where(where, rate_starts.c.started_at > self.now - window).group_by(rate_starts.c.key)):
            self.used[key] = n
            self.oldest[key] = oldest

    def room(self, key: str, limit: Limit) -> int:
        return limit[0] - self.used.get(key, 0)

    def type_room(self, name: str) -> int | None:
        """Room of a type limited as a whole (None: not so limited)."""
        if name not in self.types or name in self.limits.per_key:
            return None
        return self.room(type_key(name), self.types[name])

    def full_rate_keys(self, name: str) -> list[str]:
        """The rate keys of a per-key type that have no room (digested keys are left to `take`)."""
        if name not in self.types or name not in self.limits.per_key:
            return []
        prefix = type_key(name, "")
        return [key[len(prefix):] for key in self.used
                if key.startswith(prefix) and self.room(key, self.types[name]) <= 0
                and not key[len(prefix):].startswith("#")]

    def queue_rooms(self) -> dict[str, int]:
        return {q: self.room(queue_key(q), lim) for q, lim in self.queues.items()}

    def take(self, name: str, rate_key: str | None, queue: str) -> bool:
        """Count one more start of this job if every key it counts under has room."""
        keyed = self.limits.key_limits(name, rate_key, queue)
        if any(self.room(key, limit) <= 0 for key, limit in keyed):
            return False
        for key, limit in keyed:
            self.used[key] = self.used.get(key, 0) + 1
            self.oldest.setdefault(key, self.now)
            self.taken.append((key, limit))
        return True

    def record(self, c: Connection, started: Iterable[tuple[str, str | None, str]]) -> None:
        """Write a start row per job started and key; drop the touched keys' rows that left their window."""
        rows = [{"key": key, "started_at": self.now} for name, rate_key, queue in started
                for key, _limit in self.limits.key_limits(name, rate_key, queue)]
        if not rows:
            return
        c.execute(insert(rate_starts), rows)
        windows: dict[timedelta, set[str]] = {}
        for key, (_count, window) in self.taken:
            windows.setdefault(window, set()).add(key)
        for window, keys in windows.items():
            c.execute(delete(rate_starts).where(rate_starts.c.key.in_(sorted(keys)),
                                                rate_starts.c.started_at <= self.now - window))

    def frees_at(self) -> datetime | None:
        """When the first full key gets room again: its oldest start leaves the window."""
        limits = {type_key(n): lim for n, lim in self.types.items() if n not in self.limits.per_key}
        limits |= {queue_key(q): lim for q, lim in self.queues.items()}
        prefixes = [(type_key(n, ""), lim) for n, lim in self.types.items() if n in self.limits.per_key]
        times = []
        for key, used in self.used.items():
            limit = limits.get(key) or next((lim for p, lim in prefixes if key.startswith(p)), None)
            if limit is not None and used >= limit[0]:
                times.append(self.oldest[key] + limit[1])
        return min(times, default=None)


def prune_rate_starts(c: Connection, limits: RateLimits, now: datetime) -> int:
    """Delete the starts that left the window of the limit they count for (keys no claim
    touches any more, such as a per-key type's old keys). Keys of limits not given stay."""
    conditions = []
    for name, (_count, window) in limits.types.items():
        where = (rate_starts.c.key.startswith(type_key(name, ""), autoescape=True) if name in limits.per_key
                 else rate_starts.c.key == type_key(name))
        conditions.append(where & (rate_starts.c.started_at <= now - window))
    for queue, (_count, window) in limits.queues.items():
        conditions.append((rate_starts.c.key == queue_key(queue)) & (rate_starts.c.started_at <= now - window))
    if not conditions:
        return 0
    return int(c.execute(delete(rate_starts).where(or_(*conditions))).rowcount or 0)
