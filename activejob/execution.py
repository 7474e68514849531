"""Running one claimed job, as a pipeline:

resolve the job type → rebuild its arguments → perform under its cancel scope and
timeout → turn what happened into an `Outcome` for the store.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
from anyio import CancelScope
from pydantic import BaseModel

from . import arguments, callbacks, clock, middleware, upcasting
from .context import JobContext
from .definition import BaseJob, registry
from .errors import JobCancelled, JobTimeout, WaitForChildren
from .logs import job_fields, running_job
from .records import Claimed
from .retry import RetryDecision, decide
from .store import Outcome, Store
from .store.values import storable

log = logging.getLogger("activejob.worker")


@dataclass(eq=False)
class Running:
    """A job in flight in this worker."""

    job: Claimed
    context: JobContext
    scope: CancelScope | None = None  # an async job's, to cancel it (a thread cannot be)
    sync: bool = False  # runs on the worker's sync-job threads (a `def perform`)
    stop_reason: str | None = None  # cancel | lease_lost | shutdown | timeout
    # A job's outcome is settled once: a sync job's by its thread when perform returns, or
    # by the worker when it stops waiting (timeout, cancel grace), whichever comes second
    # is dropped; any job's when its outcome goes to the recorder. Settled, it has nothing
    # left to stop while the outcome is written.
    settled: bool = False
    timer: Any = None  # the loop's handle for a sync job's timeout


def job_class(job: Claimed) -> type[BaseJob[Any]] | None:
    cls: type[BaseJob[Any]] | None = registry.get(job.name)
    return cls


def _about(job: Claimed) -> dict[str, Any]:
    # These lines are also logged from the worker's loop (timeouts, cancel graces), outside
    # the job's attempt: they name the job themselves.
    return job_fields(job.id, job.name, job.attempts)


def _error_text(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _failure(job: Claimed, error: BaseException, tb: str | None, cls: type[BaseJob[Any]] | None) -> Outcome:
    opts = cls.options if cls is not None else None
    message = storable(_error_text(error))
    tb = storable(tb)
    try:
        decision = decide(
            error, attempt=job.attempts, max_retries=job.max_retries,
            backoff=opts.backoff if opts else (lambda _a: 0.0),
            retry_on=opts.retry_on if opts else (), discard_on=opts.discard_on if opts else (),
        )
        run_at = (decision.at or clock.now() + timedelta(seconds=decision.delay)) if decision.retry else None
    except Exception as broken:  # a backoff that raises, or gives no usable time: fail, saying why
        message = storable(f"{message} (not retried: its backoff failed: {_error_text(broken)})")
        decision, run_at = RetryDecision(False, reason="backoff failed"), None
    if run_at is not None:
        log.warning("%s #%s attempt %s failed (%s); retrying at %s", job.name, job.id, job.attempts,
                    message, run_at.isoformat(timespec="seconds"), extra=_about(job))
        return Outcome(job.id, job.lease_token, "pending", "retrying", error=message, traceback=tb,
                       run_at=run_at, data={"traceback": tb, "reason": decision.reason})
    log.error("%s #%s failed after %s attempt(s): %s", job.name, job.id, job.attempts, message, extra=_about(job))
    return Outcome(job.id, job.lease_token, "failed", "failed", error=message, traceback=tb,
                   data={"traceback": tb, "reason": decision.reason})


@dataclass(slots=True)
class Attempt:
    """What one call of `perform` did, before it is judged."""

    result: Any = None
    error: BaseException | None = None
    traceback: str | None = None
    waiting: bool = False


def timeout_of(job: Claimed, cls: type[BaseJob[Any]]) -> float | None:
    """The attempt's timeout in seconds: the job's own (`Job.set(timeout=...)`, kept in its
    meta), else its type's."""
    if job.meta and '"timeout"' in job.meta:
        own = middleware.loads_meta(job.meta).get("timeout")
        if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
            return float(own)
    return cls.options.timeout


