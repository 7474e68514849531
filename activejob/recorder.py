"""Writing what running jobs report and how their attempts ended.

Outcomes go to one loop that writes every outcome waiting at that moment in one
transaction (group commit): under load, jobs that finish together share a commit. The
same write claims jobs for the slots it frees. Progress, checkpoints and logs are
collected every `progress_interval` and written together. One lock orders the two, and
an outcome write first flushes what its job reported last, so a job's last report
always lands before its outcome.

A write is made durable whatever it takes: while the database is away it is tried
again with backoff; a batch the database refuses is written apart, so one value it
cannot store fails only its own job.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from . import clock
from .emit import aemit, emit_local, sender
from .execution import Running
from .records import EventRecord, signal_payload
from .store import Outcome, ProgressUpdate, unreachable
from .store.facade import Written

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("activejob.worker")

ENDED = ("completed", "failed", "cancelled")
"""Outcomes that end a job: its batch may be due a callback, its dependents may go on."""

GATHER = 0.001
"""Seconds an outcome write waits for sync jobs that started within as long (see _gather)."""


class Recorder:
    """The outcome loop and the progress loop of one worker."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.settings = runner.settings
        # Outcomes waiting for the next group commit, with what waits on each: an async
        # job's task (an event), or nothing (a sync job: the outcome loop frees its slot).
        self._pending: list[tuple[Running, Outcome, anyio.Event | None]] = []
        self._wake = anyio.Event()
        # fast_acquire: a free lock is taken without a trip round the event loop, which
        # every group commit paid for (a sync no-op drain on SQLite: 10 to 20% more jobs/s).
        # Each holder awaits between turns anyway (the outcome loop its next wake-up).
        self._lock = anyio.Lock(fast_acquire=True)

    def in_signal_order(self) -> anyio.Lock:
        """Held while a write and the sending of its events' signals: whoever else writes
        about jobs and sends their signals holds it too, so one job's signals go out in
        the order of the event log."""
        return self._lock

    # -- taking outcomes --------------------------------------------------------------

    async def record(self, entry: Running, outcome: Outcome) -> None:
        """Queue the outcome for the next group commit; return once it is durable (and its
        signals are sent, in the order of the event log)."""
        done = anyio.Event()
        self._add(entry, outcome, done)
        await done.wait()

    def add(self, entry: Running, outcome: Outcome) -> None:
        """Queue the outcome of a sync job: the outcome loop frees its slot once written."""
        self._add(entry, outcome, None)

    def _add(self, entry: Running, outcome: Outcome, done: anyio.Event | None) -> None:
        entry.settled = True  # decided: a heartbeat or cancel arriving now has nothing to stop
        outcome.frees_limited_slot = entry.job.name in self.runner.limits
        self._pending.append((entry, outcome, done))
        self._wake.set()

    # -- the loops --------------------------------------------------------------------

    async def outcome_loop(self) -> None:
        runner = self.runner
        while True:
            await self._wake.wait()
            await self._gather()
            # Everything pending is taken here, with no await in between: a wake-up set
            # meanwhile announced only these, so the next wait is for outcomes still to come.
            self._wake = anyio.Event()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                async with self._lock:
                    updates = self._updates([entry for entry, _, _ in batch])
                    # The slots this batch frees are refilled in the same trip to the database
                    # (not with per-queue caps: the claim loop claims those, each within its cap).
                    refill = len(batch) if runner.claiming and not self.settings.queue_limits else 0
                    written, records, claimed, started = await self._write(
                        updates, [o for _, o, _ in batch], refill)
                    # In `running` before the finished ones leave it, so the claim loop never
                    # counts these slots as free.
                    for job in claimed:
                        runner.start(job)
                    for entry, outcome, _done in batch:
                        if outcome.job_id not in written:
                            log.warning("%s #%s: lease lost before its outcome was written; another worker owns it",
                                        entry.job.name, entry.job.id)
                    # Signals go out in the order of the event log: these outcomes (and the
                    # parents they woke), then the starts of the jobs that took their slots
                    # (maybe the same job, retried at once). Still under the lock, which the
                    # claim loop takes too (`in_signal_order`): a job retried at once and
                    # claimed there cannot have its next start sent before this outcome.
                    await aemit(records)
                # Before the slots are freed, so a worker running until idle still counts
                # these jobs while what they release (callbacks, dependents) is written.
                await self._settle([(entry, outcome) for entry, outcome, _ in batch
                                    if outcome.job_id in written])
            finally:
                # The waiting jobs are released whatever happens.
                for entry, outcome, done in batch:
                    if done is None:
                        runner.finished(entry, outcome)
                    else:
                        done.set()
            if started:
                await aemit(started)

    async def _settle(self, written: list[tuple[Running, Outcome]]) -> None:
        """After the commit: enqueue the callbacks of batches these outcomes finished or
        failed, and settle the jobs waiting for the jobs that ended. A separate transaction
        that reads what is committed, so of members (or dependencies) ending at once in
        several workers, the last to commit sees them all; if this worker dies first, the
        waiting-jobs chore of any worker does it."""
        ended = [(entry.job, outcome) for entry, outcome in written if outcome.status in ENDED]
        batch_ids = {job.batch_id for job, _ in ended if job.batch_id is not None}
        waited_for = [job.id for job, outcome in ended if outcome.has_dependents]
        if not batch_ids and not waited_for:
            return
        try:
            records = await self.runner.store.settle(batch_ids, waited_for, clock.now())
        except Exception as error:
            self.runner.noted(error)
            log.warning("settling batches and dependents failed (%s); the waiting-jobs chore will", error)
            return
        if records:
            self.runner.wake()
        await aemit(records)

    async def _gather(self) -> None:
        """Let sync jobs that started a moment ago join this write (a commit delay, as
        PostgreSQL's `commit_delay`): those are likely quick and about to finish, and a
        write of four outcomes costs what a write of one does. Jobs that have run for a
        while are not waited for."""
        lane = self.runner.lane
        deadline = clock.monotonic() + GATHER
        while lane is not None and lane.fresh(GATHER):
            left = deadline - clock.monotonic()
            if left <= 0:
                return
            with anyio.move_on_after(left):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def progress_loop(self) -> None:
        runner = self.runner
        while True:
            await anyio.sleep(self.settings.progress_interval)
            async with self._lock:
                updates = self._updates(list(runner.running.values()))
                if not updates:
                    continue
                try:
                    lost, records = await runner.store.save_progress(updates, clock.now())
                except Exception as error:
                    runner.noted(error)
                    log.warning("saving progress failed (%s); the next report will carry it", error)
                    continue
                # Under the lock, as the outcomes' (see in_signal_order): a job's progress
                # is never sent after its outcome.
                await aemit(records)
            for job_id in lost:
                runner.stop_job(job_id, "lease_lost")

    def _updates(self, entries: list[Running]) -> list[ProgressUpdate]:
        updates = []
        for entry in entries:
            progress, checkpoint, logs = entry.context.take()
            if progress is None and checkpoint is None and not logs:
                continue
            updates.append(ProgressUpdate(entry.job.id, entry.job.lease_token, progress, checkpoint, logs))
            if checkpoint is not None:
                emit_local("checkpoint", sender(entry.job.name), signal_payload(
                    "checkpoint", job_id=entry.job.id, name=entry.job.name, queue=entry.job.queue,
                    owner=entry.job.owner, status="running", attempt=entry.job.attempts, at=clock.now(),
                    data={"checkpoint": entry.context.checkpoint_data}))
        return updates

    # -- writing, whatever it takes ---------------------------------------------------

    async def _write(self, updates: list[ProgressUpdate], outcomes: list[Outcome], refill: int) -> Written:
        """Write these: while the database is away, try again with backoff; if it refuses
        the batch, write each apart."""
        runner = self.runner
        failures = 0
        written: set[int] = set()
        records: list[EventRecord] = []
        while True:
            try:
                more = await runner.store.finish(updates, outcomes, clock.now(), refill=refill)
                return written | more[0], records + more[1], more[2], more[3]
            except Exception as error:
                if not runner.noted(error):
                    log.warning("recording %d outcome(s) failed (%s); writing each on its own",
                                len(outcomes), error)
                    apart, recorded, outcomes = await self._write_apart(updates, outcomes)
                    written |= apart
                    records += recorded
                    updates, refill = [], 0
                    if not outcomes:
                        return written, records, [], []
                    continue  # the database went away meanwhile: these are left
                if runner.gave_up():
                    log.error("%d outcome(s) not written: the database is unreachable and the worker is stopping; "
                              "their jobs run again once their leases expire", len(outcomes))
                    return written, records, [], []
                failures += 1
                # Well inside a lease: once the database is back, other workers wait a lease
                # before they take our jobs, so these must be in by then.
                delay = min(0.1 * 2**failures, self.settings.lease / 4)
                log.warning("recording %d outcome(s) failed (%s); retrying in %.1fs", len(outcomes), error, delay)
                await anyio.sleep(delay)

    async def _write_apart(self, updates: list[ProgressUpdate], outcomes: list[Outcome]
                           ) -> tuple[set[int], list[EventRecord], list[Outcome]]:
        """Each update and outcome in a transaction of its own. An outcome the database
        refuses becomes its job's failure, saying why; what could not be written for want
        of the database comes back, to be tried again."""
        store = self.runner.store
        noted = self.runner.noted
        now = clock.now()
        records: list[EventRecord] = []
        for update in updates:
            try:
                records += (await store.save_progress([update], now))[1]
            except Exception as error:
                if noted(error):
                    break  # progress is best effort: the next report carries it
                log.error("job #%s: progress could not be stored (%s); dropped", update.job_id, error)
        written: set[int] = set()
        for i, outcome in enumerate(outcomes):
            try:
                try:
                    done, recorded = await store.finish_each([outcome], now)
                except Exception as error:
                    if unreachable(error):
                        raise
                    log.error("job #%s: its %s outcome could not be stored (%s); failing it instead",
                              outcome.job_id, outcome.status, error)
                    done, recorded = await store.finish_each([unstorable(outcome, error)], now)
            except Exception as error:
                if noted(error):
                    return written, records, outcomes[i:]
                log.error("job #%s: not even its failure could be stored (%s); it runs again once its "
                          "lease expires", outcome.job_id, error)
                continue
            written |= done
            records += recorded
        return written, records, []


def unstorable(outcome: Outcome, error: BaseException) -> Outcome:
    """The failure that replaces an outcome the database refused to store."""
    return Outcome(outcome.job_id, outcome.token, "failed", "failed",
                   error=f"OutcomeNotStored: the {outcome.status} outcome of this attempt could not be stored: "
                         f"{type(error).__name__}: {error}",
                   data={"reason": "unstorable", "outcome": outcome.status})
