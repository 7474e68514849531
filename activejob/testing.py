"""Helpers for testing code that uses activejob.

With no database at all: capture what `perform_later` enqueues, then run it.

    from activejob.testing import capture_enqueued

    def test_signup_sends_a_welcome_email():
        with capture_enqueued() as jobs:
            signup("a@example.com")
        assert [j.name for j in jobs] == ["send_email"]
        assert jobs[0].args == {"to": "a@example.com", "subject": "Welcome"}
        jobs.perform_all()                      # each job through perform_now
        assert jobs[0].status == "completed"

With the real queue (a SQLite file in a temporary directory): enqueue, run until idle,
then assert on what happened, signals included.

    queue = activejob.configure(f"sqlite:///{tmp_path}/jobs.db")
    with recorded_signals() as log:
        handle = SendEmail.perform_later(to="a@example.com", subject="Hi")
        perform_enqueued_jobs()
    assert log.names(handle.id) == ["job_enqueued", "job_started", "job_completed"]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

from blinker import ANY, NamedSignal

from . import clock, enqueuing, signals
from .dispatch import emit_local, sender
from .enqueuing import ConfiguredJob, EnqueueRequest
from .errors import JobNotFound
from .handle import JobHandle
from .records import JobInfo, signal_payload

if TYPE_CHECKING:
    from .definition import BaseJob
    from .queue import JobQueue

__all__ = [
    "CapturedJobs",
    "EnqueuedJob",
    "SignalLog",
    "aperform_enqueued_jobs",
    "capture_enqueued",
    "enqueued_jobs",
    "perform_enqueued_jobs",
    "recorded_signals",
]

ALL_SIGNALS: tuple[NamedSignal, ...] = signals.ALL_SIGNALS
"""Every signal activejob sends, in the order of `activejob.signals`."""


# -- signals -------------------------------------------------------------------------

_EVERY_JOB = object()


class SignalLog(list[tuple[str, dict[str, Any]]]):
    """The `(signal name, payload)` pairs `recorded_signals()` saw, in the order sent."""

    def names(self, job_id: int | object | None = _EVERY_JOB, *, status_changed: bool = False) -> list[str]:
        """The signal names, for one job if `job_id` is given (`None` picks `perform_now` runs).

        `job_status_changed`, sent beside every status signal, is left out unless asked for.
        """
        return [
            name for name, payload in self
            if (job_id is _EVERY_JOB or payload.get("job_id") == job_id)
            and (status_changed or name != "job_status_changed")
        ]

    def payloads(self, name: str) -> list[dict[str, Any]]:
        """The payloads of one signal: `log.payloads("job_progress")`."""
        return [payload for n, payload in self if n == name]


def _signal_name(item: str | NamedSignal) -> str:
    name = item if isinstance(item, str) else item.name
    if name not in {s.name for s in ALL_SIGNALS}:
        known = ", ".join(s.name for s in ALL_SIGNALS)
        raise ValueError(f"{name!r} is not an activejob signal; use one of {known}")
    return name


def _recorder(name: str, log: SignalLog, lock: threading.Lock) -> Callable[..., None]:
    def receiver(_sender: Any, **payload: Any) -> None:
        with lock:
            log.append((name, payload))

    return receiver


@contextmanager
def recorded_signals(*only: str | NamedSignal, exclude: Sequence[str | NamedSignal] = ()) -> Iterator[SignalLog]:
    """Record every activejob signal sent inside the block, from any sender and thread.

        with recorded_signals() as log:
            SendEmail.perform_now(to="a@example.com", subject="Hi")
        assert log.names() == ["job_started", "job_completed"]
        assert log.payloads("job_completed")[0]["result"] == {"sent": True}

    Pass signals (or their names) to record only those, or `exclude=` to leave some out.
    """
    wanted = {_signal_name(s) for s in only} or {s.name for s in ALL_SIGNALS}
    wanted -= {_signal_name(s) for s in exclude}
    log = SignalLog()
    lock = threading.Lock()
    receivers: list[tuple[NamedSignal, Any]] = []
    for signal in ALL_SIGNALS:
        if signal.name in wanted:
            receiver = _recorder(signal.name, log, lock)
            signal.connect(receiver, sender=ANY, weak=False)
            receivers.append((signal, receiver))
    try:
        yield log
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)


# -- the in-memory backend -----------------------------------------------------------


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
    status: str = "pending"
    result: Any = None
    error: str | None = None

    @property
    def job_class(self) -> type[BaseJob[Any]]:
        """The registered job type (raises `UnknownJobError` with a hint if there is none)."""
        from .definition import registry

        return registry[self.name]

    def perform(self) -> Any:
        """Run the job here through `perform_now`; records its status, result or error."""
        self.status = "running"
        try:
            self.result = ConfiguredJob(self.job_class, owner=self.owner).perform_now(dict(self.args))
        except BaseException as error:
            self.status = "failed"
            self.error = f"{type(error).__name__}: {error}"
            raise
        self.status = "completed"
        return self.result

    def info(self) -> JobInfo:
        """This job as a `JobInfo`, like `queue.get_job(id)` returns."""
        finished = self.status in ("completed", "failed", "cancelled")
        return JobInfo(
            id=self.id, name=self.name, queue=self.queue, priority=self.priority, status=self.status,
            args=self.args, result=self.result, error=self.error, traceback=None,
            attempts=0 if self.status == "pending" else 1, max_retries=self.max_retries,
            run_at=self.run_at, created_at=self.created_at, started_at=None,
            finished_at=self.created_at if finished else None, worker_id=None, lease_expires_at=None,
            cancel_requested=self.status == "cancelled", progress=None, progress_message=None,
            progress_phase=None, progress_current=None, progress_total=None, checkpoint=None,
            parent_id=self.parent_id, owner=self.owner,
        )


class CapturedJobs(Sequence[EnqueuedJob]):
    """An in-memory stand-in for the JobQueue's enqueue side: jobs are kept in a list.

    It implements the same backend interface as `JobQueue` (`enqueue`, `aenqueue`,
    `max_args_bytes`), so arguments are validated and encoded exactly as for the database.
    Handles work too: `handle.status`, `handle.info()`, `handle.cancel()`.
    """

    def __init__(self, *, max_args_bytes: int = 1_000_000) -> None:
        self._max_args_bytes = max_args_bytes
        self.jobs: list[EnqueuedJob] = []
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

        A job whose `unique_key` a captured job already holds is not added: its handle is
        that job's, as with the database."""
        import json

        now = clock.now()
        handed: list[EnqueuedJob] = []
        added: list[EnqueuedJob] = []
        with self._lock:
            for r in requests:
                key = r.unique_key
                holder = next((j for j in self.jobs if key is not None and j.unique_key == key), None)
                if holder is not None:  # like the database: the job that holds the key, no new one
                    handed.append(holder)
                    continue
                job = EnqueuedJob(
                    id=len(self.jobs) + 1, name=r.name, args=json.loads(r.args), queue=r.queue,
                    priority=r.priority, run_at=r.run_at, max_retries=r.max_retries, owner=r.owner,
                    parent_id=r.parent_id, unique_key=key, created_at=now,
                )
                self.jobs.append(job)
                handed.append(job)
                added.append(job)
        for job in added:
            # Like the database's `enqueued` event, but with no row: no event id.
            emit_local("enqueued", sender(job.name), signal_payload(
                "enqueued", job_id=job.id, name=job.name, queue=job.queue, owner=job.owner, status="pending",
                attempt=0, at=now, data={"run_at": job.run_at.isoformat()} if job.run_at > now else None))
        return [JobHandle(job.id, job.name, self) for job in handed]

    async def aenqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]:
        return self.enqueue(requests, session)

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
                    results.append(job.perform())

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


