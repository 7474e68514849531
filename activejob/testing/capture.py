"""The in-memory backend: `capture_enqueued()` keeps the jobs `perform_later` enqueues in a
`CapturedJobs` list of `EnqueuedJob`s, with `MemoryJobHandle`s for their handles; and
`enqueued_jobs()`, the pending jobs of the innermost capture or of the queue.

    with capture_enqueued() as jobs:
        SendEmail.perform_later(to="a@example.com", subject="Hi")
    assert jobs[0].name == "send_email"
    jobs.perform_all()
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

from .. import clock, enqueuing
from ..emit import emit_local, sender
from ..enqueuing import ConfiguredJob, EnqueueRequest
from ..errors import DuplicateJobError, JobNotFound
from ..handle import JobHandle
from ..records import JobInfo, signal_payload

if TYPE_CHECKING:
    from ..definition import BaseJob
    from ..queue import JobQueue


@dataclass(eq=False)
class EnqueuedJob:
    """A job as it was enqueued: what `capture_enqueued()` and `enqueued_jobs()` hand back."""

    id: int
    name: str
    args: dict[str, Any]
    queue: str
    priority: int
    run_at: datetime
    max_retries: int = 0
    owner: str | None = None
    parent_id: int | None = None
    unique_key: str | None = None
    created_at: datetime = field(default_factory=clock.now)
    batch_id: int | None = None
    status: str = "pending"
    unique_until: str | None = None  # as the store keeps it: None (finished), 'started' or 'time'
    unique_expires_at: datetime | None = None
    result: Any = None
    error: str | None = None
    attempts: int = 0
    traceback: str | None = None
    checkpoint: Any = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def job_class(self) -> type[BaseJob[Any]]:
        """The registered job type (raises `UnknownJobError` with a hint if there is none)."""
        from ..definition import registry

        return registry[self.name]

    def perform(self) -> Any:
        """Run the job here through `perform_now`; records its status, result or error."""
        self.status = "running"
        self.attempts += 1
        self.started_at = clock.now()
        try:
            self.result = ConfiguredJob(self.job_class, owner=self.owner).perform_now(dict(self.args))
        except BaseException as error:
            self.status = "failed"
            self.error = f"{type(error).__name__}: {error}"
            self.finished_at = clock.now()
            raise
        self.status = "completed"
        self.finished_at = clock.now()
        return self.result

    def info(self) -> JobInfo:
        """This job as a `JobInfo`, like `queue.get_job(id)` returns."""
        finished = self.status in ("completed", "failed", "cancelled")
        return JobInfo(
            id=self.id, name=self.name, queue=self.queue, priority=self.priority, status=self.status,
            args=self.args, result=self.result, error=self.error, traceback=self.traceback,
            attempts=self.attempts, max_retries=self.max_retries,
            run_at=self.run_at, created_at=self.created_at, started_at=self.started_at,
            finished_at=(self.finished_at or self.created_at) if finished else None, worker_id=None,
            lease_expires_at=None, cancel_requested=self.status == "cancelled", progress=None,
            progress_message=None, progress_phase=None, progress_current=None, progress_total=None,
            checkpoint=self.checkpoint, parent_id=self.parent_id, owner=self.owner, unique_key=self.unique_key,
        )

    def describe(self) -> str:
        """One line for assertion messages: name, id, args, queue, run_at and status."""
        return (f"{self.name}#{self.id} args={self.args!r} queue={self.queue!r} "
                f"run_at={self.run_at.isoformat(timespec='seconds')} status={self.status}")


class MemoryJobHandle(JobHandle):
    """The handle of a job kept in memory (`capture_enqueued()`, `inline()`): a `JobHandle`
    (`id`, `name`, `status`, `result`, `info()`, `cancel()`, `wait()`) plus `error` and
    `attempts`. Nothing runs these jobs in the background, so `wait()` returns at once: the
    job's `JobInfo` if it has finished, else `TimeoutError` (run it with `perform_enqueued_jobs()`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<MemoryJobHandle {self.name} #{self.id}>"

    def wait(self, timeout: float | None = None, *, poll: float = 0.05) -> JobInfo:
        """The job's `JobInfo` if it has finished; `TimeoutError` if not (nothing else would run it)."""
        info = self.info()
        if not info.finished:
            raise TimeoutError(f"job {self.id} ({self.name}) is {info.status} and nothing runs it in the "
                               "background here: run it with perform_enqueued_jobs()")
        return info

    async def await_finished(self, timeout: float | None = None, *, poll: float = 0.05) -> JobInfo:
        return self.wait(timeout, poll=poll)


