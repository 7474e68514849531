"""Running jobs as they are enqueued, in the caller, with no database: `inline()` and the
`InlineJobs` backend it swaps in.

    with inline() as jobs:
        handle = SendEmail.perform_later(to="a@example.com")
    assert handle.status == "completed"
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
from pydantic import BaseModel

from .. import callbacks, clock, enqueuing, middleware
from ..context import JobContext
from ..definition import job_is_async
from ..emit import emit_local, sender
from ..enqueuing import EnqueueRequest
from ..errors import JobCancelled, JobNotFound, JobTimeout, WaitForChildren
from ..execution import Attempt
from ..handle import JobHandle
from ..records import signal_payload
from .capture import CapturedJobs, EnqueuedJob, MemoryJobHandle, _captures

if TYPE_CHECKING:
    from ..definition import BaseJob


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


def _timeout(cls: Any, meta: str | None) -> float | None:
    """The job's own timeout (`Job.set(timeout=...)`), else its type's."""
    own = middleware.loads_meta(meta).get("timeout")
    return float(own) if isinstance(own, int | float) and not isinstance(own, bool) and own > 0 else cls.options.timeout


async def _perform_async(instance: Any, args: BaseModel, timeout: float | None, name: str,
                         meta: str | None = None) -> Any:
    deadline = None
    try:
        with anyio.fail_after(timeout) as deadline:
            if callbacks.of(type(instance)).on_perform or middleware.wraps_aperform():
                return await middleware.arun_perform(middleware.Perform(instance, args, meta),
                                                     callbacks.aperform_call(instance, args))
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
        self._meta: dict[int, str | None] = {}  # each job's meta (its own timeout, a trace context)
        self._waits: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"<InlineJobs {[f'{j.name}#{j.id} {j.status}' for j in self.jobs]}>"

    def _runs_now(self, job: EnqueuedJob) -> bool:
        return job.status == "pending" and (self.scheduled or clock.as_utc(job.run_at) <= clock.now())

    # -- the backend interface ----------------------------------------------------------

    def enqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]:
        """Keep the jobs and run each at once (a scheduled one too, unless `scheduled=False`)."""
        handed, _ = self._keep(requests)
        self._remember(handed, requests)
        for job in handed:
            if self._runs_now(job):
                self._run(job)
        return [MemoryJobHandle(job.id, job.name, self) for job in handed]

    async def aenqueue(self, requests: list[EnqueueRequest], session: Any = None) -> list[JobHandle]:
        handed, _ = self._keep(requests)
        self._remember(handed, requests)
        for job in handed:
            if self._runs_now(job):
                await self._arun(job)
        return [MemoryJobHandle(job.id, job.name, self) for job in handed]

    def _remember(self, handed: list[EnqueuedJob], requests: list[EnqueueRequest]) -> None:
        for job, request in zip(handed, requests, strict=True):
            self._meta.setdefault(job.id, request.meta)

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

        from .. import arguments

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

        from .. import arguments
        from ..retry import RetryDecision, decide

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
            attempt = (Attempt(error=args) if isinstance(args, BaseException)
                       else self._call(cls, instance, args, self._meta.get(job.id)))
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
                attempt = await self._acall(cls, instance, args, self._meta.get(job.id))
            if not self._settle(job, cls, attempt):
                break
        parent = self._parent_to_resume(job)
        if parent is not None:
            await self._arun(parent)

    @staticmethod
    def _call(cls: Any, instance: Any, args: BaseModel, meta: str | None = None) -> Attempt:
        """One attempt from sync code: an async job on an event loop of its own (on another
        thread when this one runs a loop already), a sync one here."""
        import contextvars
        from functools import partial

        from ..inline import _in_fresh_thread, _loop_running

        try:
            if job_is_async(cls):
                call = partial(anyio.run, _perform_async, instance, args, _timeout(cls, meta), cls.options.name,
                               meta, backend_options=clock.backend_options())
                result = _in_fresh_thread(call) if _loop_running() else call()
            elif callbacks.of(cls).on_perform or middleware.wraps_perform():
                result = contextvars.copy_context().run(
                    middleware.run_perform, middleware.Perform(instance, args, meta),
                    callbacks.perform_call(instance, args))
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
    async def _acall(cls: Any, instance: Any, args: BaseModel, meta: str | None = None) -> Attempt:
        """One attempt from async code: an async job on the caller's loop, a sync one on a thread."""
        import contextvars

        try:
            if job_is_async(cls):
                result = await _perform_async(instance, args, _timeout(cls, meta), cls.options.name, meta)
            elif callbacks.of(cls).on_perform or middleware.wraps_perform():
                result = await anyio.to_thread.run_sync(
                    contextvars.copy_context().run, middleware.run_perform, middleware.Perform(instance, args, meta),
                    callbacks.perform_call(instance, args))
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
