"""`JobQueue`: the process-wide queue object, and `configure()` that sets it up.

    queue = activejob.configure(database_url="sqlite:///jobs.db", concurrency=8)
    SendEmail.perform_later(to="a@example.com", subject="Hi")
    queue.run_until_idle()              # scripts and tests: run what is due, then return
    queue.start(); ...; queue.stop()    # in-process worker on a background thread
    async with queue: ...               # in an ASGI lifespan
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar

import anyio
from sqlalchemy import event

from . import clock, enqueuing, middleware, rate_limits
from .config import Settings
from .definition import registry
from .emit import aemit, emit
from .enqueuing import EnqueueRequest
from .errors import ConfigurationError, DuplicateJobError
from .explain import Explanation, explain_job
from .handle import JobHandle
from .liveness import live_since
from .records import BatchInfo, EventRecord, JobInfo, WorkerInfo
from .runner import Runner
from .store import Store
from .store.enqueue import UniqueKeyHeld
from .worker import Worker

log = logging.getLogger("activejob")


class JobQueue:
    """The durable job queue in your database, and the worker that runs its jobs.

    Usually made once per process by `activejob.configure(...)` and found again with
    `JobQueue.get()`; `JobQueue.get()` without a configure uses `ACTIVEJOB_DATABASE_URL`,
    else `activejob.db` in the working directory.
    """

    _current: ClassVar[JobQueue | None] = None
    _current_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, database_url: str | None = None, **options: Any) -> None:
        self.settings = Settings.build(database_url=database_url, **options)
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._worker = Worker(self)

    def __repr__(self) -> str:
        return f"<JobQueue {self.database_url} {self.state}>"

    # -- the singleton ----------------------------------------------------------------

    @classmethod
    def get(cls) -> JobQueue:
        """The process-wide queue (configured from the environment on first use)."""
        with cls._current_lock:
            if cls._current is None:
                cls._current = cls()
            return cls._current

    @classmethod
    def configure(cls, database_url: str | None = None, **options: Any) -> JobQueue:
        """Make a new process-wide queue from these settings and return it."""
        queue = cls(database_url, **options)
        middleware.install(queue.settings.middleware)  # process-wide, like the queue itself
        if queue.settings.tracing:
            from . import tracing

            tracing.instrument()
        with cls._current_lock:
            previous, cls._current = cls._current, queue
        if previous is not None and previous is not queue:
            previous.close()
        if queue.settings.auto_migrate:
            _ = queue.store  # create the schema now, so errors show at configure time
        return queue

    @classmethod
    def configured(cls) -> JobQueue | None:
        """The process-wide queue if one was made already (by `configure` or `get`), else None."""
        return cls._current

    @classmethod
    def reset(cls) -> None:
        """Forget the process-wide queue (tests)."""
        with cls._current_lock:
            previous, cls._current = cls._current, None
        if previous is not None:
            previous.close()

    @property
    def database_url(self) -> str:
        from sqlalchemy.engine import make_url

        from .dialects import normalize_url

        return make_url(normalize_url(self.settings.database_url)).render_as_string(hide_password=True)

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    store = Store(self.settings.database_url, pool_size=self.settings.pool_size,
                                  sqlite_synchronous=self.settings.sqlite_synchronous)
                    if self.settings.auto_migrate:
                        store.upgrade()
                    self._store = store
        return self._store

    @property
    def max_args_bytes(self) -> int:
        return self.settings.max_args_bytes

    def close(self) -> None:
        """Stop the in-process worker, if any, and release database connections."""
        self.stop()
        if self._store is not None:
            self._store.dispose()

    # -- enqueue (the backend of perform_later) ---------------------------------------

    def _handles(self, ids: list[int], requests: Sequence[EnqueueRequest]) -> list[JobHandle]:
        return [JobHandle(i, r.name, self) for i, r in zip(ids, requests, strict=True)]

    def enqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]:
        """Write validated jobs; with `session`, inside that session's transaction."""
        if session is not None:
            return self._enqueue_in(session, requests)
        ids, records = self._write(requests)
        self._wake()
        emit(records)
        return self._handles(ids, requests)

    async def aenqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]:
        if session is not None:
            if hasattr(session, "run_sync"):  # an AsyncSession: its own greenlet bridge does the I/O
                handles: list[JobHandle] = await session.run_sync(lambda s: self._enqueue_in(s, requests))
                return handles
            return self._enqueue_in(session, requests)
        ids, records = await anyio.to_thread.run_sync(self._write, requests)
        self._wake()
        await aemit(records)
        return self._handles(ids, requests)

    # -- batches --------------------------------------------------------------------

    def create_batch(self, *, description: str | None, owner: str | None, callbacks: str | None) -> int:
        """A new batch's id (what `with Batch(...)` calls; its callbacks already encoded)."""
        return self.store.create_batch(description=description, owner=owner, callbacks=callbacks, now=clock.now())

    def seal_batch(self, batch_id: int) -> None:
        """The batch's block has ended: it completes once its members have all finished."""
        records = self.store.seal_batch(int(batch_id), clock.now())
        if records:
            self._wake()
        emit(records)

    def get_batch(self, batch_id: int) -> BatchInfo | None:
        """The batch with this id and how far its members are, or None.

            info = queue.get_batch(batch.id)
            print(f"{info.completed}/{info.total} done, {info.failed} failed, {info.progress:.0%}")
        """
        return self.store.get_batch(int(batch_id))

    def batch_members(self, batch_id: int, *, limit: int = 500) -> list[JobInfo]:
        """The jobs of a batch, oldest first."""
        return self.store.batch_members(int(batch_id), limit=limit)

    def batch_callbacks(self, batch_id: int) -> list[JobInfo]:
        """The callback jobs a batch has enqueued so far."""
        return self.store.batch_callbacks(int(batch_id))

    def list_batches(self, *, limit: int = 50, unfinished: bool | None = None,
                     owner: str | None = None) -> list[BatchInfo]:
        """The newest batches first (`unfinished=True`: only those still running)."""
        return self.store.list_batches(limit=limit, unfinished=unfinished, owner=owner)

    def cancel_batch(self, batch_id: int) -> BatchInfo:
        """Cancel every member not yet finished (running ones as soon as their workers hear);
        the batch then finishes, and its on_complete callback runs. Returns the batch now."""
        running, records = self.store.cancel_batch(int(batch_id), clock.now())
        emit(records)
        for job_id in running:
            if self._runner is not None:
                self._runner.cancel_local(job_id)
        info = self.store.get_batch(int(batch_id))
        assert info is not None  # cancel_batch raised JobNotFound otherwise
        self._wake()
        return info

    def _enqueue_in(self, session: Any, requests: list[EnqueueRequest]) -> list[JobHandle]:
        if hasattr(session, "run_sync"):
            raise ConfigurationError(
                "an AsyncSession needs the awaitable call: await Job.set(session=session).aperform_later(...)")
        # The jobs commit or roll back with the caller's data; workers hear of them,
        # and signals fire, only once the session commits.
        if len(requests) > 1 and any(r.unique_mode == "raise" for r in requests):
            # A refused duplicate takes back the jobs of the call written before it, and only
            # those: the caller's transaction goes on.
            with session.begin_nested():
                ids, records = self._write(requests, session.connection())
        else:
            ids, records = self._write(requests, session.connection())

        def committed(_session: Any) -> None:
            self._wake()
            emit(records)

        event.listen(session, "after_commit", committed, once=True)
        return self._handles(ids, requests)

    def _write(self, requests: list[EnqueueRequest], conn: Any = None) -> tuple[list[int], list[EventRecord]]:
        """The store's enqueue; a unique key held against unique_mode='raise' as DuplicateJobError."""
        try:
            return self.store.enqueue(requests, clock.now(), conn=conn)
        except UniqueKeyHeld as held:
            holder = JobHandle(held.holder_id, held.holder_name, self)
            raise DuplicateJobError(held.job, held.unique_key, holder) from None

    def _wake(self) -> None:
        if self._runner is not None:
            self._runner.wake()

    # -- reading ----------------------------------------------------------------------

    def get_job(self, job_id: int) -> JobInfo | None:
        """The job with this id, or None."""
        return self.store.get(int(job_id))

    def list_jobs(self, status: str | Sequence[str] | None = None, name: str | None = None,
                  queue: str | None = None, owner: str | None = None, limit: int = 50, offset: int = 0,
                  *, parent_id: int | None = None, search: str | None = None,
                  order: str = "newest") -> list[JobInfo]:
        """Jobs, newest first (`order="oldest"` for the other way), filtered by any of
        status, name, queue, owner, parent, text."""
        if order not in ("newest", "oldest"):
            raise ValueError(f"order is 'newest' or 'oldest', not {order!r}")
        return self.store.list_jobs(status=status, name=name, queue=queue, owner=owner, parent_id=parent_id,
                                    search=search, limit=limit, offset=offset, order=order)

    def count_by_status(self, *, name: str | None = None, queue: str | None = None, owner: str | None = None,
                        parent_id: int | None = None, search: str | None = None) -> dict[str, int]:
        """Jobs per status among those the filters match, as `list_jobs` filters them:

            queue.count_by_status(search="invoice")   # {"failed": 2, "completed": 40, ...}
        """
        return self.store.count_by_status(name=name, queue=queue, owner=owner, parent_id=parent_id, search=search)

    def stats(self) -> dict[str, Any]:
        """Counts per status (`stats()["pending"]`), plus `by_name`, `by_queue`, `scheduled`,
        `paused_queues`, `queue_rate_limits` (see `queue_rate_limits()`), and
        `unknown_job_types`: due jobs of types no live worker has registered."""
        now = clock.now()
        out = self.store.stats(now)
        out["unknown_job_types"] = self.store.unclaimable(now, self._live_since())
        out["paused_queues"] = list(self.store.paused_queues())
        out["queue_rate_limits"] = self.queue_rate_limits()
        return out

    def queue_rate_limits(self) -> dict[str, list[str]]:
        """The rate limit of each limited queue, as the live workers keep it (any process or
        machine) and as this process's settings say, the strictest first:

            queue.queue_rate_limits()  # {"mail": ["10/s"]}

        Workers started with different limits each keep their own: then a queue shows several."""
        kept = rate_limits.by_queue(self.settings.queue_rate_limits, *(w.queue_rate_limits for w in self.workers()))
        return {queue: [rate_limits.text(limit) for limit in limits] for queue, limits in kept.items()}

    def oldest_pending_age(self) -> dict[str, float]:
        """Seconds the longest-waiting due job of each queue has waited since its run time
        (queues with nothing due are left out): the queue's latency.

            queue.oldest_pending_age()      # {"mail": 12.5}: mail is 12.5 s behind
        """
        now = clock.now()
        return {name: max((now - at).total_seconds(), 0.0) for name, at in self.store.oldest_due(now).items()}

    def available_job_types(self) -> list[str]:
        """Names of the job types registered in this process."""
        return list(registry)

    def recurring(self) -> list[dict[str, Any]]:
        """The cron schedules this queue keeps (registered in code, or declared in its
        `recurring` setting), sorted by key, each with its `next_run`, `last_enqueued` (the
        latest slot enqueued, from the database) and `error` (why a declared one cannot run):

            for s in queue.recurring():
                print(s["key"], s["job"], s["cron"], s["next_run"], s["last_enqueued"])
        """
        from .recurring import describe_all

        return describe_all(self.settings.recurring, registry, self.store.last_stamped_jobs, clock.now())

    def job_types(self) -> list[dict[str, Any]]:
        """Each registered job type's options (label, phases, queue, schema, ...)."""
        return [registry[name].options.describe() for name in registry]

    def events(self, job_id: int | None = None, *, after: int = 0, owner: str | None = None,
               limit: int = 500, batch_id: int | None = None) -> list[EventRecord]:
        """The durable event log, oldest first; `after` is the last event id already seen.

        `batch_id`: a batch's own events (`batch_failed`, `batch_finished`, `batch_cancelled`)
        and its members' events:

            for event in queue.events(batch_id=batch.id):
                print(event.type, event.job_id, event.status)
        """
        return self.store.events(after=after, job_id=job_id, owner=owner, batch_id=batch_id, limit=limit)

    def _live_since(self) -> datetime:
        return live_since(clock.now(), self.settings.lease)

    def workers(self) -> list[WorkerInfo]:
        """Workers with a recent heartbeat, in any process or machine."""
        return self.store.workers(since=self._live_since())

    def explain(self, job_id: int) -> Explanation:
        """Why the job is, or is not, running now: a `reason` code, a `message` for people,
        and the facts in `details` (docs/howto/why-not-running.md). JobNotFound for an unknown id.

            why = queue.explain(handle.id)
            why.reason      # "queue_paused"
            why.message     # "Job #12 (send_email) is due, but its queue mail has been paused since ..."
        """
        return explain_job(self.store, self.settings, int(job_id), clock.now())

    # -- changing jobs ----------------------------------------------------------------

    def cancel(self, job_id: int, *, expect: Sequence[str] | None = None) -> str:
        """Cancel a job: a pending one at once, a running one as soon as its worker hears
        (at once in this process, within a heartbeat elsewhere). Returns its status now.
        `expect` narrows the states it may be in (what a person saw on a page): a job that
        moved on meanwhile is left alone and InvalidTransition says its state."""
        status, records = self.store.request_cancel(int(job_id), clock.now(), expect=expect)
        self._wake_for(records)
        emit(records)
        if status == "running" and self._runner is not None:
            self._runner.cancel_local(int(job_id))
        return status

    def _wake_for(self, records: list[EventRecord]) -> None:
        """A cancel can make jobs due: a finished batch's callbacks, dependents that run anyway."""
        if any(r.type == "enqueued" for r in records):
            self._wake()

    def retry(self, job_id: int, *, expect: Sequence[str] | None = None) -> JobHandle:
        """Run a failed or cancelled job again, with its attempts reset. `expect` narrows the
        states it may be in (what a person saw on a page), so a stale click changes nothing."""
        records = self.store.retry_job(int(job_id), clock.now(), expect=expect)
        self._wake()
        emit(records)
        return JobHandle(int(job_id), records[0].name, self)

    def delete(self, job_id: int, *, expect: Sequence[str] | None = None) -> None:
        """Delete a job that is not running, with its events. `expect` narrows the states it
        may be in (what a person saw on a page): a job that moved on is left alone."""
        emit(self.store.delete(int(job_id), clock.now(), expect=expect))

    def retry_failed(self, name: str | None = None, *, queue: str | None = None, owner: str | None = None,
                     search: str | None = None) -> int:
        """Run every failed job again (of one job type, queue or owner, or matching a text
        search, as `list_jobs` filters), with fresh attempts; returns how many.

            queue.retry_failed()                       # all of them
            queue.retry_failed("send_email", search="timeout")
        """
        records = self.store.retry_failed(clock.now(), name=name, queue=queue, owner=owner, search=search)
        if records:
            self._wake()
        emit(records)
        return len(records)

    def cancel_many(self, job_ids: Sequence[int]) -> int:
        """Cancel these jobs: pending and waiting ones at once, running ones as soon as their
        workers hear. Finished or missing ones are left alone. Returns how many it cancelled
        or asked to stop.

            queue.cancel_many([12, 13, 14])
        """
        statuses, records = self.store.cancel_many(_job_ids(job_ids), clock.now())
        self._wake_for(records)
        emit(records)
        if self._runner is not None:
            for job_id, status in statuses.items():
                if status == "running":
                    self._runner.cancel_local(job_id)
        return len(statuses)

    def delete_many(self, job_ids: Sequence[int]) -> int:
        """Delete these jobs, with their events, where they are finished (completed, failed or
        cancelled); others are left alone. Returns how many it deleted.

            queue.delete_many([12, 13])
        """
        records = self.store.delete_many(_job_ids(job_ids), clock.now())
        emit(records)
        return len(records)

    def activity(self, minutes: int = 60) -> dict[str, Any]:
        """Per-minute series of the last `minutes` minutes, from the event log: jobs finished
        by status, and each queue's depth and oldest pending age (`Store.activity` says how).

            queue.activity()["finished"]["failed"]          # failures in each minute
            queue.activity()["queues"]["mail"]["depth"]     # pending mail jobs at each minute's end
        """
        return self.store.activity(clock.now(), minutes)

    # -- queues -----------------------------------------------------------------------

    def pause_queue(self, queue: str) -> bool:
        """Stop every worker, here and elsewhere, from starting jobs of `queue`: jobs already
        running finish, and enqueueing goes on. Returns False if it was paused already.

            queue.pause_queue("emails")     # the mail provider is down
            ...
            queue.resume_queue("emails")    # idle workers take them again at once
        """
        paused = self.store.pause_queue(_queue_name(queue), clock.now())
        if paused:
            log.info("queue %r paused", queue)
        return paused

    def resume_queue(self, queue: str) -> bool:
        """Let workers start jobs of a paused `queue` again. Returns False if it was not paused."""
        resumed = self.store.resume_queue(_queue_name(queue))
        if resumed:
            log.info("queue %r resumed", queue)
            self._wake()
        return resumed

    def paused_queues(self) -> list[str]:
        """The names of the paused queues."""
        return list(self.store.paused_queues())

    def prune(self) -> int:
        """Delete finished jobs past their retention now; returns how many."""
        now = clock.now()
        count = self.store.prune({s: now - keep for s, keep in self.settings.retention.items()})
        self.store.prune_events(now - self.settings.event_retention)
        return count

    # -- running ----------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._runner.state if self._runner is not None else "idle"

    def status(self) -> dict[str, Any]:
        """Whether this process runs jobs, and how it is doing."""
        runner = self._runner
        s = self.settings
        return {
            "running": runner is not None and runner.state == "running",
            "state": self.state,
            "worker_id": runner.worker_id if runner else None,
            "concurrency": s.concurrency,
            "queues": list(s.queues) if s.queues else None,
            "in_flight": len(runner.running) if runner else 0,
            "jobs_in_flight": sorted(runner.running) if runner else [],
            "uptime": (clock.now() - runner.started_at).total_seconds() if runner else 0.0,
            "completed": runner.completed if runner else 0,
            "failed": runner.failed if runner else 0,
            "job_types": self.available_job_types(),
            "database": self.database_url,
        }

    @property
    def _runner(self) -> Runner | None:
        return self._worker.runner

    def start(self) -> None:
        """Run jobs on a background thread of this process until `stop()`."""
        self._worker.start()

    def stop(self, grace: float | None = None, timeout: float | None = None) -> None:
        """Stop claiming, give running jobs `grace` seconds, requeue the rest, and wait."""
        self._worker.stop(grace, timeout)

    async def __aenter__(self) -> JobQueue:
        await self._worker.aenter()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        return await self._worker.aexit(exc_type, exc, tb)

    async def run(self) -> None:
        """Run jobs in the current event loop until cancelled or `request_stop()`."""
        await self._worker.run()

    def request_stop(self, grace: float | None = None) -> None:
        if self._runner is not None:
            self._runner.request_stop(grace=grace)

    def work(self) -> None:
        """Run jobs in the foreground until SIGTERM or SIGINT (the `activejob worker` command).

        The first signal stops claiming and lets running jobs finish within the shutdown
        grace; a second one stops at once. Interrupted jobs go back to pending, and the
        process ends in time even when a job ignores its cancellation.
        """
        self._worker.work()

    def run_until_idle(self) -> None:
        """Run jobs until none is due and none is running, then return (scripts, tests).

        Jobs scheduled for later stay pending; move time (freezegun) and call again.
        """
        self._worker.run_until_idle()

    async def arun_until_idle(self) -> None:
        """The async twin of `run_until_idle`."""
        await self._worker.arun_until_idle()


def configure(database_url: str | None = None, **options: Any) -> JobQueue:
    """Set up the process-wide JobQueue and return it.

        queue = activejob.configure(database_url="postgresql://localhost/app", concurrency=20)

    Options: concurrency, queues, poll_interval, lease, shutdown_grace, retention,
    max_args_bytes, auto_migrate (default True: apply the migrations now), ...
    """
    return JobQueue.configure(database_url, **options)


enqueuing.set_backend(JobQueue.get)


def _job_ids(job_ids: Sequence[int]) -> list[int]:
    if isinstance(job_ids, str | bytes) or any(isinstance(i, bool) or not isinstance(i, int) for i in job_ids):
        raise ValueError(f"job ids are whole numbers, got {job_ids!r}")
    return list(job_ids)


def _queue_name(queue: Any) -> str:
    if not isinstance(queue, str) or not queue.strip() or len(queue) > 200:
        raise ValueError(f"a queue name is a non-empty string of at most 200 characters, got {queue!r}")
    return queue
