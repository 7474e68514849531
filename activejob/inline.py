"""`perform_now`: run a job in the caller, with no database, firing the same signals."""

from __future__ import annotations

import asyncio
import threading
import traceback
from datetime import datetime
from functools import partial
from typing import Any

import anyio
from pydantic import BaseModel

from . import callbacks, clock, middleware
from .context import JobContext
from .definition import job_is_async
from .emit import emit_local
from .errors import ActiveJobError, JobTimeout, WaitForChildren
from .records import signal_payload


def _emit(cls: Any, event: str, status: str, owner: str | None, data: dict[str, Any] | None = None,
          at: datetime | None = None) -> None:
    """Send an event of a job run here: there is no row, so no job id or event id."""
    opts = cls.options
    emit_local(event, cls, signal_payload(event, job_id=None, name=opts.name, queue=opts.queue, owner=owner,
                                          status=status, attempt=1, at=at or clock.now(), data=data))


class _LocalContext(JobContext):
    """Reports go straight to the signals, as they happen."""

    def __init__(self, cls: type, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cls = cls

    def on_report(self) -> None:
        progress, checkpoint, logs = self.take()
        if progress is not None:
            _emit(self._cls, "progress", "running", self.owner, progress)
        for entry in logs:
            _emit(self._cls, "log", "running", self.owner, entry, at=entry["at"])
        if checkpoint is not None:
            _emit(self._cls, "checkpoint", "running", self.owner, {"checkpoint": self.checkpoint_data})


def _start(cls: Any, owner: str | None) -> Any:
    opts = cls.options
    ctx = _LocalContext(cls, job_id=None, name=opts.name, attempt=1, queue=opts.queue, owner=owner)
    _emit(cls, "started", "running", owner)
    return cls(ctx)


def _end(cls: Any, owner: str | None, error: BaseException | None, result: Any = None) -> None:
    if error is None:
        _emit(cls, "completed", "completed", owner, {"result": result})
    else:
        _emit(cls, "failed", "failed", owner, {"error": f"{type(error).__name__}: {error}",
                                               "traceback": "".join(traceback.format_exception(error))})


async def _call_async(instance: Any, args: BaseModel, timeout: float | None) -> Any:
    # move_on_after, not fail_after: a TimeoutError of the job's own code (an HTTP
    # client's) stays itself, and only the job's deadline is a JobTimeout, as on a worker.
    with anyio.move_on_after(timeout):
        if callbacks.of(type(instance)).on_perform or middleware.wraps_aperform():
            return await middleware.arun_perform(middleware.Perform(instance, args),
                                                 callbacks.aperform_call(instance, args))
        return await instance.perform(args)
    raise JobTimeout(f"{type(instance).options.name} timed out after {timeout:g}s")


def _readable(cls: Any, error: BaseException) -> BaseException:
    """What the caller gets for what a job raised here: the job's own errors as they are;
    a wait for children, which only a worker can do, as an error that says so."""
    if isinstance(error, WaitForChildren):
        return ActiveJobError(
            f"{cls.options.name}: wait_for_children() needs a worker, and perform_now runs the job "
            "with no queue; test fan-out with perform_later and queue.run_until_idle(), or "
            "activejob.testing.inline()")
    return error


def _call(instance: Any, args: BaseModel) -> Any:
    if callbacks.of(type(instance)).on_perform or middleware.wraps_perform():
        return middleware.run_perform(middleware.Perform(instance, args), callbacks.perform_call(instance, args))
    return instance.perform(args)


def run_now(cls: Any, args: BaseModel, *, owner: str | None = None, timeout: float | None = None) -> Any:
    instance = _start(cls, owner)
    try:
        if job_is_async(cls):
            call = partial(anyio.run, _call_async, instance, args, timeout or cls.options.timeout,
                           backend_options=clock.backend_options())
            result = _in_fresh_thread(call) if _loop_running() else call()
        else:
            result = _call(instance, args)
    except BaseException as raised:
        error = _readable(cls, raised)
        _end(cls, owner, error)
        if error is raised:
            raise
        raise error from None
    _end(cls, owner, None, result)
    return result


async def arun_now(cls: Any, args: BaseModel, *, owner: str | None = None, timeout: float | None = None) -> Any:
    instance = _start(cls, owner)
    try:
        if job_is_async(cls):
            result = await _call_async(instance, args, timeout or cls.options.timeout)
        else:
            result = await anyio.to_thread.run_sync(_call, instance, args)
    except BaseException as raised:
        error = _readable(cls, raised)
        _end(cls, owner, error)
        if error is raised:
            raise
        raise error from None
    _end(cls, owner, None, result)
    return result


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _in_fresh_thread(call: Any) -> Any:
    # perform_now from inside a running event loop: an async perform needs a loop of
    # its own, so it runs to completion on another thread (prefer `aperform_now` there).
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = call()
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=target, name="activejob-perform-now")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")
