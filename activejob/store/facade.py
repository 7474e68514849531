"""The store as a worker's event loop speaks to it: awaitable job verbs, each run the
cheapest way its database allows, so the worker only says what it wants.

- PostgreSQL: the claim and finish-and-claim statements are awaited on the worker's own
  connection on its loop (`LoopConnection`); everything else goes through the pool, in a
  thread.
- SQLite: those two statements run right on the loop when nobody holds the write lock
  (about 100 µs of C, less than a hop to a thread and back), else in a thread.
- Job types with a concurrency limit, and rate-limited types and queues, are claimed by the
  general path, in a thread (`claim_general`); it says when a rate limit that holds back due
  jobs next has room (`frees_at`), for the dispatcher to look again then. While the last
  general claim left no due job of a limited type, the other types are claimed by the fast
  paths above (see `recheck_limits`): one limited type no longer makes a worker claim every
  job the slow way.
- PostgreSQL, behind a big due backlog of types a worker does not run: its fast claims read
  each of their types from the type's own index (`note_due`, from the worker's count of due jobs
  by type once a minute) instead of walking the due index past the backlog.

Each verb makes one attempt and raises what the database said: what to do about a
failure (try again, write apart, give up) is the caller's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ..records import Claimed, EventRecord, WorkerInfo
from .aio import LoopConnection
from .dbapi import WouldBlock
from .limits import GeneralClaim
from .rates import RateLimits
from .reads import unknown_to
from .values import Heartbeat, NewJob, Outcome, ProgressUpdate

if TYPE_CHECKING:
    from . import Store

T = TypeVar("T")

log = logging.getLogger("activejob.worker")

PER_TYPE_AFTER = 100
"""Due jobs of other types, per type of a worker's, past which its fast claims on PostgreSQL
read each of their types' own index (a branch each, ~30 us) rather than walk the due index past
them (~0.4 us a job walked; 86 ms behind 200,000, against 1.7 ms by type, measured)."""

Claim = tuple[list[Claimed], list[EventRecord]]
"""Jobs claimed, and their `started` events."""

Written = tuple[set[int], list[EventRecord], list[Claimed], list[EventRecord]]
"""Outcomes written: their ids and events (progress events first), then the jobs claimed
for the slots they freed, and those jobs' `started` events."""


