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
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import anyio
from blinker import ANY, NamedSignal
from pydantic import BaseModel

from . import clock, enqueuing, signals
from .context import JobContext
from .dispatch import emit_local, sender
from .enqueuing import ConfiguredJob, EnqueueRequest, is_async
from .errors import JobCancelled, JobNotFound, JobTimeout, WaitForChildren
from .execution import Attempt
from .handle import JobHandle
from .records import JobInfo, signal_payload

if TYPE_CHECKING:
    from .definition import BaseJob
    from .queue import JobQueue

__all__ = [
    "CapturedJobs",
    "EnqueuedJob",
    "InlineJobs",
    "MemoryJobHandle",
    "SignalLog",
    "aperform_enqueued_jobs",
    "assert_enqueued",
    "assert_not_enqueued",
    "assert_performed",
    "capture_enqueued",
    "enqueued_jobs",
    "inline",
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
    attempts: int = 0
    traceback: str | None = None
    checkpoint: Any = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def job_class(self) -> type[BaseJob[Any]]:
        """The registered job type (raises `UnknownJobError` with a hint if there is none)."""
        from .definition import registry

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

    @property
    def error(self) -> str | None:
        """`"Type: message"` of the error it failed with (or of its last failed attempt)."""
        return self.info().error

    @property
    def attempts(self) -> int:
        """Attempts started so far: 2 for a job that failed once and then succeeded."""
        return self.info().attempts

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
        return [MemoryJobHandle(job.id, job.name, self) for job in self._keep(requests)[0]]

    def _keep(self, requests: list[EnqueueRequest]) -> tuple[list[EnqueuedJob], list[EnqueuedJob]]:
        """Add the jobs; returns the job each request is handed (new, or the unique key's
        holder) and the jobs added."""
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
        return handed, added

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


# -- inline ----------------------------------------------------------------------------

_FINISHED = ("completed", "failed", "cancelled")
_WAIT_LIMIT = 100
"""How often a job may wait for children that have all finished before it is failed."""


def _emit_for(job: EnqueuedJob, event: str, status: str, data: dict[str, Any] | None = None,
              at: datetime | None = None) -> None:
    """Send an event of a job run inline: with the job's id and attempt, never stored."""
    emit_local(event, sender(job.name), signal_payload(
        event, job_id=job.id, name=job.name, queue=job.queue, owner=job.owner, status=status,
        attempt=job.attempts, at=at or clock.now(), data=data))


def _error_text(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _InlineContext(JobContext):
    """Progress, logs and checkpoints of a job run inline go straight to the signals."""

    def __init__(self, job: EnqueuedJob, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._job = job

    def on_report(self) -> None:
        progress, checkpoint, logs = self.take()
        if progress is not None:
            _emit_for(self._job, "progress", "running", progress)
        for entry in logs:
            _emit_for(self._job, "log", "running", entry, at=entry["at"])
        if checkpoint is not None:
            self._job.checkpoint = self.checkpoint_data  # kept for the next attempt, as the queue does
            _emit_for(self._job, "checkpoint", "running", {"checkpoint": self.checkpoint_data})


async def _perform_async(instance: Any, args: BaseModel, timeout: float | None, name: str) -> Any:
    deadline = None
    try:
        with anyio.fail_after(timeout) as deadline:
            return await instance.perform(args)
    except TimeoutError:
        if deadline is not None and deadline.cancelled_caught:  # ours, not the job's own TimeoutError
            raise JobTimeout(f"{name} timed out after {timeout or 0:g}s") from None
        raise


class InlineJobs(CapturedJobs):
    """The backend `inline()` swaps in: every job enqueued runs at once, in the caller.

    A `CapturedJobs` whose jobs run as they are enqueued, so everything `capture_enqueued()`
    offers works on it (`jobs[0].status`, `jobs.named(...)`, `enqueued_jobs()`, the
    assertions), and `assert_performed` sees the jobs that completed.
    """

    def __init__(self, *, scheduled: bool = True, raise_errors: bool = False,
                 max_args_bytes: int = 1_000_000) -> None:
        super().__init__(max_args_bytes=max_args_bytes)
        self.scheduled = scheduled
        self.raise_errors = raise_errors
        self._contexts: dict[int, JobContext] = {}
        self._waits: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"<InlineJobs {[f'{j.name}#{j.id} {j.status}' for j in self.jobs]}>"

    def _runs_now(self, job: EnqueuedJob) -> bool:
        return job.status == "pending" and (self.scheduled or clock.as_utc(job.run_at) <= clock.now())

    # -- the backend interface ----------------------------------------------------------

    def enqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]:
        """Keep the jobs and run each at once (a scheduled one too, unless `scheduled=False`)."""
        handed, _ = self._keep(requests)
        for job in handed:
            if self._runs_now(job):
                self._run(job)
        return [MemoryJobHandle(job.id, job.name, self) for job in handed]

    async def aenqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]:
        handed, _ = self._keep(requests)
        for job in handed:
            if self._runs_now(job):
                await self._arun(job)
        return [MemoryJobHandle(job.id, job.name, self) for job in handed]

    def cancel(self, job_id: int) -> str:
        """Cancel a job: a pending or waiting one at once, a running one (a job that cancels
        a job running in the same call stack) at its next `check_cancelled()`."""
        job = self._find(int(job_id))
        if job is None:
            raise JobNotFound(f"no inline job with id {job_id}")
        if job.status in ("pending", "waiting"):
            job.status, job.finished_at = "cancelled", clock.now()
            _emit_for(job, "cancelled", "cancelled", {"reason": "requested"})
        elif job.status == "running" and job.id in self._contexts:
            self._contexts[job.id].request_cancel("cancelled")
        return job.status

    def _perform_one(self, job: EnqueuedJob) -> Any:
        self._run(job)
        return job.result

    # -- one run: attempts until the job completes, fails, is cancelled or waits ----------

    def _begin(self, job: EnqueuedJob) -> tuple[type[BaseJob[Any]] | None, Any, BaseModel | BaseException]:
        """Start an attempt: the job's class, an instance and its arguments, or the error
        that says why there are none (an unknown type, arguments that no longer validate)."""
        import json

        from . import arguments

        job.attempts += 1
        job.status, job.started_at = "running", clock.now()
        context = _InlineContext(job, job_id=job.id, name=job.name, attempt=job.attempts, checkpoint=job.checkpoint,
                                 queue=job.queue, owner=job.owner, parent_id=job.parent_id)
        context.children_reader = lambda: [c.info() for c in self.jobs if c.parent_id == job.id]
        self._contexts[job.id] = context
        _emit_for(job, "started", "running", {"worker_id": "inline"})
        cls: type[BaseJob[Any]] | None = None
        try:
            cls = job.job_class
            return cls, cls(context), arguments.decode(job.name, cls.options.schema, json.dumps(job.args))
        except Exception as error:
            return cls, None, error

    def _settle(self, job: EnqueuedJob, cls: type[BaseJob[Any]] | None, attempt: Attempt) -> bool:
        """Record how an attempt ended, as the worker would; True when the job runs again now."""
        import json
        from datetime import timedelta

        from . import arguments
        from .retry import RetryDecision, decide

        self._contexts.pop(job.id, None)
        now = clock.now()
        if attempt.waiting:
            job.attempts -= 1  # not a spent attempt, as on the queue
            job.status = "waiting"
            _emit_for(job, "waiting", "waiting")
            if any(c.status not in _FINISHED for c in self.jobs if c.parent_id == job.id):
                return False  # runs again when its last child finishes
            self._waits[job.id] = self._waits.get(job.id, 0) + 1
            if self._waits[job.id] <= _WAIT_LIMIT:
                return True
            attempt.error = RuntimeError(f"wait_for_children() called {_WAIT_LIMIT} times with every child finished")
        error = attempt.error
        if error is None:
            try:
                encoded = arguments.encode_result(attempt.result)
            except Exception as raised:
                error, attempt.traceback = raised, traceback.format_exc()
            else:
                job.result = None if encoded is None else json.loads(encoded)
                job.status, job.error, job.traceback, job.finished_at = "completed", None, None, now
                _emit_for(job, "completed", "completed", {"result": job.result})
                return False
        if isinstance(error, JobCancelled):
            job.status, job.finished_at = "cancelled", now
            _emit_for(job, "cancelled", "cancelled", {"reason": "requested"})
            return False
        job.error, job.traceback = _error_text(error), attempt.traceback
        opts = cls.options if cls is not None else None
        try:
            decision = decide(error, attempt=job.attempts, max_retries=job.max_retries,
                              backoff=opts.backoff if opts else (lambda _a: 0.0),
                              retry_on=opts.retry_on if opts else (), discard_on=opts.discard_on if opts else ())
            run_at = (decision.at or now + timedelta(seconds=decision.delay)) if decision.retry else None
        except Exception as broken:  # a backoff that raises: fail, saying why
            job.error = f"{job.error} (not retried: its backoff failed: {_error_text(broken)})"
            decision, run_at = RetryDecision(False, reason="backoff failed"), None
        if run_at is not None:
            job.status, job.run_at = "pending", run_at
            _emit_for(job, "retrying", "pending", {"error": job.error, "run_at": run_at.isoformat(),
                                                   "reason": decision.reason, "traceback": job.traceback})
            return self._runs_now(job)
        job.status, job.finished_at = "failed", now
        _emit_for(job, "failed", "failed", {"error": job.error, "traceback": job.traceback,
                                            "reason": decision.reason})
        if self.raise_errors:
            raise error
        return False

    def _parent_to_resume(self, job: EnqueuedJob) -> EnqueuedJob | None:
        """The waiting parent whose last unfinished child `job` was."""
        parent = self._find(job.parent_id) if job.parent_id is not None and job.status in _FINISHED else None
        if parent is None or parent.status != "waiting":
            return None
        if any(c.status not in _FINISHED for c in self.jobs if c.parent_id == parent.id):
            return None
        return parent

    def _run(self, job: EnqueuedJob) -> None:
        while True:
            cls, instance, args = self._begin(job)
            attempt = Attempt(error=args) if isinstance(args, BaseException) else self._call(cls, instance, args)
            if not self._settle(job, cls, attempt):
                break
        parent = self._parent_to_resume(job)
        if parent is not None:
            self._run(parent)

    async def _arun(self, job: EnqueuedJob) -> None:
        while True:
            cls, instance, args = self._begin(job)
            if isinstance(args, BaseException):
                attempt = Attempt(error=args)
            else:
                attempt = await self._acall(cls, instance, args)
            if not self._settle(job, cls, attempt):
                break
        parent = self._parent_to_resume(job)
        if parent is not None:
            await self._arun(parent)

    @staticmethod
    def _call(cls: Any, instance: Any, args: BaseModel) -> Attempt:
        """One attempt from sync code: an async job on an event loop of its own (on another
        thread when this one runs a loop already), a sync one here."""
        import contextvars
        from functools import partial

        from .now import _in_fresh_thread, _loop_running

        try:
            if is_async(cls.perform):
                call = partial(anyio.run, _perform_async, instance, args, cls.options.timeout, cls.options.name,
                               backend_options=clock.backend_options())
                result = _in_fresh_thread(call) if _loop_running() else call()
            else:
                result = contextvars.copy_context().run(instance.perform, args)
        except WaitForChildren:
            return Attempt(waiting=True)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # as on the worker: any of them ends this job only
            return Attempt(error=error, traceback=traceback.format_exc())
        return Attempt(result=result)

    @staticmethod
    async def _acall(cls: Any, instance: Any, args: BaseModel) -> Attempt:
        """One attempt from async code: an async job on the caller's loop, a sync one on a thread."""
        import contextvars

        try:
            if is_async(cls.perform):
                result = await _perform_async(instance, args, cls.options.timeout, cls.options.name)
            else:
                result = await anyio.to_thread.run_sync(contextvars.copy_context().run, instance.perform, args)
        except WaitForChildren:
            return Attempt(waiting=True)
        except (KeyboardInterrupt, anyio.get_cancelled_exc_class()):
            raise
        except BaseException as error:
            return Attempt(error=error, traceback=traceback.format_exc())
        return Attempt(result=result)


F = TypeVar("F", bound=Callable[..., Any])


class inline:  # a lower-case class: used as `with inline():` and `@inline()`, like a function
    """Run every job enqueued inside the block at once, in the caller, with no database.

        with inline() as jobs:
            handle = SendEmail.perform_later(to="a@example.com")
        assert handle.status == "completed" and handle.result == {"sent": True}

    Each job goes through the same steps as on the queue, in the caller: arguments validated
    and encoded as for the database, then `perform` (an `async def` one too), with the job's
    retry policy (a failed attempt is retried at once, without waiting out its backoff, until
    it succeeds or its attempts are spent), its signals (with the job's id and attempt),
    `self.progress`/`self.log`/`self.checkpoint`, children (enqueued from inside, they run
    inline too; `wait_for_children()` resumes the parent once they are done). `perform_later`
    returns a `MemoryJobHandle` whose status is final: `completed`, `failed` (with `error`),
    or `cancelled`; `attempts` counts them.

    - `scheduled=True` (the default): jobs enqueued for later (`perform_in`, `perform_at`,
      `wait=`) run at once too, as in Rails' inline adapter. `scheduled=False` keeps them
      (and retries with a backoff) pending until their time: move the clock with
      `perform_enqueued_jobs(until=...)` under freezegun.
    - `raise_errors=False` (the default): a job that fails for good is recorded as `failed`
      and `perform_later` returns as usual, as in production. `raise_errors=True` raises its
      error from `perform_later` instead.

    A context manager (`with inline() as jobs:` gives the `InlineJobs` list) and a decorator
    of sync and `async def` test functions alike. Process-wide while it lasts (like
    `capture_enqueued()`), restored on exit.
    """

    def __init__(self, *, scheduled: bool = True, raise_errors: bool = False,
                 max_args_bytes: int = 1_000_000) -> None:
        self.scheduled = scheduled
        self.raise_errors = raise_errors
        self.max_args_bytes = max_args_bytes
        self._active: list[tuple[InlineJobs, Callable[[], enqueuing.Backend] | None]] = []

    def __enter__(self) -> InlineJobs:
        jobs = InlineJobs(scheduled=self.scheduled, raise_errors=self.raise_errors,
                          max_args_bytes=self.max_args_bytes)
        previous = enqueuing.set_backend(lambda: jobs)
        _captures.append(jobs)
        self._active.append((jobs, previous))
        return jobs

    def __exit__(self, *exc: object) -> None:
        jobs, previous = self._active.pop()
        _captures.remove(jobs)
        enqueuing.set_backend(previous)

    async def __aenter__(self) -> InlineJobs:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, fn: F) -> F:
        import functools
        import inspect

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def arun(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await fn(*args, **kwargs)

            return cast(F, arun)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return cast(F, run)


# -- the real queue ------------------------------------------------------------------


def _current_queue(queue: JobQueue | None) -> JobQueue:
    from .queue import JobQueue

    return queue if queue is not None else JobQueue.get()


def _move_clock(to: datetime) -> None:
    """Move freezegun's frozen clock to `to`; a clear error when time is not frozen."""
    try:
        from freezegun.api import freeze_factories
    except ImportError:  # pragma: no cover - freezegun is a test dependency
        freeze_factories = []
    if not freeze_factories:
        raise RuntimeError(
            "perform_enqueued_jobs(until=...) moves time forward, which needs a frozen clock: "
            "call it inside freezegun's freeze_time(...) (or leave `until` out to run only what is due now)")
    freeze_factories[-1].move_to(to)


def _next_run_at(queue: JobQueue | None, limit: datetime) -> datetime | None:
    """The earliest `run_at` of a pending job that is still to come, up to `limit`."""
    now = clock.now()
    pending = _captures[-1].pending if queue is None and _captures else enqueued_jobs(job_queue=_current_queue(queue))
    upcoming = [clock.as_utc(j.run_at) for j in pending if now < clock.as_utc(j.run_at) <= limit]
    return min(upcoming, default=None)


def perform_enqueued_jobs(queue: JobQueue | None = None, *, until: datetime | None = None) -> None:
    """Run every due job, then return: `queue.run_until_idle()` on the process-wide queue.

    Inside `capture_enqueued()` or `inline()` (and with no `queue` given) it runs the
    captured jobs instead: all the pending ones, scheduled ones included.

    With `until=` (a datetime; naive is UTC) it moves through time under freezegun: it runs
    what is due, moves the frozen clock to the next job's `run_at` (a scheduled job, a
    retry's backoff), runs again, and so on up to `until`, where it leaves the clock.
    Jobs due after `until` stay pending. It needs `freeze_time(...)` around it.
    """
    if until is None:
        if queue is None and _captures:
            _captures[-1].perform_all()
            return
        _current_queue(queue).run_until_idle()
        return
    limit = clock.as_utc(until)
    while True:
        if queue is None and _captures:
            _captures[-1].perform_due()
        else:
            _current_queue(queue).run_until_idle()
        upcoming = _next_run_at(queue, limit)
        if upcoming is None:
            break
        _move_clock(upcoming)
    if clock.now() < limit:
        _move_clock(limit)


async def aperform_enqueued_jobs(queue: JobQueue | None = None, *, until: datetime | None = None) -> None:
    """The async twin of `perform_enqueued_jobs` (with `until=`, freeze time with
    `freeze_time(..., real_asyncio=True)` so the event loop's own clock keeps going)."""
    import anyio

    if until is None:
        if queue is None and _captures:
            await anyio.to_thread.run_sync(_captures[-1].perform_all)
            return
        await _current_queue(queue).arun_until_idle()
        return
    limit = clock.as_utc(until)
    while True:
        if queue is None and _captures:
            await anyio.to_thread.run_sync(_captures[-1].perform_due)
        else:
            await _current_queue(queue).arun_until_idle()
        upcoming = await anyio.to_thread.run_sync(_next_run_at, queue, limit)
        if upcoming is None:
            break
        _move_clock(upcoming)
    if clock.now() < limit:
        _move_clock(limit)


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


# -- assertions ------------------------------------------------------------------------

ArgsMatcher = Mapping[str, Any] | BaseModel | Callable[[dict[str, Any]], bool]
"""What `args=` of the assertions takes: a dict the job's arguments contain, a model
they equal, or a predicate of the arguments dict."""

_SHOWN = 20


def _jobs_from(source: JobQueue | CapturedJobs | None, status: str | None = None) -> list[EnqueuedJob]:
    """Every job of the innermost capture (or `inline()`), else of the queue, oldest first."""
    if source is None and _captures:
        source = _captures[-1]
    if isinstance(source, CapturedJobs):
        return [j for j in source.jobs if status is None or j.status == status]
    queue = _current_queue(source)
    out: list[EnqueuedJob] = []
    page = 1000
    while True:
        rows = queue.list_jobs(status=status, limit=page, offset=len(out), order="oldest")
        out.extend(_from_info(r) for r in rows)
        if len(rows) < page:
            return out


def _jsonable(value: Any) -> Any:
    from pydantic_core import to_jsonable_python

    try:
        return to_jsonable_python(value)
    except Exception:  # compared as given
        return value


class _Criteria:
    def __init__(self, job: str | type[BaseJob[Any]] | None, args: ArgsMatcher | None, queue: str | None,
                 at: datetime | None) -> None:
        self.name = None if job is None else (job if isinstance(job, str) else job.options.name)
        self.args = args
        self.queue = queue
        self.at = None if at is None else clock.as_utc(at)
        self.exact: dict[str, Any] | None = None
        self.subset: dict[str, Any] | None = None
        if isinstance(args, BaseModel):
            self.exact = args.model_dump(mode="json")
        elif isinstance(args, Mapping):
            self.subset = {str(k): _jsonable(v) for k, v in args.items()}
        elif args is not None and not callable(args):
            raise TypeError(f"args= is a dict, a pydantic model or a predicate, not {args!r}")

    def matches(self, job: EnqueuedJob) -> bool:
        if self.name is not None and job.name != self.name:
            return False
        if self.queue is not None and job.queue != self.queue:
            return False
        if self.at is not None and abs((clock.as_utc(job.run_at) - self.at).total_seconds()) >= 1:
            return False
        if self.exact is not None:
            return job.args == self.exact
        if self.subset is not None:
            return all(key in job.args and job.args[key] == value for key, value in self.subset.items())
        if callable(self.args):
            return bool(self.args(dict(job.args)))
        return True

    def __str__(self) -> str:
        parts = [f"{self.name} job" if self.name else "job"]
        if self.exact is not None:
            parts.append(f"with args == {self.exact!r}")
        elif self.subset is not None:
            parts.append(f"with args {self.subset!r}")
        elif self.args is not None:
            parts.append(f"with args matching {getattr(self.args, '__name__', repr(self.args))}")
        if self.queue is not None:
            parts.append(f"on queue {self.queue!r}")
        if self.at is not None:
            parts.append(f"at {self.at.isoformat(timespec='seconds')}")
        return " ".join(parts)


def _listing(title: str, jobs: Sequence[EnqueuedJob]) -> str:
    if not jobs:
        return f"{title}: none"
    lines = [f"  {j.describe()}" + (f" error={j.error!r}" if j.error else "") for j in jobs[:_SHOWN]]
    if len(jobs) > _SHOWN:
        lines.append(f"  ... and {len(jobs) - _SHOWN} more")
    return f"{title} ({len(jobs)}):\n" + "\n".join(lines)


def _check(verb: str, status: str | None, job: str | type[BaseJob[Any]] | None, args: ArgsMatcher | None,
           queue: str | None, at: datetime | None, count: int | None,
           source: JobQueue | CapturedJobs | None) -> list[EnqueuedJob]:
    criteria = _Criteria(job, args, queue, at)
    everything = _jobs_from(source)
    found = [j for j in everything if (status is None or j.status == status) and criteria.matches(j)]
    if (bool(found) if count is None else len(found) == count):
        return found
    if count is None:
        head = f"no {criteria} was {verb}"
    else:
        head = f"expected {count} {verb} {criteria}{'s' if count != 1 else ''}, found {len(found)}"
    others = [j for j in everything if j not in found]
    parts = [head]
    if found:
        parts.append(_listing("matching", found))
    instead = "enqueued instead" if verb == "enqueued" else "jobs instead (with their status)"
    parts.append(_listing(instead if not found else "other jobs", others))
    raise AssertionError("\n".join(parts))


def assert_enqueued(job: str | type[BaseJob[Any]] | None = None, args: ArgsMatcher | None = None, *,
                    queue: str | None = None, at: datetime | None = None, count: int | None = None,
                    job_queue: JobQueue | CapturedJobs | None = None) -> list[EnqueuedJob]:
    """Assert that a job was enqueued (whatever its status now); returns the matching jobs.

        with capture_enqueued():
            signup("a@example.com")
            assert_enqueued(SendEmail, args={"to": "a@example.com"}, queue="mail")

    - `job`: the job class or its name (None: any job).
    - `args`: a dict the job's arguments contain (other keys are not compared; values as
      they are stored, so a datetime matches its ISO form), a pydantic model they equal,
      or a predicate of the arguments dict: `args=lambda a: a["to"].endswith("@example.com")`.
    - `queue`: the queue name; `at`: the `run_at` (within a second; naive is UTC).
    - `count`: exactly that many must match (default: at least one).

    Reads the innermost `capture_enqueued()` or `inline()`, else the process-wide queue's
    database (or `job_queue`: a `JobQueue` or a `CapturedJobs`). The failure message lists
    the jobs that were enqueued instead.
    """
    return _check("enqueued", None, job, args, queue, at, count, job_queue)


def assert_not_enqueued(job: str | type[BaseJob[Any]] | None = None, args: ArgsMatcher | None = None, *,
                        queue: str | None = None, at: datetime | None = None,
                        job_queue: JobQueue | CapturedJobs | None = None) -> None:
    """Assert that no job matching these criteria (as for `assert_enqueued`) was enqueued."""
    criteria = _Criteria(job, args, queue, at)
    found = [j for j in _jobs_from(job_queue) if criteria.matches(j)]
    if found:
        raise AssertionError(f"expected no {criteria} to be enqueued\n{_listing('found', found)}")


def assert_performed(job: str | type[BaseJob[Any]] | None = None, args: ArgsMatcher | None = None, *,
                     queue: str | None = None, at: datetime | None = None, count: int | None = None,
                     job_queue: JobQueue | CapturedJobs | None = None) -> list[EnqueuedJob]:
    """Assert that a job was performed: it ran and `completed` (on the queue, under
    `inline()`, or by `jobs.perform_all()`); the criteria are `assert_enqueued`'s. The
    failure message lists the other jobs with their status (and error, for failed ones)."""
    return _check("performed", "completed", job, args, queue, at, count, job_queue)