class CapturedJobs(Sequence[EnqueuedJob]):
    """An in-memory stand-in for the JobQueue's enqueue side: jobs are kept in a list.

    It implements the same backend interface as `JobQueue` (`enqueue`, `aenqueue`,
    `max_args_bytes`), so arguments are validated and encoded exactly as for the database.
    Handles work too: `handle.status`, `handle.info()`, `handle.cancel()`.
    """

    def __init__(self, *, max_args_bytes: int = 1_000_000) -> None:
        self._max_args_bytes = max_args_bytes
        self.jobs: list[EnqueuedJob] = []
        self.batches: list[dict[str, Any]] = []  # by id - 1: what `with Batch(...)` created
        self._lock = threading.Lock()

    # -- Sequence ---------------------------------------------------------------------

    @overload
    def __getitem__(self, index: int) -> EnqueuedJob: ...
    @overload
    def __getitem__(self, index: slice) -> list[EnqueuedJob]: ...
    def __getitem__(self, index: int | slice) -> EnqueuedJob | list[EnqueuedJob]:
        return self.jobs[index]

    def __len__(self) -> int:
        return len(self.jobs)

    def __repr__(self) -> str:
        return f"<CapturedJobs {[f'{j.name}#{j.id}' for j in self.jobs]}>"

    def named(self, name: str | type[BaseJob[Any]]) -> list[EnqueuedJob]:
        """The captured jobs of one type: `jobs.named(SendEmail)` or `jobs.named("send_email")`."""
        wanted = name if isinstance(name, str) else name.options.name
        return [j for j in self.jobs if j.name == wanted]

    @property
    def pending(self) -> list[EnqueuedJob]:
        return [j for j in self.jobs if j.status == "pending"]

    # -- the backend interface ----------------------------------------------------------

    @property
    def max_args_bytes(self) -> int:
        return self._max_args_bytes

    def enqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]:
        """Keep the jobs (`session` is accepted and ignored: there is no transaction here).

        A job whose `unique_key` a captured job holds does what its `unique_mode` says, as
        with the database: `skip` hands back the holder, `replace` and `debounce` give a
        pending holder of the same type the new args and run time, `raise` raises
        `DuplicateJobError` and keeps nothing of the call."""
        return [MemoryJobHandle(job.id, job.name, self) for job in self._keep(requests)[0]]

    def _holder(self, key: str | None, now: datetime) -> EnqueuedJob | None:
        """The captured job that holds `key` now (the store's UNIQUE_HELD, in memory)."""
        if key is None:
            return None
        for j in self.jobs:
            if j.unique_key != key:
                continue
            if j.unique_until == "time":
                if j.unique_expires_at is not None and j.unique_expires_at > now:
                    return j
            elif j.status in (("pending", "waiting") if j.unique_until == "started" else
                              ("pending", "running", "waiting")):
                return j
        return None

    def _keep(self, requests: list[EnqueueRequest]) -> tuple[list[EnqueuedJob], list[EnqueuedJob]]:
        """Add the jobs; returns the job each request is handed (new, or the unique key's
        holder) and the jobs added."""
        import json

        now = clock.now()
        handed: list[EnqueuedJob] = []
        added: list[EnqueuedJob] = []
        replaced: list[tuple[EnqueuedJob, dict[str, Any]]] = []
        with self._lock:
            for r in requests:
                holder = self._holder(r.unique_key, now)
                if holder is not None and r.unique_mode == "raise":
                    del self.jobs[len(self.jobs) - len(added):]  # nothing of the call is kept
                    raise DuplicateJobError(r.name, r.unique_key or "",
                                            MemoryJobHandle(holder.id, holder.name, self))
                if holder is not None:  # like the database: the job that holds the key, no new one
                    if r.unique_mode in ("replace", "debounce") and holder.status == "pending" \
                            and holder.name == r.name:
                        args = json.loads(r.args)
                        changed = [f for f, old, new in (("args", holder.args, args),
                                                         ("run_at", holder.run_at, r.run_at)) if old != new]
                        if changed:
                            data = {"mode": r.unique_mode, "changed": changed, "run_at": r.run_at.isoformat()}
                            if "run_at" in changed:
                                data["previous_run_at"] = holder.run_at.isoformat()
                            holder.args, holder.run_at = args, r.run_at
                            replaced.append((holder, data))
                    handed.append(holder)
                    continue
                job = EnqueuedJob(
                    id=len(self.jobs) + 1, name=r.name, args=json.loads(r.args), queue=r.queue,
                    priority=r.priority, run_at=r.run_at, max_retries=r.max_retries, owner=r.owner,
                    parent_id=r.parent_id, unique_key=r.unique_key, created_at=now, batch_id=r.batch_id,
                    unique_until=r.unique_until, unique_expires_at=r.unique_expires_at,
                )
                self.jobs.append(job)
                handed.append(job)
                added.append(job)
        for job in added:
            # Like the database's `enqueued` event, but with no row: no event id.
            emit_local("enqueued", sender(job.name), signal_payload(
                "enqueued", job_id=job.id, name=job.name, queue=job.queue, owner=job.owner, status="pending",
                attempt=0, at=now, data={"run_at": job.run_at.isoformat()} if job.run_at > now else None))
        for job, data in replaced:
            emit_local("replaced", sender(job.name), signal_payload(
                "replaced", job_id=job.id, name=job.name, queue=job.queue, owner=job.owner, status="pending",
                attempt=0, at=now, data=data))
        return handed, added

    async def aenqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]:
        return self.enqueue(requests, session)

    def create_batch(self, *, description: str | None, owner: str | None, callbacks: str | None) -> int:
        """A batch kept in memory: its members are the captured jobs enqueued in its block."""
        with self._lock:
            self.batches.append({"description": description, "owner": owner, "callbacks": callbacks,
                                 "sealed": False})
            return len(self.batches)

    def seal_batch(self, batch_id: int) -> None:
        self.batches[batch_id - 1]["sealed"] = True

    # -- what handles ask ---------------------------------------------------------------

    def _find(self, job_id: int) -> EnqueuedJob | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def get_job(self, job_id: int) -> JobInfo | None:
        job = self._find(int(job_id))
        return job.info() if job is not None else None

    def cancel(self, job_id: int) -> str:
        """Cancel a captured job that has not run yet; returns its status."""
        job = self._find(int(job_id))
        if job is None:
            raise JobNotFound(f"no captured job with id {job_id}")
        if job.status == "pending":
            job.status = "cancelled"
        return job.status

    # -- running ------------------------------------------------------------------------

    def perform_all(self, name: str | type[BaseJob[Any]] | None = None) -> list[Any]:
        """Run the pending captured jobs, oldest first, through `perform_now`; returns their results.

        Jobs enqueued by those jobs run too, until none is pending. Scheduled jobs run at
        once (time is not simulated) and a job runs once: a raised error (`Retry`
        included) propagates. Use the real queue and `run_until_idle()` to test retries.
        """
        wanted = None if name is None else (name if isinstance(name, str) else name.options.name)
        results: list[Any] = []
        while True:
            batch = [j for j in self.pending if wanted is None or j.name == wanted]
            if not batch:
                return results
            for job in batch:
                if job.status == "pending":
                    results.append(self._perform_one(job))

    def perform_due(self) -> list[Any]:
        """Run the pending jobs whose `run_at` has come (by `clock.now()`, which freezegun moves),
        oldest first, including due jobs they enqueue; returns their results."""
        results: list[Any] = []
        while True:
            now = clock.now()
            batch = [j for j in self.pending if clock.as_utc(j.run_at) <= now]
            if not batch:
                return results
            for job in batch:
                if job.status == "pending":
                    results.append(self._perform_one(job))

    def _perform_one(self, job: EnqueuedJob) -> Any:
        return job.perform()

    def clear(self) -> None:
        """Forget every captured job."""
        with self._lock:
            self.jobs.clear()


