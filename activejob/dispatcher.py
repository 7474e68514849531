"""Claiming: due jobs into a worker's free slots.

`tick()` is one look; it says how long to wait before the next, so the loop around it
is plain and a test can drive single looks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import anyio

from . import clock
from .dispatch import aemit

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("activejob.worker")

MAX_CLAIM_BACKOFF = 10.0


@dataclass(frozen=True, slots=True)
class Look:
    """What one look did, and when to look again."""

    claimed: int
    delay: float | None  # 0: at once; None: when a slot frees or someone wakes us


class Dispatcher:
    """Claims due jobs for `runner` and starts them."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.settings = runner.settings
        self._failures = 0

    async def tick(self, now: datetime | None = None) -> Look:
        """Claim into the free slots once. Look again at once when a claim took all it
        asked for (more may be due), after the poll interval when slots stay free, and
        otherwise once a slot frees up."""
        runner = self.runner
        free = self.settings.concurrency - len(runner.running)
        if free <= 0:
            return Look(0, None)
        claimed = 0
        more = False
        try:
            for queues, room in self.rooms(free):
                got, started = await runner.store.claim(room, queues, now or clock.now())
                for job in got:
                    runner.start(job)
                if started:
                    await aemit(started)
                claimed += len(got)
                more = more or len(got) == room
        except Exception as error:
            runner.noted(error)
            self._failures += 1
            delay = min(0.1 * 2**self._failures, MAX_CLAIM_BACKOFF)
            log.warning("claiming failed (%s); retrying in %.1fs", error, delay)
            return Look(claimed, delay)
        self._failures = 0
        return Look(claimed, 0.0 if more else self.settings.poll_interval)

    async def run(self, *, until_idle: bool = False) -> None:
        """Look, wait, look again, while the worker claims. With `until_idle`, return
        once a look with every slot free found nothing due."""
        runner = self.runner
        while runner.claiming:
            runner.rearm()
            idle = not runner.running  # nothing ran when this look began
            look = await self.tick()
            if self._failures:
                await anyio.sleep(look.delay or 0)  # the database is away: back off, whatever wakes us
                continue
            if until_idle and look.claimed == 0 and not runner.running:
                if idle:
                    return  # every slot was offered and nothing was due
                continue  # jobs finished meanwhile: offer their slots (and any retries) first
            if look.delay == 0:
                continue
            await runner.wait(look.delay)

    def rooms(self, free: int) -> Iterator[tuple[Sequence[str] | None, int]]:
        """What to claim now: (queues, how many). One claim for all the worker's queues, or,
        with per-queue limits, one per limited queue (in the order given, within its limit)
        and one for the rest. Lazily, so each sees the slots the previous ones took."""
        s = self.settings
        running = self.runner.running
        if not s.queue_limits:
            yield s.queues, free
            return
        for queue, limit in s.queue_limits.items():
            busy = sum(1 for e in running.values() if e.job.queue == queue)
            room = min(limit - busy, s.concurrency - len(running))
            if room > 0:
                yield [queue], room
        rest = [q for q in s.queues or () if q not in s.queue_limits]
        room = s.concurrency - len(running)
        if rest and room > 0:
            yield rest, room
