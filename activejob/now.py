"""`perform_now`: run a job in the caller, with no database, firing the same signals."""

from __future__ import annotations

import asyncio
import threading
import traceback
from functools import partial
from typing import Any

import anyio
from pydantic import BaseModel

from . import clock
from .context import JobContext
from .dispatch import emit_local
from .enqueuing import is_async


class _LocalContext(JobContext):
    """Reports go straight to the signals, as they happen."""

    def __init__(self, cls: type, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cls = cls

    def on_report(self) -> None:
        progress, checkpoint, logs = self.take()
        base = {"job_id": None, "name": self.name, "status": "running", "attempt": self.attempt,
                "queue": self.queue, "owner": self.owner, "at": clock.now(), "event_id": None}
        if progress is not None:
            emit_local("progress", self._cls, {**base, **progress})
        for entry in logs:
            emit_local("log", self._cls, {**base, **entry})
        if checkpoint is not None:
            emit_local("checkpoint", self._cls, {**base, "checkpoint": self.checkpoint_data})


def _start(cls: Any, owner: str | None) -> tuple[Any, dict[str, Any]]:
    opts = cls.options
    ctx = _LocalContext(cls, job_id=None, name=opts.name, attempt=1, queue=opts.queue, owner=owner)
    base = {"job_id": None, "name": opts.name, "attempt": 1, "queue": opts.queue, "owner": owner,
            "event_id": None}
    emit_local("started", cls, {**base, "status": "running", "at": clock.now()})
    return cls(ctx), base


def _end(cls: Any, base: dict[str, Any], error: BaseException | None, result: Any = None) -> None:
    if error is None:
        emit_local("completed", cls, {**base, "status": "completed", "result": result, "at": clock.now()})
    else:
        emit_local("failed", cls, {**base, "status": "failed", "error": f"{type(error).__name__}: {error}",
                                   "traceback": "".join(traceback.format_exception(error)), "at": clock.now()})


async def _call_async(instance: Any, args: BaseModel, timeout: float | None) -> Any:
    with anyio.fail_after(timeout):
        return await instance.perform(args)


def run_now(cls: Any, args: BaseModel, *, owner: str | None = None) -> Any:
    instance, base = _start(cls, owner)
    try:
        if is_async(cls.perform):
            call = partial(anyio.run, _call_async, instance, args, cls.options.timeout,
                           backend_options=clock.backend_options())
            result = _in_fresh_thread(call) if _loop_running() else call()
        else:
            result = instance.perform(args)
    except BaseException as error:
        _end(cls, base, error)
        raise
    _end(cls, base, None, result)
    return result


async def arun_now(cls: Any, args: BaseModel, *, owner: str | None = None) -> Any:
    instance, base = _start(cls, owner)
    try:
        if is_async(cls.perform):
            result = await _call_async(instance, args, cls.options.timeout)
        else:
            result = await anyio.to_thread.run_sync(instance.perform, args)
    except BaseException as error:
        _end(cls, base, error)
        raise
    _end(cls, base, None, result)
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
