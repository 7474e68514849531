"""The one place that reads the clock.

Everything that needs "now" asks here, so freezegun (or a test that passes `now=`)
moves time for the whole framework at once. All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

# freezegun replaces every module-level reference to time.monotonic it can find; one
# kept in a dict survives, so our own loops keep sleeping in real time under freeze_time.
_REAL = {"monotonic": time.monotonic}


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def monotonic() -> float:
    """Real seconds on a clock that never goes backwards (throttles, intervals, timeouts).

    Not frozen by freezegun: a frozen wall clock must not stop heartbeats or timeouts.
    """
    return _REAL["monotonic"]()


class RealTimeLoop(asyncio.SelectorEventLoop):
    """The asyncio loop activejob runs its own workers on: sleeps and timeouts use real
    time even while a test has frozen the wall clock."""

    def time(self) -> float:
        return _REAL["monotonic"]()


def backend_options() -> dict[str, object]:
    """Options for `anyio.run` so the loop it creates is a RealTimeLoop."""
    return {"loop_factory": RealTimeLoop}


def as_utc(value: datetime) -> datetime:
    """Take `value` as UTC: aware datetimes are converted, naive ones are read as UTC.

    The rule is the same everywhere a datetime enters the framework (`perform_at`,
    `wait_until`, filters): a naive datetime means UTC, never the machine's local zone.

    >>> as_utc(datetime(2030, 1, 1, 12)).isoformat()
    '2030-01-01T12:00:00+00:00'
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
