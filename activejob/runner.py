"""The worker loop: claim due jobs into free slots, run them, write what happened.

One task group holds everything: the claim loop, one task per running job, and the
loops that heartbeat, flush progress, record outcomes (group commit: outcomes that
finish together share one transaction) and do maintenance (recovering expired
leases, pruning). Nothing outlives `run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

import anyio
from anyio import CancelScope
from anyio.abc import TaskGroup

from . import clock, dialects, recurring
from .config import Settings
from .definition import registry
from .dispatch import aemit, emit, emit_local
from .execution import Running, context_for, perform
from .records import Claimed, EventRecord, WorkerInfo
from .store import HotBatch, LoopConnection, Outcome, ProgressUpdate, Store, WouldBlock, hostname, unreachable

log = logging.getLogger("activejob.worker")

STOP_MARGIN = 5.0
"""Seconds a stop may take beyond the grace and the cancel grace (writing the last
outcomes) before a worker gives up on what it could not write."""

Written = tuple[set[int], list[EventRecord], list[Claimed], list[EventRecord]]


def new_worker_id() -> str:
    import uuid

    return f"{hostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Runner:
    """Runs jobs from `store` until told to stop (or, with `until_idle`, until none is due)."""

    def __init__(self, store: Store, settings: Settings, *, worker_id: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id or settings.worker_id or new_worker_id()
        self.running: dict[int, Running] = {}
        self.state = "idle"
        self.started_at = clock.now()
        self.completed = 0
        self.failed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tg: TaskGroup | None = None
        self._claiming = True
        self._wake: anyio.Event | None = None
        self._outcome_wake: anyio.Event | None = None
        self._pending: list[tuple[Running, Outcome, anyio.Event]] = []
        self._write_lock: anyio.Lock | None = None
        self._last_prune = float("-inf")
        self._last_unknown_warning = float("-inf")
        self._last_worker_cleanup = float("-inf")
        self._scheduled: dict[str, datetime] = {}
        self._aio: LoopConnection | None = None
        self._limits: dict[str, int] = {}
        self._per_key: set[str] = set()
        self._job_threads: anyio.CapacityLimiter | None = None
        # When a database call last failed for want of the database (monotonic), and when
        # a stop gives up on writes it cannot make: both bound what waits on the database.
        self._unreachable_at = float("-inf")
        self.stop_deadline: float | None = None

    # -- from any thread --------------------------------------------------------------

    def _soon(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            fn()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(fn)

    def wake(self) -> None:
        """Look for due jobs now (an enqueue happened)."""
        self._soon(self._set_wake)

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def cancel_local(self, job_id: int) -> None:
        """Stop a job of this worker at once, if it runs here."""
        self._soon(lambda: self._stop_job(job_id, "cancel"))

    def request_stop(self, *, grace: float | None = None) -> None:
        """Stop claiming; in-flight jobs get `grace` seconds, then go back to pending."""
        self._soon(lambda: self._begin_stop(self.settings.shutdown_grace if grace is None else grace))

    def stop_now(self) -> None:
        self._soon(lambda: self._begin_stop(0.0))

    def abandon(self) -> int:
        """When the loop cannot be waited for (a job ignores cancellation): put every job
        still running here back to pending, as a shutdown does, from any thread. The write
        is fenced by the leases, so an outcome written meanwhile wins. Returns how many."""
        entries = list(self.running.values())
        if not entries:
            return 0
        now = clock.now()
        written, records = self.store.finish([
            Outcome(e.job.id, e.job.lease_token, "pending", "requeued", run_at=now, refund_attempt=True,
                    data={"reason": "shutdown", "abandoned": True}) for e in entries], now)
        emit(records)
        for entry in entries:
            if entry.job.id in written:
                log.warning("%s #%s ignored its cancellation: put back to pending", entry.job.name, entry.job.id)
        return len(written)

    # -- in the loop ------------------------------------------------------------------

    def _begin_stop(self, grace: float) -> None:
        if self.state == "running":
            log.info("worker %s stopping: %d job(s) in flight, %.0fs grace", self.worker_id, len(self.running), grace)
        self._claiming = False
        self.state = "stopping"
        deadline = clock.monotonic() + grace + self.settings.cancel_grace + STOP_MARGIN
        self.stop_deadline = deadline if self.stop_deadline is None else min(self.stop_deadline, deadline)
        self._set_wake()
        if self._tg is not None:
            self._tg.start_soon(self._shutdown_after, grace)

    async def _shutdown_after(self, grace: float) -> None:
        await anyio.sleep(grace)
        for job_id in list(self.running):
            self._stop_job(job_id, "shutdown", sync_grace=0.0 if grace == 0 else None)

    def _stop_job(self, job_id: int, reason: str, *, sync_grace: float | None = None) -> None:
        entry = self.running.get(job_id)
        if entry is None:
            return
        if entry.stop_reason is None:
            entry.stop_reason = reason
        entry.context.request_cancel(reason)
        grace = self.settings.cancel_grace if sync_grace is None else sync_grace
        if entry.sync and grace > 0 and self._tg is not None:
            # A thread cannot be interrupted: give it time to see `self.cancelled`,
            # then abandon it and record the outcome anyway.
            self._tg.start_soon(self._cancel_later, entry, grace)
        else:
            entry.scope.cancel()

    @staticmethod
    async def _cancel_later(entry: Running, grace: float) -> None:
        await anyio.sleep(grace)
        entry.scope.cancel()

    async def run(self, *, until_idle: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = anyio.Event()
        self._outcome_wake = anyio.Event()
        self._write_lock = anyio.Lock()
        self._claiming = True
        self.state = "running"
        self.started_at = clock.now()
        # Job types with a concurrency limit are claimed by the general path, which counts
        # what runs everywhere; the slots their outcomes free are refilled by the claim loop.
        self._limits = {name: cls.options.concurrency_limit for name, cls in registry.items()
                        if cls.options.concurrency_limit}
        self._per_key = {name for name, cls in registry.items() if cls.options.concurrency_key is not None}
        # Sync jobs get threads of their own, one per slot: on anyio's shared pool (40 threads)
        # they could take every thread and leave heartbeats and outcome writes waiting.
        self._job_threads = anyio.CapacityLimiter(self.settings.concurrency)
        # PostgreSQL: claims and outcomes are awaited on this loop, not sent through a thread.
        self._aio = LoopConnection(self.store) if self.store.dialect == "postgresql" else None
        worker = self.worker_info()
        await anyio.to_thread.run_sync(self.store.register_worker, worker, clock.now())
        watcher = None
        if self.settings.watch and not until_idle:
            watcher = dialects.ChangeWatcher(self.store.url, lambda _payload: self.wake())
            watcher.start()
        limits = self.settings.queue_limits
        log.info("worker %s started: concurrency %d, queues %s, jobs %s", self.worker_id, self.settings.concurrency,
                 ",".join(f"{q}:{limits[q]}" if q in limits else q for q in self.settings.queues or ["*"]),
                 ", ".join(registry))
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._outcome_loop)
                tg.start_soon(self._progress_loop)
                tg.start_soon(self._heartbeat_loop)
                if not until_idle:
                    tg.start_soon(self._maintenance_loop)
                else:
                    await self._maintain()
                await self._claim_loop(tg, until_idle)
                while self.running:
                    await self._wait(None)
                tg.cancel_scope.cancel()
        finally:
            self._tg = None
            self.state = "stopped"
            if watcher is not None:
                watcher.stop()
            if self._aio is not None:
                await self._aio.aclose()
                self._aio = None
            with CancelScope(shield=True):
                try:
                    await anyio.to_thread.run_sync(self.store.unregister_worker, self.worker_id)
                except Exception:
                    log.exception("could not remove worker %s from the registry", self.worker_id)
            self._loop = None
            log.info("worker %s stopped", self.worker_id)

    def worker_info(self) -> WorkerInfo:
        s = self.settings
        return WorkerInfo(
            id=self.worker_id, host=hostname(), pid=os.getpid(), queues=list(s.queues) if s.queues else None,
            job_types=list(registry), concurrency=s.concurrency, started_at=self.started_at,
            heartbeat_at=clock.now(),
        )

    async def _wait(self, timeout: float | None) -> None:
        assert self._wake is not None
        with anyio.move_on_after(timeout):
            await self._wake.wait()
        self._wake = anyio.Event()

    async def _claim_loop(self, tg: TaskGroup, until_idle: bool) -> None:
        s = self.settings
        failures = 0
        while self._claiming:
            self._wake = anyio.Event()
            idle = not self.running  # nothing ran when this round started to look
            free = s.concurrency - len(self.running)
            claimed: list[Claimed] = []
            more = False  # a claim took all it asked for: there may be more due
            if free > 0:
                try:
                    for queues, room in self._claim_rooms(free):
                        got, recorded = await self._claim_soon(room, queues)
                        for job in got:
                            entry = Running(job, context_for(job, self.store))
                            self.running[job.id] = entry
                            tg.start_soon(self._run_one, entry)
                        if recorded:
                            await aemit(recorded)
                        claimed += got
                        more = more or len(got) == room
                    failures = 0
                except Exception as error:
                    self._noted(error)
                    failures += 1
                    delay = min(0.1 * 2**failures, 10.0)
                    log.warning("claiming failed (%s); retrying in %.1fs", error, delay)
                    await anyio.sleep(delay)
                    continue
            if until_idle and not claimed and not self.running:
                if idle:
                    return  # every slot was offered and nothing was due
                continue  # jobs finished meanwhile: offer their slots (and any retries) first
            if more:
                continue  # take them as soon as slots free up
            await self._wait(s.poll_interval if free > 0 else None)

    def _claim_rooms(self, free: int) -> Iterator[tuple[Sequence[str] | None, int]]:
        """What to claim now: (queues, how many). One claim for all the worker's queues, or,
        with per-queue limits, one per limited queue (in the order given, within its limit)
        and one for the rest. Lazily, so each sees the slots the previous ones took."""
        s = self.settings
        if not s.queue_limits:
            yield s.queues, free
            return
        for queue, limit in s.queue_limits.items():
            busy = sum(1 for e in self.running.values() if e.job.queue == queue)
            room = min(limit - busy, s.concurrency - len(self.running))
            if room > 0:
                yield [queue], room
        rest = [q for q in s.queues or () if q not in s.queue_limits]
        room = s.concurrency - len(self.running)
        if rest and room > 0:
            yield rest, room

    def _claim(self, limit: int, queues: Sequence[str] | None, nowait: bool = False
               ) -> tuple[list[Claimed], list[EventRecord]]:
        if self._limits:
            return self.store.claim_limited(
                worker_id=self.worker_id, names=list(registry), queues=queues,
                limit=limit, now=clock.now(), lease=self.settings.lease, limits=self._limits, per_key=self._per_key)
        return self.store.claim(
            worker_id=self.worker_id, names=list(registry), queues=queues,
            limit=limit, now=clock.now(), lease=self.settings.lease, nowait=nowait,
        )

    async def _claim_soon(self, limit: int, queues: Sequence[str] | None
                          ) -> tuple[list[Claimed], list[EventRecord]]:
        if self._limits:
            return await anyio.to_thread.run_sync(self._claim, limit, queues)
        if self._aio is not None:
            return await self._aio.claim(
                worker_id=self.worker_id, names=list(registry), queues=queues, limit=limit,
                now=clock.now(), lease=self.settings.lease)
        # SQLite: right here on the loop when no one holds the write lock. The write is
        # ~100 µs of C; a hop to a worker thread and back costs more than that.
        if self.store.dialect == "sqlite":
            with contextlib.suppress(WouldBlock):
                return self._claim(limit, queues, nowait=True)
        return await anyio.to_thread.run_sync(self._claim, limit, queues)

    async def _run_one(self, entry: Running) -> None:
        try:
            outcome = await perform(entry, self._job_threads)
            if outcome is None:
                return
            with CancelScope(shield=True):
                await self._record(entry, outcome)
            if outcome.status == "completed":
                self.completed += 1
            elif outcome.status == "failed":
                self.failed += 1
        except Exception:
            log.exception("%s #%s: internal error while running", entry.job.name, entry.job.id)
        finally:
            # A retry due at once may already run again under the same id: only let go
            # of this attempt's own entry.
            if self.running.get(entry.job.id) is entry:
                del self.running[entry.job.id]
            self._set_wake()

    async def _record(self, entry: Running, outcome: Outcome) -> None:
        """Queue the outcome for the next group commit; return once it is durable (and its
        signals are sent, by the outcome loop, in the order of the event log)."""
        assert self._outcome_wake is not None
        outcome.frees_limited_slot = entry.job.name in self._limits
        done = anyio.Event()
        self._pending.append((entry, outcome, done))
        self._outcome_wake.set()
        await done.wait()

    def _updates(self, entries: list[Running]) -> list[ProgressUpdate]:
        updates = []
        for entry in entries:
            progress, checkpoint, logs = entry.context.take()
            if progress is None and checkpoint is None and not logs:
                continue
            updates.append(ProgressUpdate(entry.job.id, entry.job.lease_token, progress, checkpoint, logs))
            if checkpoint is not None:
                emit_local("checkpoint", registry.get(entry.job.name) or entry.job.name, {
                    "job_id": entry.job.id, "name": entry.job.name, "status": "running",
                    "attempt": entry.job.attempts, "queue": entry.job.queue, "owner": entry.job.owner,
                    "checkpoint": entry.context.checkpoint_data, "at": clock.now(), "event_id": None,
                })
        return updates

    async def _outcome_loop(self) -> None:
        assert self._outcome_wake is not None and self._write_lock is not None
        while True:
            await self._outcome_wake.wait()
            self._outcome_wake = anyio.Event()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            async with self._write_lock:
                updates = self._updates([entry for entry, _, _ in batch])
                # The slots this batch frees are refilled in the same trip to the database
                # (one round trip per batch instead of two, and no wait for the claim loop).
                # (Not with limits: the claim loop claims those, each within its limit.)
                refill = len(batch) if self._claiming and not self._limits and not self.settings.queue_limits else 0
                outcomes = [o for _, o, _ in batch]
                written: set[int] = set()
                records: list[EventRecord] = []
                claimed: list[Claimed] = []
                started: list[EventRecord] = []
                rest = outcomes
                if not updates:
                    try:
                        written, records, claimed, started, rest = await self._write_inline(outcomes, refill)
                        refill = 0  # it claimed all there was
                    except Exception:  # busy, or a case for the general path: the thread below
                        pass
                # What the one statement did not write (all of it, if it could not run).
                if rest or updates:
                    more = await self._write_durably(updates, rest, refill)
                    written |= more[0]
                    records += more[1]
                    claimed += more[2]
                    started += more[3]
            # In `running` before the finished ones leave it, so the claim loop never
            # counts these slots as free.
            self._start_claimed(claimed)
            for entry, outcome, _done in batch:
                if outcome.job_id not in written:
                    log.warning("%s #%s: lease lost before its outcome was written; another worker owns it",
                                entry.job.name, entry.job.id)
            # Signals go out here, in the order of the event log: these outcomes (and the
            # parents they woke), then the starts of the jobs that took their slots (maybe
            # the same job, retried at once). The waiting jobs are released whatever happens.
            try:
                await aemit(records)
            finally:
                for _entry, _outcome, done in batch:
                    done.set()
            if started:
                await aemit(started)

    def _gave_up(self) -> bool:
        """Stopping, and past the time promised for it: writes that wait on the database
        are dropped (their jobs' leases expire and other workers run them again)."""
        return self.stop_deadline is not None and clock.monotonic() >= self.stop_deadline

    def _noted(self, error: BaseException) -> bool:
        """Whether `error` means the database is away (noted: recovery waits on it)."""
        if unreachable(error):
            self._unreachable_at = clock.monotonic()
            return True
        return False

    async def _write_durably(self, updates: list[ProgressUpdate], outcomes: list[Outcome], refill: int) -> Written:
        """Write these, whatever it takes: while the database is away, try again with
        backoff; if it refuses the batch, write each apart, so one value it cannot store
        fails only its own job."""
        failures = 0
        written: set[int] = set()
        records: list[EventRecord] = []
        while True:
            try:
                more = await anyio.to_thread.run_sync(self._write_outcomes, updates, outcomes, refill)
                return written | more[0], records + more[1], more[2], more[3]
            except Exception as error:
                if not self._noted(error):
                    log.warning("recording %d outcome(s) failed (%s); writing each on its own",
                                len(outcomes), error)
                    apart, recorded, outcomes = await anyio.to_thread.run_sync(self._write_apart, updates, outcomes)
                    written |= apart
                    records += recorded
                    updates, refill = [], 0
                    if not outcomes:
                        return written, records, [], []
                    continue  # the database went away meanwhile: these are left
                if self._gave_up():
                    log.error("%d outcome(s) not written: the database is unreachable and the worker is stopping; "
                              "their jobs run again once their leases expire", len(outcomes))
                    return written, records, [], []
                failures += 1
                # Well inside a lease: once the database is back, other workers wait a lease
                # before they take our jobs, so these must be in by then.
                delay = min(0.1 * 2**failures, self.settings.lease / 4)
                log.warning("recording %d outcome(s) failed (%s); retrying in %.1fs", len(outcomes), error, delay)
                await anyio.sleep(delay)

    def _write_apart(self, updates: list[ProgressUpdate], outcomes: list[Outcome]
                     ) -> tuple[set[int], list[EventRecord], list[Outcome]]:
        """Each update and outcome in a transaction of its own. An outcome the database
        refuses becomes its job's failure, saying why; what could not be written for want
        of the database comes back, to be tried again."""
        now = clock.now()
        records: list[EventRecord] = []
        for update in updates:
            try:
                records += self.store.save_progress([update], now)[1]
            except Exception as error:
                if self._noted(error):
                    break  # progress is best effort: the next report carries it
                log.error("job #%s: progress could not be stored (%s); dropped", update.job_id, error)
        written: set[int] = set()
        for i, outcome in enumerate(outcomes):
            try:
                try:
                    done, recorded = self.store.finish([outcome], now)
                except Exception as error:
                    if unreachable(error):
                        raise
                    log.error("job #%s: its %s outcome could not be stored (%s); failing it instead",
                              outcome.job_id, outcome.status, error)
                    done, recorded = self.store.finish([unstorable(outcome, error)], now)
            except Exception as error:
                if self._noted(error):
                    return written, records, outcomes[i:]
                log.error("job #%s: not even its failure could be stored (%s); it runs again once its "
                          "lease expires", outcome.job_id, error)
                continue
            written |= done
            records += recorded
        return written, records, []

    def _start_claimed(self, claimed: list[Claimed]) -> None:
        if self._tg is None:
            return
        for job in claimed:
            entry = Running(job, context_for(job, self.store))
            self.running[job.id] = entry
            self._tg.start_soon(self._run_one, entry)

    async def _write_inline(self, outcomes: list[Outcome], refill: int) -> HotBatch:
        """Outcomes written and slots refilled without a thread: on PostgreSQL awaited on the
        loop's own connection; on SQLite right on the loop, as a transaction that never
        waits (WouldBlock instead). The outcomes handed back last are for the general path."""
        limit = refill if self._claiming else 0
        names = list(registry) if limit else []
        now = clock.now()
        if self._aio is not None:
            return await self._aio.finish_and_claim(outcomes, now, worker_id=self.worker_id, names=names,
                                                    queues=self.settings.queues, limit=limit,
                                                    lease=self.settings.lease)
        if self.store.dialect != "sqlite":
            raise WouldBlock("no inline path")
        written, records, claimed, started = self.store.finish_and_claim(
            outcomes, now, worker_id=self.worker_id, names=names,
            queues=self.settings.queues, limit=limit, lease=self.settings.lease, nowait=True)
        return written, records, claimed, started, []

    def _write_outcomes(self, updates: list[ProgressUpdate], outcomes: list[Outcome], refill: int = 0) -> Written:
        now = clock.now()
        records: list[EventRecord] = []
        if updates:
            _lost, records = self.store.save_progress(updates, now)
        if refill > 0 and self._claiming and self.store.dialect == "postgresql":
            with contextlib.suppress(WouldBlock):  # one statement: outcomes written, slots refilled
                written, finished, claimed, started = self.store.finish_and_claim(
                    outcomes, now, worker_id=self.worker_id, names=list(registry), queues=self.settings.queues,
                    limit=refill, lease=self.settings.lease)
                return written, records + finished, claimed, started
        written, finished = self.store.finish(outcomes, now)
        claimed = []
        started = []
        if refill > 0 and self._claiming:
            try:
                claimed, started = self._claim(refill, self.settings.queues)
            except Exception as error:  # the outcomes are written; the claim loop tries again
                log.warning("claiming failed (%s)", error)
        return written, records + finished, claimed, started

    async def _progress_loop(self) -> None:
        assert self._write_lock is not None
        while True:
            await anyio.sleep(self.settings.progress_interval)
            async with self._write_lock:
                updates = self._updates(list(self.running.values()))
                if not updates:
                    continue
                try:
                    lost, records = await anyio.to_thread.run_sync(self.store.save_progress, updates, clock.now())
                except Exception as error:
                    self._noted(error)
                    log.warning("saving progress failed (%s); the next report will carry it", error)
                    continue
            for job_id in lost:
                self._stop_job(job_id, "lease_lost")
            await aemit(records)

    async def _heartbeat_loop(self) -> None:
        s = self.settings
        assert s.heartbeat_interval is not None
        last_ok = clock.monotonic()
        while True:
            await anyio.sleep(s.heartbeat_interval)
            tokens = {job_id: e.job.lease_token for job_id, e in self.running.items()}
            try:
                beat = await anyio.to_thread.run_sync(
                    self.store.heartbeat, self.worker_info(), tokens, clock.now(), s.lease)
                last_ok = clock.monotonic()
            except Exception as error:
                self._noted(error)
                log.warning("heartbeat failed (%s)", error)
                if clock.monotonic() - last_ok > s.lease:
                    # Our leases have expired by now and another worker may hold these
                    # jobs: stop rather than run them twice.
                    for job_id in list(self.running):
                        self._stop_job(job_id, "lease_lost")
                continue
            for job_id in beat.lost:
                self._stop_job(job_id, "lease_lost")
            for job_id in beat.cancel:
                self._stop_job(job_id, "cancel")

    def _schedule_recurring(self, now: datetime) -> None:
        """Keep the next slot of every cron schedule enqueued (the unique key makes the
        workers that race to do it agree on one job)."""
        due = []
        for key, schedule in list(recurring.schedules.items()):
            slot = schedule.next_after(now)
            if self._scheduled.get(key) != slot:
                due.append((key, slot, schedule.request(slot, self.settings.max_args_bytes)))
        if not due:
            return
        self.store.enqueue([r for _, _, r in due], now)
        for key, slot, _ in due:
            self._scheduled[key] = slot

    async def _maintenance_loop(self) -> None:
        while True:
            try:
                await self._maintain()
            except Exception as error:
                self._noted(error)
                log.warning("maintenance failed (%s)", error)
            await anyio.sleep(self.settings.poll_interval)

    async def _maintain(self) -> None:
        s = self.settings
        now = clock.now()
        recovered: list[EventRecord] = []
        # Leases that expired while the database was away from us were likely away from
        # their workers too: give those a lease to write their held outcomes and heartbeats.
        if clock.monotonic() - self._unreachable_at >= s.lease:
            recovered = await anyio.to_thread.run_sync(self.store.recover_expired, now)
        for record in recovered:
            log.warning("%s #%s recovered from a lost worker: %s", record.name, record.job_id, record.type)
        await aemit(recovered)
        await anyio.to_thread.run_sync(self._schedule_recurring, now)
        if await anyio.to_thread.run_sync(self.store.refresh_planner_stats):
            log.info("the jobs table grew past its planner statistics: analyzed it")
        woken = await anyio.to_thread.run_sync(self.store.wake_waiting, now)
        await aemit(woken)
        if recovered or woken:
            self._set_wake()
        # A worker silent for several leases is gone (killed, or its machine is).
        # (One that was only paused registers itself again at its next heartbeat.)
        if clock.monotonic() - self._last_worker_cleanup >= min(s.lease, 10.0):
            self._last_worker_cleanup = clock.monotonic()
            await anyio.to_thread.run_sync(self.store.remove_dead_workers, now - timedelta(seconds=3 * s.lease))
        if clock.monotonic() - self._last_prune >= s.prune_interval:
            self._last_prune = clock.monotonic()
            cutoffs = {status: now - keep for status, keep in s.retention.items()}
            pruned = await anyio.to_thread.run_sync(self.store.prune, cutoffs)
            await anyio.to_thread.run_sync(self.store.prune_events, now - s.event_retention)
            if pruned:
                log.info("pruned %d finished job(s)", pruned)
        if clock.monotonic() - self._last_unknown_warning >= 60:
            self._last_unknown_warning = clock.monotonic()
            unknown = await anyio.to_thread.run_sync(self.store.unclaimable, now, now - timedelta(seconds=2 * s.lease))
            if unknown:
                log.warning("pending jobs of types no live worker knows: %s",
                            ", ".join(f"{n} ({c})" for n, c in sorted(unknown.items())))


def unstorable(outcome: Outcome, error: BaseException) -> Outcome:
    """The failure that replaces an outcome the database refused to store."""
    return Outcome(outcome.job_id, outcome.token, "failed", "failed",
                   error=f"OutcomeNotStored: the {outcome.status} outcome of this attempt could not be stored: "
                         f"{type(error).__name__}: {error}",
                   data={"reason": "unstorable", "outcome": outcome.status})
