"""Running the enqueued jobs, and moving through time under freezegun to run scheduled ones:
`perform_enqueued_jobs()` and its async twin `aperform_enqueued_jobs()`.

    with freeze_time("2026-01-01 09:00"):
        Reminder.perform_in(3600, user_id=1)
        perform_enqueued_jobs(until=datetime(2026, 1, 1, 11, 0))
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .. import clock
from .capture import _captures, _current_queue, enqueued_jobs

if TYPE_CHECKING:
    from ..queue import JobQueue


def _move_clock(to: datetime) -> None:
    """Move freezegun's frozen clock to `to`; a clear error when time is not frozen."""
    try:
        from freezegun.api import freeze_factories
    except ImportError:  # pragma: no cover - freezegun is a test dependency
        freeze_factories = []
    if not freeze_factories:
        raise RuntimeError(
            "perform_enqueued_jobs(until=...) moves time forward, which needs a frozen clock: "
            "call it inside freezegun's freeze_time(...) (or leave `until` out to run only what is due now)")
    freeze_factories[-1].move_to(to)


def _next_run_at(queue: JobQueue | None, limit: datetime) -> datetime | None:
    """The earliest `run_at` of a pending job that is still to come, up to `limit`."""
    now = clock.now()
    pending = _captures[-1].pending if queue is None and _captures else enqueued_jobs(job_queue=_current_queue(queue))
    upcoming = [clock.as_utc(j.run_at) for j in pending if now < clock.as_utc(j.run_at) <= limit]
    return min(upcoming, default=None)


def perform_enqueued_jobs(queue: JobQueue | None = None, *, until: datetime | None = None) -> None:
    """Run every due job, then return: `queue.run_until_idle()` on the process-wide queue.

    Inside `capture_enqueued()` or `inline()` (and with no `queue` given) it runs the
    captured jobs instead: all the pending ones, scheduled ones included.

    With `until=` (a datetime; naive is UTC) it moves through time under freezegun: it runs
    what is due, moves the frozen clock to the next job's `run_at` (a scheduled job, a
    retry's backoff), runs again, and so on up to `until`, where it leaves the clock.
    Jobs due after `until` stay pending. It needs `freeze_time(...)` around it.
    """
    if until is None:
        if queue is None and _captures:
            _captures[-1].perform_all()
            return
        _current_queue(queue).run_until_idle()
        return
    limit = clock.as_utc(until)
    while True:
        if queue is None and _captures:
            _captures[-1].perform_due()
        else:
            _current_queue(queue).run_until_idle()
        upcoming = _next_run_at(queue, limit)
        if upcoming is None:
            break
        _move_clock(upcoming)
    if clock.now() < limit:
        _move_clock(limit)


async def aperform_enqueued_jobs(queue: JobQueue | None = None, *, until: datetime | None = None) -> None:
    """The async twin of `perform_enqueued_jobs` (with `until=`, freeze time with
    `freeze_time(..., real_asyncio=True)` so the event loop's own clock keeps going)."""
    import anyio

    if until is None:
        if queue is None and _captures:
            await anyio.to_thread.run_sync(_captures[-1].perform_all)
            return
        await _current_queue(queue).arun_until_idle()
        return
    limit = clock.as_utc(until)
    while True:
        if queue is None and _captures:
            await anyio.to_thread.run_sync(_captures[-1].perform_due)
        else:
            await _current_queue(queue).arun_until_idle()
        upcoming = await anyio.to_thread.run_sync(_next_run_at, queue, limit)
        if upcoming is None:
            break
        _move_clock(upcoming)
    if clock.now() < limit:
        _move_clock(limit)
