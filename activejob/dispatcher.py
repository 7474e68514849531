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
from .emit import aemit

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("activejob.worker")

MAX_CLAIM_BACKOFF = 10.0
MIN_RATE_WAIT = 0.01
"""The shortest wait for a rate limit's window: a start stamped ahead of this worker's clock
(clocks differ a little) never makes it look again in a tight loop."""


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
        self.held_until: datetime | None = None  # due jobs wait for a rate limit until then
        self._looked_at: datetime | None = None

    async def tick(self, now: datetime | None = None) -> Look:
        """Claim into the free slots once. Look again at once when a claim took all it
        asked for (more may be due), after the poll interval when slots stay free (sooner
        when a rate limit's window frees for due jobs it holds back), and otherwise once a
        slot frees up."""
        runner = self.runner
        free = self.settings.concurrency - len(runner.running)
        if free <= 0:
            return Look(0, None)
        runner.store.recheck_limits()  # a look that may follow a wake or a poll: limited types too
        claimed = 0
        more = False
        at = now or clock.now()
        frees_at: datetime | None = None
        try:
            for queues, room in self.rooms(free):
                got, started = await runner.store.claim(room, queues, at)
                # Started and announced under the recorder's lock: a retry claimed here
                # waits for its last attempt's outcome signal, and its own outcome waits for
                # this start's (see Runner.in_signal_order).
                async with runner.in_signal_order():
                    for job in got:
                        runner.start(job)
                    if started:
                        await aemit(started)
                claimed += len(got)
                more = more or len(got) == room
                held = runner.store.frees_at
                if held is not None and (frees_at is None or held < frees_at):
                    frees_at = held
        except Exception as error:
            runner.noted(error)
            self._failures += 1
            delay = min(0.1 * 2**self._failures, MAX_CLAIM_BACKOFF)
            log.warning("claiming failed (%s); retrying in %.1fs", error, delay)
            return Look(claimed, delay)
        self._failures = 0
        # A clock that stood still since the last look (frozen in a test) never frees a window.
        self.held_until = None if more or at == self._looked_at else frees_at
        self._looked_at = at
        if more:
            return Look(claimed, 0.0)
        delay = self.settings.poll_interval
        if frees_at is not None:
            # Due jobs wait for a rate limit's window: look again as it frees, not sooner.
            delay = min(delay, max((frees_at - at).total_seconds(), min(delay, MIN_RATE_WAIT)))
        return Look(claimed, delay)

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
            if until_idle and look.claimed == 0 and not runner.running and self.held_until is None:
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
