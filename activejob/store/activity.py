"""The last hour of activity, read from the event log: jobs finished per minute by status,
and each queue's depth and oldest pending age, minute by minute (the dashboard's charts).

Nothing samples anything: every series is rebuilt from the durable log and the jobs table
on each read, so any dashboard process, started at any time, draws the same hour.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from ..models import JobStatus
from .base import PENDING, StoreBase, events, jobs

FINISHED_EVENTS = ("completed", "failed", "cancelled")

INTO_PENDING = {"enqueued": 1, "retrying": 1, "requeued": 1}
"""Events that put a job into pending (the event's own status says where it went: a job
enqueued to wait for others is not pending)."""

OUT_OF_PENDING = {"started": -1, "deleted": -1}
"""Events that take a pending job out of pending (`deleted` records the status the job was
deleted in, so only pending ones count). A `cancelled` job may have been pending, waiting
or running: its previous status event says which."""

STATUS_EVENTS = ("enqueued", "started", "retrying", "requeued", "waiting", "completed", "failed", "cancelled")

ID_SKEW = timedelta(minutes=5)
"""PostgreSQL hands out event ids at insert and transactions commit in any order, so ids
follow time only roughly: the search for the window's first id starts this much earlier."""


def minute_start(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def minute_key(at: datetime) -> str:
    """How the SQL below names a minute (UTC): '2030-01-01 12:05'."""
    return at.strftime("%Y-%m-%d %H:%M")


class Activity(StoreBase):
    """`activity`: the charts' series, rebuilt from the event log."""

    def activity(self, now: datetime, minutes: int = 60) -> dict[str, Any]:
        """Per-minute series over the last `minutes` minutes, the last one being the
        current (partial) minute:

            store.activity(now)["finished"]["failed"]        # [0, 2, 0, ..., 1]: one count a minute
            store.activity(now)["queues"]["mail"]["depth"]   # pending jobs at the end of each minute

        - `finished[status]`: `completed` / `failed` / `cancelled` events in each minute.
        - `queues[q]["depth"]`: jobs pending in q (due or scheduled for later) at the end of
          each minute (for the last one: now). Rebuilt backwards from today's count: the
          events after a minute moved jobs into pending (`enqueued` as pending, `retrying`,
          `requeued`) or out of it (`started`, `deleted` while pending, `cancelled` when the
          job's previous status event left it pending), so the count then is the count now
          minus what those events added since.
        - `queues[q]["oldest_age"]`: seconds the longest-waiting due pending job of q had
          waited (since its `run_at`) at the end of each minute, 0 when none waited. The
          candidates at a moment are the jobs pending now, and the jobs that left pending
          later (by a `started` or `cancelled` event), each measured from its stored
          `run_at`. A job retried since it left has a newer `run_at`, and its earlier wait
          is not counted; a deleted job is no longer there to measure.

        Counting stops where the log does: events pruned (`event_retention` under the
        window) or deleted with their job are not seen. The window's first event id is
        found by a binary search on the primary key (ids grow with time), so a read costs
        what the window holds, not what the whole log holds.
        """
        if minutes < 1:
            raise ValueError("minutes must be at least 1")
        first_minute = minute_start(now) - timedelta(minutes=minutes - 1)
        keys = [minute_key(first_minute + timedelta(minutes=i)) for i in range(minutes)]
        index = {k: i for i, k in enumerate(keys)}
        with self.read() as c:
            if self.dialect == "postgresql":  # one snapshot for every statement below
                c.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            first_id = self._first_event_id(c, first_minute - ID_SKEW)
            window = and_(events.c.id >= first_id, events.c.created_at >= first_minute,
                          events.c.created_at <= now)
            finished = self._finished(c, window, index, minutes)
            depth_now, deltas, left = self._pending_flow(c, window, index, minutes)
            before, waiting_since = self._pending_now(c, first_minute, now, index, minutes)
        queues = sorted(set(depth_now) | set(deltas) | set(left) | set(waiting_since) | set(before))
        starts = [first_minute + timedelta(minutes=i) for i in range(minutes)]
        ends = [s + timedelta(minutes=1) for s in starts[:-1]] + [now]
        return {
            "now": now.isoformat(),
            "minutes": [s.isoformat() for s in starts],
            "finished": finished,
            "queues": {q: {"depth": _depth(depth_now.get(q, 0), deltas.get(q, [0] * minutes)),
                           "oldest_age": _oldest_age(ends, left.get(q, [None] * minutes),
                                                     before.get(q), waiting_since.get(q, [None] * minutes))}
                       for q in queues},
        }

    def _first_event_id(self, c: Connection, since: datetime) -> int:
        """The smallest id whose event is at or after `since`, if ids followed time exactly:
        a binary search on the primary key, a few dozen index lookups at most."""
        lo, hi = c.execute(select(func.min(events.c.id), func.max(events.c.id))).one()
        if lo is None:
            return 0
        hi += 1  # invariant: the first event with id >= hi is at or after `since` (or there is none)
        while lo < hi:
            mid = (lo + hi) // 2
            row = c.execute(select(events.c.id, events.c.created_at).where(events.c.id >= mid)
                            .order_by(events.c.id).limit(1)).one()
            if row.created_at >= since:
                hi = mid
            else:
                lo = row.id + 1
        return int(lo)

    def _minute(self, column: Any) -> Any:
        """The minute a timestamp falls in, as `minute_key` writes it."""
        if self.dialect == "postgresql":
            return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:MI")
        return func.substr(column, 1, 16)  # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)

    def _finished(self, c: Connection, window: Any, index: dict[str, int], minutes: int) -> dict[str, list[int]]:
        minute = self._minute(events.c.created_at)
        out = {status: [0] * minutes for status in FINISHED_EVENTS}
        rows = c.execute(select(minute, events.c.type, func.count())
                         .where(window, events.c.type.in_(FINISHED_EVENTS)).group_by(minute, events.c.type))
        for key, kind, n in rows:
            if key in index:
                out[kind][index[key]] += int(n)
        return out

    def _pending_flow(self, c: Connection, window: Any, index: dict[str, int], minutes: int
                      ) -> tuple[dict[str, int], dict[str, list[int]], dict[str, list[datetime | None]]]:
        """Pending jobs per queue now; per queue and minute, the net change of pending jobs
        the events of that minute made; and the earliest `run_at` among the jobs that left
        pending in that minute (still stored, with a `run_at` no later than the leaving)."""
        depth_now = {str(q): int(n) for q, n in c.execute(
            select(jobs.c.queue, func.count()).where(jobs.c.status == PENDING).group_by(jobs.c.queue))}
        deltas: dict[str, list[int]] = defaultdict(lambda: [0] * minutes)
        left: dict[str, list[datetime | None]] = defaultdict(lambda: [None] * minutes)
        minute = self._minute(events.c.created_at)
        moves = {**INTO_PENDING, **OUT_OF_PENDING}
        rows = c.execute(select(events.c.queue, minute, events.c.type, events.c.status, func.count())
                         .where(window, events.c.type.in_(list(moves)))
                         .group_by(events.c.queue, minute, events.c.type, events.c.status))
        for queue, key, kind, status, n in rows:
            counts = (kind == "started" or status == PENDING) and key in index
            if counts:
                deltas[queue][index[key]] += moves[kind] * int(n)
        previous = events.alias("previous")
        was = (select(previous.c.status)
               .where(previous.c.job_id == events.c.job_id, previous.c.id < events.c.id,
                      previous.c.type.in_(STATUS_EVENTS))
               .order_by(previous.c.id.desc()).limit(1).scalar_subquery())
        cancelled = (select(events.c.queue, minute, func.count(), func.min(jobs.c.run_at))
                     .select_from(events.outerjoin(jobs, and_(jobs.c.id == events.c.job_id,
                                                              jobs.c.run_at <= events.c.created_at)))
                     .where(window, events.c.type == JobStatus.CANCELLED.value,
                            func.coalesce(was, PENDING) == PENDING)
                     .group_by(events.c.queue, minute))
        for queue, key, n, run_at in c.execute(cancelled):
            if key in index:
                deltas[queue][index[key]] -= int(n)
                _keep_min(left[queue], index[key], run_at)
        started = (select(events.c.queue, minute, func.min(jobs.c.run_at))
                   .select_from(events.join(jobs, jobs.c.id == events.c.job_id))
                   .where(window, events.c.type == "started", jobs.c.run_at <= events.c.created_at)
                   .group_by(events.c.queue, minute))
        for queue, key, run_at in c.execute(started):
            if key in index:
                _keep_min(left[queue], index[key], run_at)
        return depth_now, dict(deltas), dict(left)

    def _pending_now(self, c: Connection, first_minute: datetime, now: datetime, index: dict[str, int],
                     minutes: int) -> tuple[dict[str, datetime], dict[str, list[datetime | None]]]:
        """The jobs pending now, as candidates for the oldest: per queue, the earliest
        `run_at` before the window, and the earliest `run_at` in each minute of it."""
        due = and_(jobs.c.status == PENDING, jobs.c.run_at <= now)
        before = {str(q): at for q, at in c.execute(
            select(jobs.c.queue, func.min(jobs.c.run_at)).where(due, jobs.c.run_at < first_minute)
            .group_by(jobs.c.queue))}
        since: dict[str, list[datetime | None]] = defaultdict(lambda: [None] * minutes)
        minute = self._minute(jobs.c.run_at)
        for queue, key, at in c.execute(select(jobs.c.queue, minute, func.min(jobs.c.run_at))
                                        .where(due, jobs.c.run_at >= first_minute)
                                        .group_by(jobs.c.queue, minute)):
            if key in index:
                _keep_min(since[queue], index[key], at)
        return before, dict(since)


def _keep_min(row: list[datetime | None], i: int, at: datetime | None) -> None:
    if at is not None and (row[i] is None or at < row[i]):  # type: ignore[operator]
        row[i] = at


def _depth(now_count: int, deltas: list[int]) -> list[int]:
    """Pending jobs at the end of each minute: the count now, minus what the events of the
    later minutes added."""
    out = [0] * len(deltas)
    count = now_count
    for i in range(len(deltas) - 1, -1, -1):
        out[i] = max(count, 0)  # a job whose history was pruned could make it dip below 0
        count -= deltas[i]
    return out


def _oldest_age(ends: list[datetime], left: list[datetime | None], before: datetime | None,
                waiting_since: list[datetime | None]) -> list[float]:
    """Seconds the longest-waiting due job had waited at each minute's end.

    At the end of minute m, a job that left pending in a later minute and was due by then
    was waiting; so was a job pending now that was due by then. The earliest `run_at` of
    each minute's leavers (and of each minute's arrivals among today's pending jobs) is all
    it takes: the earliest that covers the moment is the oldest."""
    n = len(ends)
    out = [0.0] * n
    earliest_now = before  # today's pending jobs due by the end of minute m (a running minimum)
    for m in range(n):
        earliest_now = _min(earliest_now, waiting_since[m])
        oldest = earliest_now
        for later in left[m + 1:]:
            if later is not None and later <= ends[m]:
                oldest = _min(oldest, later)
        if oldest is not None:
            out[m] = max((ends[m] - oldest).total_seconds(), 0.0)
    return out


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
