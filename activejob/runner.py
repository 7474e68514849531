"""A worker: claim due jobs into free slots, run them, write what happened.

The runner holds the jobs in flight and the worker's lifecycle, and hands the rest to
the parts that own it: the `Dispatcher` claims, the `Recorder` writes outcomes and
progress, the `LeaseKeeper` heartbeats, `Maintenance` does the chores, the `Lane` runs
sync jobs on threads of the worker's own, the `LoopWatch` says when an async job holds
up the event loop, and the `WorkerStore` decides how each database call runs. One task
group holds every loop and every async job; nothing outlives `run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
from anyio import CancelScope
from anyio.abc import TaskGroup

from . import clock, dialects, rate_limits
from .config import Settings
from .definition import BaseJob, job_is_async, registry
from .dispatcher import Dispatcher
from .emit import emit
from .execution import (
    Running,
    context_for,
    crashed,
    job_class,
    perform,
    perform_in_thread,
    stopped,
    timed_out,
    timeout_of,
)
from .lane import Lane
from .lease_keeper import LeaseKeeper
from .loop_watch import LoopWatch
from .maintenance import Maintenance
from .recorder import Recorder
from .records import Claimed, WorkerInfo
from .store import Outcome, Store, hostname, unreachable
from .store.facade import WorkerStore
from .store.rates import RateLimits

log = logging.getLogger("activejob.worker")

STOP_MARGIN = 5.0
"""Seconds a stop may take beyond the grace and the cancel grace (writing the last
outcomes) before a worker gives up on what it could not write."""


def new_worker_id() -> str:
    return f"{hostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Runner:
    """Runs jobs from `db` until told to stop (or, with `until_idle`, until none is due)."""

    def __init__(self, db: Store, settings: Settings, *, worker_id: str | None = None) -> None:
        self.db = db
        self.settings = settings
        self.worker_id = worker_id or settings.worker_id or new_worker_id()
        self.running: dict[int, Running] = {}
        self.state = "idle"
        self.ready = threading.Event()  # set once it runs (or failed to start)
        self.started_at = clock.now()
        self.completed = 0
        self.failed = 0
        self.claiming = True
        # Job types with a concurrency limit are claimed by the general path, which counts
        # what runs everywhere; the slots their outcomes free are refilled by the dispatcher.
        self.limits: dict[str, int] = {}
        # When a database call last failed for want of the database (monotonic), and when
        # a stop gives up on writes it cannot make: both bound what waits on the database.
        self.unreachable_at = float("-inf")
        self.stop_deadline: float | None = None
        self.store = self._worker_store()
        self.recorder: Recorder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tg: TaskGroup | None = None
        self._hops: set[asyncio.Task[None]] = set()  # see _begin_stop
        self._wake: anyio.Event | None = None
        self.lane: Lane[Running, Outcome | None] | None = None
        self._keeper: LeaseKeeper | None = None

    def _worker_store(self) -> WorkerStore:
        s = self.settings
        self.limits = {name: cls.options.concurrency_limit for name, cls in registry.items()
                       if cls.options.concurrency_limit}
        rates = RateLimits(
            types={name: cls.options.rate_limit for name, cls in registry.items() if cls.options.rate_limit},
            per_key=frozenset(name for name, cls in registry.items() if cls.options.rate_limit_key is not None),
            queues=dict(s.queue_rate_limits))
        return WorkerStore(self.db, worker_id=self.worker_id, names=list(registry), queues=s.queues, lease=s.lease,
                           limits=self.limits,
                           per_key={name for name, cls in registry.items() if cls.options.concurrency_key is not None},
                           rates=rates, recheck_after=s.poll_interval)

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

    def cancel_local(self, job_id: int) -> None:
        """Stop a job of this worker at once, if it runs here, and hear of the other cancels
        that came with it (its descendants) with a heartbeat now."""
        def cancel() -> None:
            self.stop_job(job_id, "cancel")
            if self._keeper is not None and self.running:
                self._keeper.beat_soon()

        self._soon(cancel)

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
        written, records = self.db.finish([
            Outcome(e.job.id, e.job.lease_token, "pending", "requeued", run_at=now, refund_attempt=True,
                    data={"reason": "shutdown", "abandoned": True}) for e in entries], now)
        emit(records)
        for entry in entries:
            if entry.job.id in written:
                log.warning("%s #%s ignored its cancellation: put back to pending", entry.job.name, entry.job.id)
        return len(written)

    # -- the lifecycle ----------------------------------------------------------------

    async def run(self, *, until_idle: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = anyio.Event()
        self.claiming = True
        self.state = "running"
        self.ready.set()
        self.started_at = clock.now()
        self.store = self._worker_store()  # the job types registered by now
        self.recorder = Recorder(self)
        dispatcher, keeper, maintenance = Dispatcher(self), LeaseKeeper(self), Maintenance(self)
        self._keeper = keeper
        # Sync jobs get threads of their own, one per slot: on anyio's shared pool (40 threads)
        # they could take every thread and leave heartbeats and outcome writes waiting.
        self.lane = Lane(perform_in_thread, self._sync_done, self._loop, broken=crashed)
        await self.store.register(self.worker_info(), clock.now())
        watcher = None
        if self.settings.watch and not until_idle:
            watcher = dialects.ChangeWatcher(self.db.url, lambda _payload: self.wake())
            watcher.start()
        self._log_start()
        watch = LoopWatch(self.running.values, self.worker_id, self.settings.lease)
        watch.start()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self.recorder.outcome_loop)
                tg.start_soon(self.recorder.progress_loop)
                tg.start_soon(keeper.run)
                # One round of chores before the first claim: a cron slot missed while no
                # worker ran is settled by its catch_up rule before anything could claim it.
                await maintenance.tick()
                if not until_idle:
                    tg.start_soon(maintenance.run)
                await dispatcher.run(until_idle=until_idle)
                while self.running:
                    await self.wait(None)
                tg.cancel_scope.cancel()
        finally:
            self._tg = None
            self.state = "stopped"
            self.ready.set()
            self.lane.close()
            watch.stop()
            if watcher is not None:
                watcher.stop()
            with CancelScope(shield=True):
                await self.store.aclose()
                try:
                    await self.store.unregister()
                except Exception:
                    log.exception("could not remove worker %s from the registry", self.worker_id)
            self._loop = None
            log.info("worker %s stopped", self.worker_id)

    def _log_start(self) -> None:
        s = self.settings
        limits = s.queue_limits
        log.info("worker %s started: concurrency %d, queues %s, jobs %s", self.worker_id, s.concurrency,
                 ",".join(f"{q}:{limits[q]}" if q in limits else q for q in s.queues or ["*"]), ", ".join(registry))

    def worker_info(self) -> WorkerInfo:
        s = self.settings
        return WorkerInfo(
            id=self.worker_id, host=hostname(), pid=os.getpid(), queues=list(s.queues) if s.queues else None,
            job_types=list(registry), concurrency=s.concurrency, started_at=self.started_at,
            heartbeat_at=clock.now(),
            queue_rate_limits={queue: rate_limits.text(limit) for queue, limit in s.queue_rate_limits.items()},
        )

    def _begin_stop(self, grace: float) -> None:
        if self.state == "running":
            log.info("worker %s stopping: %d job(s) in flight, %.0fs grace", self.worker_id, len(self.running), grace)
        self.claiming = False
        self.state = "stopping"
        deadline = clock.monotonic() + grace + self.settings.cancel_grace + STOP_MARGIN
        self.stop_deadline = deadline if self.stop_deadline is None else min(self.stop_deadline, deadline)
        self._set_wake()
        if self._tg is None or self._loop is None:
            return
        if asyncio.current_task() is None:
            # Called back by the loop (a signal, a request from another thread), not from a
            # task: anyio (4.16 on) starts tasks only from a task, so hop into one first.
            hop = self._loop.create_task(self._start_shutdown_timer(grace))
            self._hops.add(hop)
            hop.add_done_callback(self._hops.discard)
        else:
            self._tg.start_soon(self._shutdown_after, grace)

    async def _start_shutdown_timer(self, grace: float) -> None:
        if self._tg is not None:
            with contextlib.suppress(RuntimeError):  # the worker finished meanwhile
                self._tg.start_soon(self._shutdown_after, grace)

    async def _shutdown_after(self, grace: float) -> None:
        await anyio.sleep(grace)
        for job_id in list(self.running):
            self.stop_job(job_id, "shutdown", sync_grace=0.0 if grace == 0 else None)

    def gave_up(self) -> bool:
        """Stopping, and past the time promised for it: writes that wait on the database
        are dropped (their jobs' leases expire and other workers run them again)."""
        return self.stop_deadline is not None and clock.monotonic() >= self.stop_deadline

    def noted(self, error: BaseException) -> bool:
        """Whether `error` means the database is away (noted: recovery waits on it)."""
        if unreachable(error):
            self.unreachable_at = clock.monotonic()
            return True
        return False

    # -- waking the dispatcher --------------------------------------------------------

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def rearm(self) -> None:
        """Forget wake-ups from before this look: it sees what they announced."""
        self._wake = anyio.Event()

    async def wait(self, timeout: float | None) -> None:
        """Until woken (a slot freed, an enqueue) or `timeout` seconds pass."""
        assert self._wake is not None
        with anyio.move_on_after(timeout):
            await self._wake.wait()
        self._wake = anyio.Event()

    # -- jobs in flight ---------------------------------------------------------------

    def in_signal_order(self) -> AbstractAsyncContextManager[Any]:
        """Held while claimed jobs start and their `started` signals go out (see
        `Recorder.in_signal_order`): a claim's job exists only once its last attempt's
        outcome is committed, which the recorder does under the same lock, before that
        outcome's signals; nothing when no recorder runs (a test driving looks)."""
        return self.recorder.in_signal_order() if self.recorder is not None else contextlib.nullcontext()

    def start(self, job: Claimed) -> None:
        """A claimed job starts: an async one as a task of the worker's task group, a sync
        one on the worker's sync-job threads."""
        assert self._tg is not None and self._loop is not None and self.lane is not None
        entry = Running(job, context_for(job, self.db))
        self.running[job.id] = entry
        cls = job_class(job)
        if cls is None or job_is_async(cls):
            entry.scope = CancelScope()
            self._tg.start_soon(self._run_async, entry)
            return
        entry.sync = True
        timeout = timeout_of(job, cls)  # the job's own (Job.set(timeout=...)), else its type's
        if timeout:
            entry.timer = self._loop.call_later(timeout, self._time_out, entry, cls)
        self.lane.submit(entry)

    async def _run_async(self, entry: Running) -> None:
        assert self.recorder is not None
        outcome: Outcome | None = None
        try:
            try:
                outcome = await perform(entry)
            except Exception as error:  # a bug of ours: fail the job rather than leave it running
                log.exception("%s #%s: internal error while running", entry.job.name, entry.job.id)
                outcome = crashed(entry, error)
            if outcome is not None:
                with CancelScope(shield=True):
                    await self.recorder.record(entry, outcome)
        finally:
            self.finished(entry, outcome)

    def finished(self, entry: Running, outcome: Outcome | None) -> None:
        """An attempt is over and its outcome written: its slot is free."""
        if outcome is not None:
            if outcome.status == "completed":
                self.completed += 1
            elif outcome.status == "failed":
                self.failed += 1
        # A retry due at once may already run again under the same id: only let go
        # of this attempt's own entry.
        if self.running.get(entry.job.id) is entry:
            del self.running[entry.job.id]
        # The claim loop looks again only if a slot is free: the outcome write usually
        # refilled it already (the claimed jobs start before the finished ones leave).
        if len(self.running) < self.settings.concurrency:
            self._set_wake()

    def stop_job(self, job_id: int, reason: str, *, sync_grace: float | None = None) -> None:
        entry = self.running.get(job_id)
        # A job whose outcome is decided stays in `running` until that is written; a
        # heartbeat that ran meanwhile may find its lease already gone (the outcome's own
        # commit ended it) and a cancel may come late: neither has anything left to stop.
        if entry is None or entry.settled:
            return
        if entry.stop_reason is None:
            entry.stop_reason = reason
        entry.context.request_cancel(reason)
        grace = self.settings.cancel_grace if sync_grace is None else sync_grace
        if entry.scope is not None:
            entry.scope.cancel()
        elif grace > 0 and self._loop is not None:
            # A thread cannot be interrupted: give it time to see `self.cancelled`,
            # then stop waiting for it and record the outcome anyway.
            self._loop.call_later(grace, self._give_up_on, entry)
        else:
            self._give_up_on(entry)

    def _give_up_on(self, entry: Running) -> None:
        self._settle(entry, stopped)

    def _time_out(self, entry: Running, cls: type[BaseJob[Any]]) -> None:
        self._settle(entry, lambda e: timed_out(e, cls))

    def _settle(self, entry: Running, decide: Callable[[Running], Outcome | None]) -> None:
        """The worker stops waiting for a sync job's thread and records what `decide` says
        (unless the thread got there first: then nothing is decided, or logged, twice)."""
        if self.lane is not None and self.lane.abandon(entry):
            self._sync_done([(entry, decide(entry))])

    def _sync_done(self, done: list[tuple[Running, Outcome | None]]) -> None:
        """Sync jobs' outcomes, from their threads (a batch per wake-up) or from _settle."""
        assert self.recorder is not None
        for entry, outcome in done:
            if entry.timer is not None:
                entry.timer.cancel()
            if outcome is None:
                self.finished(entry, None)
            else:
                self.recorder.add(entry, outcome)
