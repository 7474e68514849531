"""When a worker counts as alive: one rule for every question that depends on it."""

from __future__ import annotations

from datetime import datetime, timedelta

LIVE_LEASES = 2
"""A worker is alive while its last heartbeat is at most this many leases old."""


def live_since(now: datetime, lease: float) -> datetime:
    """The oldest last heartbeat (`activejob_workers.heartbeat_at`) of a worker still alive.

    A worker heartbeats several times per lease, and stops its jobs by itself once its
    heartbeats have failed for a lease: one lease of silence already means it holds nothing.
    The second lease is slack for a heartbeat write that waited on a busy database, and for
    machines whose clocks differ a little (a heartbeat is stamped by the worker's clock and
    judged by the reader's). The same rule answers which workers are listed (`queue.workers()`),
    which job types some live worker can run (`stats()["unknown_job_types"]`), and which
    workers' rows maintenance removes: so a worker is never listed as alive once its row
    may be removed, nor removed while listed.

    The store takes the result as is: `workers(since=...)` keeps heartbeats at or after it,
    `remove_dead_workers(...)` removes those before it.

    >>> from datetime import UTC
    >>> now = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
    >>> live_since(now, lease=30.0).isoformat()
    '2027-01-01T11:59:00+00:00'
    >>> now - timedelta(seconds=59) >= live_since(now, lease=30.0)   # heard from 59 s ago: alive
    True
    """
    return now - timedelta(seconds=LIVE_LEASES * lease)