# -- the real queue ------------------------------------------------------------------


def _current_queue(queue: JobQueue | None) -> JobQueue:
    from .queue import JobQueue

    return queue if queue is not None else JobQueue.get()


def perform_enqueued_jobs(queue: JobQueue | None = None) -> None:
    """Run every due job, then return: `queue.run_until_idle()` on the process-wide queue.

    Inside `capture_enqueued()` (and with no `queue` given) it runs the captured jobs instead.
    """
    if queue is None and _captures:
        _captures[-1].perform_all()
        return
    _current_queue(queue).run_until_idle()


async def aperform_enqueued_jobs(queue: JobQueue | None = None) -> None:
    """The async twin of `perform_enqueued_jobs`."""
    if queue is None and _captures:
        import anyio

        await anyio.to_thread.run_sync(_captures[-1].perform_all)
        return
    await _current_queue(queue).arun_until_idle()


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
        out.extend(
            EnqueuedJob(
                id=r.id, name=r.name, args=r.args if isinstance(r.args, dict) else {}, queue=r.queue,
                priority=r.priority, run_at=r.run_at, max_retries=r.max_retries, owner=r.owner,
                parent_id=r.parent_id, created_at=r.created_at, status=r.status,
            )
            for r in rows
        )
        if len(rows) < page:
            return out