def _prepare(entry: Running) -> tuple[type[BaseJob[Any]], BaseModel] | Outcome:
    """The job's class and its arguments, or the failure that says why there are none."""
    job = entry.job
    cls = job_class(job)
    try:
        if cls is None:
            cls = registry[job.name]  # raises the readable "unknown job" error
        opts = cls.options
        text = job.args
        if (job.args_version or 1) != opts.version:  # stored by older code: bring them up to date
            text = json.dumps(upcasting.upcast(job.name, json.loads(text), stored=job.args_version,
                                               version=opts.version, upcasters=opts.upcasters))
        return cls, arguments.decode(job.name, opts.schema, text)
    except Exception as invalid:  # unknown type, corrupt row, args that no longer validate
        return _failure(job, invalid, None, cls)


def _judge(entry: Running, cls: type[BaseJob[Any]], attempt: Attempt, interrupted: bool) -> Outcome | None:
    """The outcome of an attempt; None when the lease was lost (nothing to write)."""
    job = entry.job
    # A job told its lease was lost that finished all the same is written as it ended
    # (fenced: if another worker holds the job now, the write changes nothing).
    finished_anyway = entry.stop_reason == "lease_lost" and not interrupted and not attempt.waiting
    if (entry.stop_reason is not None or interrupted) and not finished_anyway:
        return stopped(entry)
    if attempt.waiting:
        # Not a spent attempt: the job runs again once its children have finished.
        return Outcome(job.id, job.lease_token, "waiting", "waiting", refund_attempt=True)
    if attempt.error is not None:
        return _failure(job, attempt.error, attempt.traceback, cls)
    try:
        encoded = arguments.encode_result(attempt.result)
    except Exception as raised:
        return _failure(job, raised, traceback.format_exc(), cls)
    return Outcome(job.id, job.lease_token, "completed", "completed", result=encoded)


def crashed(entry: Running, error: BaseException) -> Outcome:
    """The failure recorded when running an attempt itself went wrong (a bug of ours):
    the job fails, saying so, rather than stay running with nobody to finish it."""
    job = entry.job
    text = storable(f"InternalError: running the job failed: {_error_text(error)}")
    return Outcome(job.id, job.lease_token, "failed", "failed", error=text,
                   traceback=storable("".join(traceback.format_exception(error))), data={"reason": "internal error"})


def timed_out(entry: Running, cls: type[BaseJob[Any]]) -> Outcome:
    job = entry.job
    entry.context.request_cancel("timeout")  # a sync job's thread can still stop itself
    return _failure(job, JobTimeout(f"{job.name} #{job.id} timed out after {timeout_of(job, cls) or 0:g}s"), None,
                    cls)


async def perform(entry: Running) -> Outcome | None:
    """Run one attempt of an async job on the worker's loop, under the job's cancel scope
    and timeout, and say how it ended; None when the lease was lost (nothing to write)."""
    with running_job(entry.job.id, entry.job.name, entry.job.attempts):  # its task's logs name it
        return await _perform(entry)


async def _perform(entry: Running) -> Outcome | None:
    prepared = _prepare(entry)
    if isinstance(prepared, Outcome):
        return prepared
    cls, args = prepared
    instance = cls(entry.context)
    attempt = Attempt()
    scope = entry.scope = entry.scope or CancelScope()
    timeout = timeout_of(entry.job, cls)
    with scope:
        deadline: CancelScope | None = None
        try:
            # No deadline scope without a timeout: an attempt's scopes are much of what an
            # async no-op costs the worker's loop.
            with anyio.fail_after(timeout) if timeout is not None else contextlib.nullcontext() as deadline:
                if callbacks.of(cls).on_perform or middleware.wraps_aperform():
                    attempt.result = await _hooked(entry, instance, args)
                else:
                    attempt.result = await instance.perform(args)
        except TimeoutError as raised:
            # Our deadline, as opposed to a TimeoutError raised by the job's own code.
            if deadline is not None and deadline.cancelled_caught:
                return timed_out(entry, cls)
            attempt.error, attempt.traceback = raised, traceback.format_exc()
        except JobCancelled:
            entry.stop_reason = entry.stop_reason or "cancel"
        except WaitForChildren:
            attempt.waiting = True
        except anyio.get_cancelled_exc_class() as raised:
            if scope.cancel_called or (deadline is not None and deadline.cancel_called):
                raise  # ours: the scopes above take it
            attempt.error, attempt.traceback = raised, traceback.format_exc()  # the job's own
        except BaseException as raised:
            # SystemExit, KeyboardInterrupt, GeneratorExit... raised by a job end that job,
            # not the worker: only the worker's own signals stop the worker.
            attempt.error, attempt.traceback = raised, traceback.format_exc()
    return _judge(entry, cls, attempt, scope.cancelled_caught)