_captures: list[CapturedJobs] = []


@contextmanager
def capture_enqueued(*, max_args_bytes: int = 1_000_000) -> Iterator[CapturedJobs]:
    """Inside the block, `perform_later` and friends keep jobs in memory instead of the database.

        with capture_enqueued() as jobs:
            SendEmail.perform_later(to="a@example.com", subject="Hi")
        assert jobs[0].name == "send_email" and jobs[0].args["to"] == "a@example.com"
        jobs.perform_all()

    Process-wide while it lasts (like `configure`), and restored on exit.
    """
    captured = CapturedJobs(max_args_bytes=max_args_bytes)
    previous = enqueuing.set_backend(lambda: captured)
    _captures.append(captured)
    try:
        yield captured
    finally:
        _captures.remove(captured)
        enqueuing.set_backend(previous)


# -- reading the pending jobs --------------------------------------------------------


def _current_queue(queue: JobQueue | None) -> JobQueue:
    from ..queue import JobQueue

    return queue if queue is not None else JobQueue.get()


def enqueued_jobs(name: str | type[BaseJob[Any]] | None = None, queue: str | None = None, *,
                  job_queue: JobQueue | None = None) -> list[EnqueuedJob]:
    """The pending jobs (due or scheduled), oldest first, optionally of one type or queue name.

        SendEmail.perform_later(to="a@example.com", subject="Hi")
        assert [j.args["to"] for j in enqueued_jobs(SendEmail)] == ["a@example.com"]

    Reads the process-wide queue's database (or `job_queue`'s); inside
    `capture_enqueued()` it reads the captured jobs instead.
    """
    wanted = None if name is None else (name if isinstance(name, str) else name.options.name)
    if job_queue is None and _captures:
        return [j for j in _captures[-1].pending
                if (wanted is None or j.name == wanted) and (queue is None or j.queue == queue)]
    source = _current_queue(job_queue)
    out: list[EnqueuedJob] = []
    page = 1000
    while True:
        rows = source.list_jobs(status="pending", name=wanted, queue=queue, limit=page, offset=len(out),
                                order="oldest")
        out.extend(_from_info(r) for r in rows)
        if len(rows) < page:
            return out


def _from_info(r: JobInfo) -> EnqueuedJob:
    return EnqueuedJob(
        id=r.id, name=r.name, args=r.args if isinstance(r.args, dict) else {}, queue=r.queue,
        priority=r.priority, run_at=r.run_at, max_retries=r.max_retries, owner=r.owner,
        parent_id=r.parent_id, unique_key=r.unique_key, created_at=r.created_at, status=r.status,
        result=r.result, error=r.error, attempts=r.attempts, traceback=r.traceback, checkpoint=r.checkpoint,
        started_at=r.started_at, finished_at=r.finished_at,
    )