class WorkerStore:
    """One worker's view of the store: who it is, which job types and queues it takes."""

    def __init__(self, store: Store, *, worker_id: str, names: Sequence[str], queues: Sequence[str] | None,
                 lease: float, limits: Mapping[str, int] | None = None, per_key: Collection[str] = (),
                 rates: RateLimits | None = None, recheck_after: float = 1.0) -> None:
        self.store = store
        self.worker_id = worker_id
        self.names = list(names)
        self.queues = queues
        self.lease = lease
        self.limits = dict(limits or {})
        self.per_key = set(per_key)
        self.rates = rates or RateLimits()
        # Only the general claim counts what runs and starts everywhere.
        self.general = bool(self.limits) or bool(self.rates)
        self.frees_at: datetime | None = None  # what the last claim said (claim_general)
        # The types no limit concerns, claimed the fast way until `_fast_until` when the last
        # general claim left no due job of a limited type. A queue rate limit holds back every
        # type, so with one there is no such time. `_looks` counts `recheck_limits` calls: a
        # general claim that began before one says nothing of what came after.
        self.free_names = [n for n in self.names if n not in self.limits and n not in self.rates.types]
        # What a fast claim takes: every type, or, beside limits, the free ones.
        self.fast_names = self.free_names if self.general else self.names
        self.recheck_after = recheck_after
        # On PostgreSQL, whether the fast claims read each type's own index (note_due).
        self.per_type = False
        self._fast_until: datetime | None = None
        self._looks = 0
        self._aio = LoopConnection(store) if store.dialect == "postgresql" else None

    async def aclose(self) -> None:
        if self._aio is not None:
            await self._aio.aclose()
            self._aio = None

    # -- the hot verbs ------------------------------------------------------------------

    def recheck_limits(self) -> None:
        """Have the next claim look at the limited types again: a wake or a poll (a limited
        job may have been enqueued, or become due), or a limited job's end (its slot is free).
        Without one, they are looked at again `recheck_after` seconds after the last look
        found none, as a poll would."""
        self._looks += 1
        self._fast_until = None

    def _general_now(self, now: datetime) -> bool:
        """Whether a claim now must be the general one."""
        return self.general and (self._fast_until is None or now >= self._fast_until)

    async def claim(self, limit: int, queues: Sequence[str] | None, now: datetime) -> Claim:
        """Take up to `limit` due jobs of `queues` (None: the worker's)."""
        if limit <= 0 or not self.names:
            return [], []
        if self._general_now(now):
            got = await self._thread(self._claim_general, limit, queues, now)
            return got.claimed, got.started
        if not self.fast_names:
            return [], []
        if self._aio is not None:
            return await self._aio.claim(worker_id=self.worker_id, names=self.fast_names, queues=queues,
                                         limit=limit, now=now, lease=self.lease, per_type=self.per_type)
        if self.store.dialect == "sqlite":
            with contextlib.suppress(WouldBlock):
                return self._claim(limit, queues, now, nowait=True)
        return await self._thread(self._claim, limit, queues, now)

    def _claim_general(self, limit: int, queues: Sequence[str] | None, now: datetime) -> GeneralClaim:
        looks = self._looks
        got = self.store.claim_general(worker_id=self.worker_id, names=self.names, queues=queues, limit=limit,
                                       now=now, lease=self.lease, limits=self.limits, per_key=self.per_key,
                                       rates=self.rates)
        self.frees_at = got.frees_at
        # A look at some queues only (a worker's per-queue caps) says nothing of the others.
        if (got.limited_left or self.rates.queues or not self.free_names or looks != self._looks
                or queues != self.queues):
            self._fast_until = None
        else:
            until = now + timedelta(seconds=self.recheck_after)
            self._fast_until = until if got.frees_at is None else min(until, got.frees_at)
        return got

    def _claim(self, limit: int, queues: Sequence[str] | None, now: datetime, nowait: bool = False) -> Claim:
        if self._general_now(now):
            got = self._claim_general(limit, queues, now)
            return got.claimed, got.started
        if not self.fast_names:
            return [], []
        return self.store.claim(worker_id=self.worker_id, names=self.fast_names, queues=queues, limit=limit,
                                now=now, lease=self.lease, nowait=nowait, per_type=self.per_type)

    async def finish(self, updates: Sequence[ProgressUpdate], outcomes: Sequence[Outcome], now: datetime,
                     *, refill: int = 0) -> Written:
        """Write progress (first) and outcomes, and claim up to `refill` jobs for the
        slots they free, in as few round trips as the case allows (one, usually)."""
        if any(o.frees_limited_slot for o in outcomes):
            self.recheck_limits()
        # Only the claim that counts what runs everywhere may take limited types: while it
        # must, the slots are refilled by it, in the thread that writes the outcomes.
        inline = not updates and not (refill and self._general_now(now))
        written: set[int] = set()
        records: list[EventRecord] = []
        claimed: list[Claimed] = []
        started: list[EventRecord] = []
        rest = list(outcomes)
        if inline and rest:
            with contextlib.suppress(Exception):  # busy, or a case for the general path below
                written, records, claimed, started, rest = await self._finish_inline(rest, now, refill)
                refill = 0  # it claimed all there was
        if rest or updates:
            more = await self._thread(self._finish_general, list(updates), rest, now, refill)
            written |= more[0]
            records += more[1]
            claimed += more[2]
            started += more[3]
        return written, records, claimed, started

    async def _finish_inline(self, outcomes: list[Outcome], now: datetime, refill: int
                             ) -> tuple[set[int], list[EventRecord], list[Claimed], list[EventRecord], list[Outcome]]:
        names = self.fast_names if refill else []
        if self._aio is not None:
            return await self._aio.finish_and_claim(outcomes, now, worker_id=self.worker_id, names=names,
                                                    queues=self.queues, limit=refill, lease=self.lease,
                                                    per_type=self.per_type)
        if self.store.dialect != "sqlite":
            raise WouldBlock("no inline path")
        written, records, claimed, started = self.store.finish_and_claim(
            outcomes, now, worker_id=self.worker_id, names=names, queues=self.queues, limit=refill,
            lease=self.lease, nowait=True)
        return written, records, claimed, started, []

    def _finish_general(self, updates: list[ProgressUpdate], outcomes: list[Outcome], now: datetime,
                        refill: int) -> Written:
        records: list[EventRecord] = []
        if updates:
            records = self.store.save_progress(updates, now)[1]
        if refill > 0 and self.store.dialect == "postgresql" and not self._general_now(now):
            with contextlib.suppress(WouldBlock):  # one statement: outcomes written, slots refilled
                written, finished, claimed, started = self.store.finish_and_claim(
                    outcomes, now, worker_id=self.worker_id, names=self.fast_names, queues=self.queues,
                    limit=refill, lease=self.lease, per_type=self.per_type)
                return written, records + finished, claimed, started
        written, finished = self.store.finish(outcomes, now) if outcomes else (set(), [])
        taken: Claim = ([], [])
        if refill > 0:
            # The outcomes are written: a failed claim is not theirs to fail (the claim loop tries again).
            with contextlib.suppress(Exception):
                taken = self._claim(refill, self.queues, now)
        return written, records + finished, taken[0], taken[1]

    # -- the rest, through the pool in a thread -------------------------------------

    async def finish_each(self, outcomes: Sequence[Outcome], now: datetime) -> tuple[set[int], list[EventRecord]]:
        return await self._thread(self.store.finish, outcomes, now)

    async def save_progress(self, updates: Sequence[ProgressUpdate], now: datetime
                            ) -> tuple[set[int], list[EventRecord]]:
        return await self._thread(self.store.save_progress, updates, now)

    async def heartbeat(self, worker: WorkerInfo, running: dict[int, str], now: datetime) -> Heartbeat:
        return await self._thread(self.store.heartbeat, worker, running, now, self.lease)

    async def register(self, worker: WorkerInfo, now: datetime) -> None:
        await self._thread(self.store.register_worker, worker, now)

    async def unregister(self) -> None:
        await self._thread(self.store.unregister_worker, self.worker_id)

    async def recover_expired(self, now: datetime) -> list[EventRecord]:
        return await self._thread(self.store.recover_expired, now)

    async def wake_waiting(self, now: datetime) -> list[EventRecord]:
        """The safety net for waiting jobs and unsettled batches."""
        woken = await self._thread(self.store.wake_waiting, now)
        return woken + await self._thread(self.store.settle_open_batches, now)

    async def settle(self, batch_ids: set[int], ended: list[int], now: datetime) -> list[EventRecord]:
        """After outcomes that ended jobs are committed: the callbacks their batches are due,
        and the jobs waiting for those of `ended` (the ones others wait for)."""
        if not batch_ids and not ended:
            return []
        return await self._thread(self._settle, batch_ids, ended, now)

    def _settle(self, batch_ids: set[int], ended: list[int], now: datetime) -> list[EventRecord]:
        return self.store.release_dependents(ended, now) + self.store.settle_batches(batch_ids, now)

    async def enqueue(self, requests: Sequence[NewJob], now: datetime) -> tuple[list[int], list[EventRecord]]:
        return await self._thread(self.store.enqueue, requests, now)

    async def refresh_planner_stats(self) -> bool:
        return await self._thread(self.store.refresh_planner_stats)

    async def remove_dead_workers(self, cutoff: datetime) -> int:
        return await self._thread(self.store.remove_dead_workers, cutoff)

    async def prune(self, cutoffs: dict[str, datetime], event_cutoff: datetime) -> int:
        pruned = await self._thread(self.store.prune, cutoffs)
        await self._thread(self.store.prune_events, event_cutoff)
        return pruned

    async def prune_rate_starts(self, now: datetime) -> int:
        return await self._thread(self.store.prune_rate_starts, self.rates, now) if self.rates else 0

    async def survey(self, now: datetime, live_since: datetime) -> dict[str, int]:
        """Count the due jobs by type (one read); note them for the claims (`note_due`) and
        return those of types no live worker knows."""
        def read() -> tuple[dict[str, int], list[WorkerInfo]]:
            return self.store.due_by_name(now), self.store.workers(since=live_since)

        due, live = await self._thread(read)
        self.note_due(due)  # on the loop, which the claims read `per_type` on
        return unknown_to(live, due)

    def note_due(self, due: Mapping[str, int]) -> None:
        """Given the due jobs by type, have this worker's fast claims on PostgreSQL read
        each of their types from the type's own index while the due jobs of all other types
        (its limited ones too: the fast claims walk past those as well) outnumber
        PER_TYPE_AFTER per such type; else walk the due index once, as usual. (The general
        claim, while a limited job may be due, asks with a statement per pick: one per type
        would cost a round trip each, so it keeps its one walk for the types without a limit.)"""
        ours = set(self.fast_names)
        others = sum(n for name, n in due.items() if name not in ours)
        per_type = (self.store.dialect == "postgresql" and not self.queues and bool(ours)
                    and others > PER_TYPE_AFTER * len(ours))
        if per_type != self.per_type:
            log.info("%s: %s (%d due jobs of other types)", self.worker_id,
                     "claims read each job type's own index" if per_type else "claims walk the due jobs again",
                     others)
        self.per_type = per_type

    @staticmethod
    async def _thread(fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args)