async def _hooked(entry: Running, instance: BaseJob[Any], args: BaseModel) -> Any:
    """The attempt through the middleware and the job's callbacks."""
    return await middleware.arun_perform(middleware.Perform(instance, args, entry.job.meta),
                                         callbacks.aperform_call(instance, args))


def perform_in_thread(entry: Running) -> Outcome | None:
    """Run one attempt of a sync job in the calling thread (one of the worker's sync-job
    threads) and say how it ended. Timeouts and cancel graces are the worker's to keep:
    a thread cannot be interrupted, so the worker stops waiting and settles the outcome
    itself; what this returns then is dropped."""
    with running_job(entry.job.id, entry.job.name, entry.job.attempts):  # this thread's logs name it
        return _perform_in_thread(entry)


def _perform_in_thread(entry: Running) -> Outcome | None:
    prepared = _prepare(entry)
    if isinstance(prepared, Outcome):
        return prepared
    cls, args = prepared
    attempt = Attempt()
    try:
        # A context of its own per attempt: context variables a job sets do not leak into
        # the next job this thread runs (as with a task per async job).
        instance = cls(entry.context)
        if callbacks.of(cls).on_perform or middleware.wraps_perform():
            perform = middleware.Perform(instance, args, entry.job.meta)
            attempt.result = contextvars.copy_context().run(
                middleware.run_perform, perform, callbacks.perform_call(instance, args))
        else:
            attempt.result = contextvars.copy_context().run(instance.perform, args)
    except JobCancelled:
        entry.stop_reason = entry.stop_reason or "cancel"
    except WaitForChildren:
        attempt.waiting = True
    except BaseException as raised:  # any of them ends this job only (see perform)
        attempt.error, attempt.traceback = raised, traceback.format_exc()
    if entry.settled:
        # The worker stopped waiting (a timeout, a cancel grace spent) and wrote the
        # outcome then: judging this late end would only log a second, false one.
        return None
    return _judge(entry, cls, attempt, False)


def stopped(entry: Running) -> Outcome | None:
    job = entry.job
    reason = entry.stop_reason or "cancel"
    if reason == "lease_lost":
        log.warning("%s #%s: this worker lost the job's lease; it stopped and wrote nothing", job.name, job.id,
                    extra=_about(job))
        return None
    if reason == "shutdown":
        log.info("%s #%s interrupted by shutdown; back to pending (cancelled instead if a cancel was asked)",
                 job.name, job.id, extra=_about(job))
        return Outcome(job.id, job.lease_token, "pending", "requeued", run_at=clock.now(),
                       refund_attempt=True, data={"reason": "shutdown"})
    log.info("%s #%s cancelled", job.name, job.id, extra=_about(job))
    return Outcome(job.id, job.lease_token, "cancelled", "cancelled", data={"reason": "requested"})


def context_for(job: Claimed, store: Store | None = None) -> JobContext:
    checkpoint = None
    if job.checkpoint:
        try:
            checkpoint = json.loads(job.checkpoint)
        except ValueError:
            checkpoint = None
    context = JobContext(job_id=job.id, name=job.name, attempt=job.attempts, checkpoint=checkpoint,
                         queue=job.queue, owner=job.owner, parent_id=job.parent_id)
    context.batch_id = job.batch_id if job.batch_id is not None else _called_back_by(job)
    if store is not None:
        context.children_reader = lambda: store.list_jobs(parent_id=job.id, order="oldest", limit=10_000)
        batch_id = context.batch_id
        if batch_id is not None:
            context.batch_reader = lambda: store.get_batch(batch_id)
    return context


def _called_back_by(job: Claimed) -> int | None:
    """The batch a batch callback was enqueued by (kept in its meta), or None."""
    if not job.meta or '"batch"' not in job.meta:
        return None
    batch = middleware.loads_meta(job.meta).get("batch")
    return batch if isinstance(batch, int) and not isinstance(batch, bool) else None
