"""What the general claim asks for and keeps: for each limited type with room its first due
jobs, and of all it found the best that fit the concurrency limits (per type, or per key)
and the rate limits (`rates.py`). The claim itself, one transaction, is `Claiming.claim_general`."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ..models import DEFAULT_QUEUE
from ..records import Claimed, EventRecord
from .base import PENDING, RUNNING, jobs, paused
from .rates import RateBook, RateLimits

LIMITS_LOCK = 0x61636A6C
"""The PostgreSQL advisory lock that claims of job types with a concurrency limit take turns on."""


class GeneralClaim(NamedTuple):
    """Jobs claimed, their `started` events, when a rate limit holding back due jobs next has
    room (None: none does), and whether a due job of a limited type may be left that a
    claim could take now (False: every limited type's look came back short, and all it
    found was taken or held back by a limit)."""

    claimed: list[Claimed]
    started: list[EventRecord]
    frees_at: datetime | None
    limited_left: bool = True


class Look(NamedTuple):
    """What a general claim's look found, and the counts it went by."""

    candidates: list[Any]
    limited_left: bool
    running: dict[tuple[str, str | None], int]
    book: RateBook


def due_jobs(now: datetime, queues: Sequence[str] | None) -> Any:
    """Due pending jobs (of `queues`, if given) outside paused queues, with what the limits need."""
    due = (select(jobs.c.id, jobs.c.name, jobs.c.queue, jobs.c.concurrency_key, jobs.c.rate_key,
                  jobs.c.priority, jobs.c.run_at)
           .where(jobs.c.status == PENDING, jobs.c.run_at <= now,
                  func.coalesce(jobs.c.queue.not_in(select(paused.c.queue)), True)))  # see sql.py
    return due.where(jobs.c.queue.in_(list(queues))) if queues else due


def running_counts(c: Connection, limits: Mapping[str, int]) -> dict[tuple[str, str | None], int]:
    """Running jobs of the limited types, by type and concurrency key."""
    if not limits:
        return {}
    return {(name, key): n for name, key, n in c.execute(
        select(jobs.c.name, jobs.c.concurrency_key, func.count())
        .where(jobs.c.status == RUNNING, jobs.c.name.in_(list(limits)))
        .group_by(jobs.c.name, jobs.c.concurrency_key))}


def rate_book(c: Connection, rates: RateLimits | None, names: Sequence[str], queues: Sequence[str] | None,
          now: datetime) -> RateBook:
    book = RateBook(rates or RateLimits(), names, queues, now)
    book.count(c)
    return book



def limited_picks(names: Sequence[str], limit: int, limits: Mapping[str, int], per_key: Collection[str],
                   running: Mapping[tuple[str, str | None], int], book: RateBook) -> list[tuple[Any, int, bool]]:
    """What claim_general asks for: (which jobs, how many at most, whether for a limited
    type), one per limited type with room, and for all the other types one per
    rate-limited queue with room and one for the rest (each rate-limited queue asked for no
    more than its room)."""
    picks: list[tuple[Any, int, bool]] = []
    queue_rooms = {q: room for q, room in book.queue_rooms().items() if room > 0}
    for name in names:
        if name not in limits and name not in book.types:
            continue
        where = jobs.c.name == name
        most = limit
        if name in limits and name in per_key:
            full = {key for (n, key), count in running.items() if n == name and count >= limits[name]}
            named = [key for key in full if key is not None]
            if named:  # a job without a key is not in the list: coalesce keeps it
                where = where & func.coalesce(jobs.c.concurrency_key.not_in(named), True)
            if None in full:
                where = where & jobs.c.concurrency_key.is_not(None)
            # A few per free slot: several may share a key that has room for only one.
            most = limit * 4
        elif name in limits:
            room = limits[name] - sum(count for (n, _key), count in running.items() if n == name)
            if room <= 0:
                continue
            most = min(most, room)
        rate_room = book.type_room(name)
        if rate_room is not None:
            if rate_room <= 0:
                continue
            most = min(most, rate_room)
        full_keys = book.full_rate_keys(name)
        if full_keys:
            where = where & func.coalesce(jobs.c.rate_key.not_in(full_keys), True)
        if name in book.types and name in book.limits.per_key:
            most = max(most, limit * 4)
        if queue_rooms:
            most = max(most, limit * 4)  # a rate-limited queue may take fewer than asked for
        picks.append((where, most, True))
    free = [n for n in names if n not in limits and n not in book.types]
    if free:
        if queue_rooms:
            for queue, room in queue_rooms.items():
                picks.append((jobs.c.name.in_(free) & (jobs.c.queue == queue), min(limit, room), False))
            picks.append((jobs.c.name.in_(free) & jobs.c.queue.not_in(list(book.queues)), limit, False))
        else:
            picks.append((jobs.c.name.in_(free), limit, False))
    return picks


def one_queue(queue: str, dialect: str) -> Any:
    """The condition of a pick of one named queue's due jobs (see claim_general)."""
    if dialect == "sqlite" and queue != DEFAULT_QUEUE:
        return (jobs.c.queue == queue) & (jobs.c.queue != DEFAULT_QUEUE)
    return jobs.c.queue == queue


def within_limits(candidates: list[Any], limit: int, limits: Mapping[str, int], per_key: Collection[str],
                   running: Mapping[tuple[str, str | None], int], book: RateBook) -> tuple[list[Any], list[Any]]:
    """The best `limit` candidates by priority and age, each type, key and queue within its
    room; and the candidates not looked at, once `limit` were chosen."""
    chosen: list[Any] = []
    taken: dict[tuple[str, str | None], int] = {}
    ordered = sorted({r.id: r for r in candidates}.values(), key=lambda r: (-r.priority, r.run_at, r.id))
    for i, r in enumerate(ordered):
        if len(chosen) == limit:
            return chosen, ordered[i:]
        key: tuple[str, str | None] | None = None
        if r.name in limits:
            key = (r.name, r.concurrency_key if r.name in per_key else None)
            if r.name in per_key:
                used = running.get(key, 0) + taken.get(key, 0)
            else:
                used = sum(n for (name, _k), n in running.items() if name == r.name) + taken.get(key, 0)
            if used >= limits[r.name]:
                continue
        if not book.take(r.name, r.rate_key, r.queue):
            continue
        if key is not None:
            taken[key] = taken.get(key, 0) + 1
        chosen.append(r)
    return chosen, []
