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
from types import TracebackType
from typing import Any, ClassVar

import anyio
from sqlalchemy import event

from . import clock, enqueuing, middleware
from .config import Settings
from .definition import registry
from .emit import aemit, emit
from .enqueuing import EnqueueRequest
from .errors import ConfigurationError, DuplicateJobError, UnknownScheduleError
from .handle import JobHandle
from .queue_batches import QueueBatches
from .queue_changes import QueueChanges
from .queue_reads import QueueReads
from .records import EventRecord
from .recurring import effective
from .store.enqueue import HeldBy, UniqueKeyHeld
from .worker import Worker

log = logging.getLogger("activejob")


class JobQueue(QueueReads, QueueChanges, QueueBatches):
    """The durable job queue in your database, and the worker that runs its jobs.

    Usually made once per process by `activejob.configure(...)` and found again with
    `JobQueue.get()`; `JobQueue.get()` without a configure uses `ACTIVEJOB_DATABASE_URL`,
    else `activejob.db` in the working directory.

    Its verbs, by what they do (and where they live):

    - the process-wide queue: `configure`, `get`, `configured`, `reset`, `close` (here)
    - enqueue, what `perform_later` calls: `enqueue`, `aenqueue` (here)
    - run jobs in this process: `start`, `stop`, `run_until_idle`, `work`, `run`,
      `async with queue`, `status` (here, through `worker.py`)
    - read: `get_job`, `list_jobs`, `count_by_status`, `stats`, `events`, `workers`,
      `explain`, `activity`, `queue_rate_limits`, `recurring`, ... (`queue_reads.py`)
    - change: `cancel`, `retry`, `delete`, `retry_failed`, `cancel_many`, `delete_many`,
      `pause_queue`, `resume_queue`, `prune` (`queue_changes.py`)
    - batches: `get_batch`, `list_batches`, `batch_members`, `cancel_batch`, ...
      (`queue_batches.py`)
    """

    _current: ClassVar[JobQueue | None] = None
    _current_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, database_url: str | None = None, **options: Any) -> None:
        self.settings = Settings.build(database_url=database_url, **options)
        self._store = None
        self._store_lock = threading.Lock()
        self._worker = Worker(self)

    def __repr__(self) -> str:
        return f"<JobQueue {self.database_url} {self.state}>"

    # -- the singleton ----------------------------------------------------------------

    @classmethod
    def get(cls) -> JobQueue:
        """The process-wide queue (configured from the environment on first use)."""
        current = cls._current  # once made, read without the lock: every perform_later asks
        if current is not None:
            return current
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

    def close(self) -> None:
        """Stop the in-process worker, if any, and release database connections."""
        self.stop()
        if self._store is not None:
            self._store.dispose()

    # -- enqueue (the backend of perform_later) ---------------------------------------

    def _handles(self, ids: list[int], requests: Sequence[EnqueueRequest]) -> list[JobHandle]:
        """A handle per request, for the job it got: its own, or the one holding its unique
        key (which may be of another type: the handle has that job's name)."""
        return [JobHandle(int(job_id), job_id.name if isinstance(job_id, HeldBy) else r.name, self)
                for job_id, r in zip(ids, requests, strict=True)]

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

    def run_schedule(self, key: str) -> JobHandle:
        """Enqueue a cron schedule's job now, with the schedule's arguments, queue and
        priority: "Run now" on the dashboard's schedules page, `activejob cron --run KEY`.
        Its slots are untouched (the next one still runs when due).

            handle = queue.run_schedule("nightly")

        An unknown key is UnknownScheduleError (naming the known ones); a schedule declared in
        the settings whose job type is not imported here, or whose arguments fail its schema,
        is a ConfigurationError saying which."""
        found, problems = effective(self.settings.recurring, registry)
        schedule = next((s for s in found if s.key == key), None)
        if schedule is None:
            if key in problems:
                raise ConfigurationError(problems[key][1])
            known = sorted([s.key for s in found] + list(problems))
            raise UnknownScheduleError(f"no cron schedule has the key {key!r}; "
                                       + (f"the schedules are: {', '.join(known)}" if known else "there are none"))
        return self.enqueue([schedule.request(None, self.max_args_bytes)])[0]

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




