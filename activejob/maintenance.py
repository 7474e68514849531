"""The chores every worker does besides running jobs, each on its own interval: putting
back the jobs of lost workers, keeping cron schedules enqueued, waking parents whose
children are done, forgetting dead workers, pruning, warning about jobs nobody can run.

Any worker may do any chore at any time: each is safe to run from many workers at once
(guarded updates, unique keys). `tick(now)` runs the chores that are due and says when
the next one is.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import anyio

from . import clock
from .definition import registry
from .emit import aemit
from .errors import ActiveJobError
from .liveness import live_since
from .recurring import CATCH_UP_LIMIT, Recurring, effective, slot_of

if TYPE_CHECKING:
    from .records import JobInfo
    from .runner import Runner

log = logging.getLogger("activejob.worker")


@dataclass(eq=False)
class Chore:
    name: str
    every: float  # seconds between runs
    run: Callable[[datetime], Awaitable[None]]
    due: float = field(default=float("-inf"))  # monotonic


class Maintenance:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        s = self.settings = runner.settings
        self._scheduled: dict[str, datetime] = {}  # by schedule key: the latest slot known enqueued
        for _entry, problem in effective(s.recurring, registry)[1].values():
            log.error("%s: this worker does not enqueue it", problem)
        self.chores = [
            Chore("recover", s.poll_interval, self.recover),
            Chore("recurring", s.poll_interval, self.schedule_recurring),
            Chore("planner statistics", s.poll_interval, self.refresh_planner_stats),
            Chore("wake parents", s.poll_interval, self.wake_waiting),
            Chore("dead workers", min(s.lease, 10.0), self.remove_dead_workers),
            Chore("prune", s.prune_interval, self.prune),
            Chore("due jobs by type", 60.0, self.survey_due),
        ]

    async def tick(self, now: datetime | None = None) -> float:
        """Run the chores that are due; return the seconds until the next one is. A chore
        that fails is logged and tried again at its next turn; the others go on."""
        for chore in self.chores:
            if clock.monotonic() < chore.due:
                continue
            chore.due = clock.monotonic() + chore.every
            try:
                await chore.run(now or clock.now())
            except Exception as error:
                self.runner.noted(error)
                log.warning("maintenance (%s) failed (%s)", chore.name, error)
        return max(0.0, min(c.due for c in self.chores) - clock.monotonic())

    async def run(self) -> None:
        while True:
            await anyio.sleep(await self.tick())

    # -- the chores -------------------------------------------------------------------

    async def recover(self, now: datetime) -> None:
        """Put back jobs whose worker stopped heartbeating (or fail them, attempts spent)."""
        runner = self.runner
        # Leases that expired while the database was away from us were likely away from
        # their workers too: give those a lease to write their held outcomes and heartbeats.
        if clock.monotonic() - runner.unreachable_at < self.settings.lease:
            return
        recovered = await runner.store.recover_expired(now)
        for record in recovered:
            log.warning("%s #%s recovered from a lost worker: %s", record.name, record.job_id, record.type)
        await aemit(recovered)
        if recovered:
            runner.wake()

    async def schedule_recurring(self, now: datetime) -> None:
        """Keep the next slot of every cron schedule enqueued (the unique key makes the
        workers that race to do it agree on one job), and settle the slots that passed while
        no worker ran, as each schedule's `catch_up` says."""
        found, _problems = effective(self.settings.recurring, registry)
        upcoming = {s.key: s.next_after(now) for s in found}
        due = [s for s in found if self._scheduled.get(s.key) != upcoming[s.key]]
        # Only a first look at a schedule, or a slot that came and went unseen by us (the
        # database, or this worker, was away), needs the database to say what was enqueued.
        unsure = [s for s in due if s.key not in self._scheduled
                  or s.next_after(self._scheduled[s.key]) < upcoming[s.key]]
        last = await anyio.to_thread.run_sync(self.runner.db.last_stamped_jobs, [s.key_prefix for s in unsure]) \
            if unsure else {}
        slots: list[tuple[Recurring, datetime]] = []
        skipped: list[tuple[Recurring, JobInfo]] = []
        for schedule in due:
            previous = last.get(schedule.key_prefix)
            at = slot_of(schedule.key, previous.unique_key or "") if previous is not None else None
            limit = CATCH_UP_LIMIT if schedule.catch_up == "all" else 1  # else only the latest counts
            missed, more = schedule.missed(at, now, limit) if at is not None else ([], False)
            if missed and previous is not None and schedule.catch_up != "all" and previous.status == "pending":
                skipped.append((schedule, previous))  # superseded by a newer slot that has come too
            if more and schedule.catch_up == "all":
                log.warning("schedule %r missed more than %d slots while no worker ran: enqueued the latest %d",
                            schedule.key, limit, limit)
            caught = {"none": [], "latest": missed[-1:], "all": missed}[schedule.catch_up]
            slots += [(schedule, slot) for slot in [*caught, upcoming[schedule.key]]]
        for schedule, job in skipped:
            await self._skip(schedule, job, now)
        requests = [s.request(slot, self.settings.max_args_bytes) for s, slot in slots]
        if requests:
            _ids, records = await self.runner.store.enqueue(requests, now)
            await aemit(records)
            if any(slot <= now for _, slot in slots):
                self.runner.wake()
        for schedule in due:
            self._scheduled[schedule.key] = upcoming[schedule.key]

    async def _skip(self, schedule: Recurring, job: JobInfo, now: datetime) -> None:
        """Cancel a missed slot's job that is still pending (catch_up "none" or "latest")."""
        try:
            _status, records = await anyio.to_thread.run_sync(
                lambda: self.runner.db.request_cancel(job.id, now, expect=("pending",)))
        except ActiveJobError:  # another worker took it, or skipped it, first
            return
        log.info("schedule %r: skipped the slot of job #%s, missed while no worker ran (catch_up=%r)",
                 schedule.key, job.id, schedule.catch_up)
        await aemit(records)

    async def refresh_planner_stats(self, _now: datetime) -> None:
        if await self.runner.store.refresh_planner_stats():
            log.info("the jobs table's dead rows or its growth outran its upkeep: vacuumed or analyzed it")

    async def wake_waiting(self, now: datetime) -> None:
        woken = await self.runner.store.wake_waiting(now)
        await aemit(woken)
        if woken:
            self.runner.wake()

    async def remove_dead_workers(self, now: datetime) -> None:
        # A worker no longer alive (liveness.live_since) is gone: killed, or its machine is.
        # (One that was only paused registers itself again at its next heartbeat.)
        await self.runner.store.remove_dead_workers(live_since(now, self.settings.lease))

    async def prune(self, now: datetime) -> None:
        s = self.settings
        pruned = await self.runner.store.prune({status: now - keep for status, keep in s.retention.items()},
                                               now - s.event_retention)
        if pruned:
            log.info("pruned %d finished job(s)", pruned)
        # Starts that left their rate limit's window (claims drop only the keys they touch).
        await self.runner.store.prune_rate_starts(now)

    async def survey_due(self, now: datetime) -> None:
        """Count the due jobs by type: the claims go by type behind a backlog of others
        (WorkerStore.note_due); warn of the types no live worker knows."""
        unknown = await self.runner.store.survey(now, live_since(now, self.settings.lease))
        if unknown:
            log.warning("pending jobs of types no live worker knows: %s",
                        ", ".join(f"{n} ({c})" for n, c in sorted(unknown.items())))
