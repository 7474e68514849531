"""Says when something holds up a worker's event loop, and where.

A blocking call in an `async def perform` (time.sleep, requests, a sync database driver)
stops every async job of the worker, its heartbeats and its claims; past the lease, other
workers take its jobs and run them again. Python says nothing of it. So a thread of the
worker asks the loop to answer four times a second; when it has not answered for
`BLOCKED_AFTER` seconds, the thread looks at the loop thread's stack while it is still held
and logs a warning naming the job whose `perform` is on it, and the line (which also goes
into that job's own history, as a line of its log). Sync jobs run on threads of their own
(lane.py) and cannot hold up the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from types import CodeType, FrameType
from typing import Any

from .execution import Running, job_class

log = logging.getLogger("activejob.worker")

BLOCKED_AFTER = 1.0
"""Seconds the loop may leave a call waiting before the worker warns: far above what any
step of a healthy worker takes (milliseconds), far below a lease."""


class LoopWatch:
    """Watches the event loop it is made on (`start()` there; `stop()` when the worker stops).
    `jobs()` gives the worker's jobs in flight."""

    def __init__(self, jobs: Callable[[], Iterable[Running]], worker_id: str, lease: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._jobs, self._worker_id, self._lease = jobs, worker_id, lease
        self._answered = threading.Event()
        self._stopped = threading.Event()
        self._told: set[Any] = set()  # what a warning named already: a job (id, attempt) or a line
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="activejob-loop-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, and wait a moment for it: a stopped worker leaves no watch behind."""
        self._stopped.set()
        self._answered.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._answered.clear()
            try:
                self._loop.call_soon_threadsafe(self._answered.set)
            except RuntimeError:  # the loop closed
                return
            if not self._answered.wait(BLOCKED_AFTER) and not self._stopped.is_set():
                with contextlib.suppress(Exception):  # a look that fails must not end the watch
                    self._report()
                self._answered.wait()  # one warning a hold-up
            self._stopped.wait(BLOCKED_AFTER / 4)

    def _report(self) -> None:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None or self._answered.is_set():  # it answered as the wait ran out: not held now
            return
        stack = _stack(frame)
        culprit, at = _culprit(stack, [e for e in list(self._jobs()) if not e.sync])
        where = _where(at or stack[0])
        if at is not None and at is not stack[0]:
            where += f" (inside {_where(stack[0])})"
        past = f", and a job held past its lease ({self._lease:g}s) goes to another worker and runs again"
        if len(self._told) > 1000:  # (a long-lived worker: what was named long ago is let go)
            self._told.clear()
        if culprit is not None:
            key: Any = (culprit.job.id, culprit.job.attempts)
            if key in self._told:
                return
            self._told.add(key)
            # In the job's own history too (the dashboard's timeline, `activejob show`): the
            # context takes log lines from any thread, and the worker writes them once the
            # loop runs again, at the latest with the attempt's outcome.
            culprit.context.log(f"held up the worker's event loop for over {BLOCKED_AFTER:.0f}s: a blocking call in "
                                "`async def perform`?", where=where)
            log.warning("worker %s: %s #%s has held up the event loop for over %.0fs, at %s. A blocking call in "
                        "`async def perform` (time.sleep, requests, a sync database driver) stops every job of the "
                        "worker, its heartbeats and claims%s: make it `def perform`, or run the call with "
                        "`await anyio.to_thread.run_sync(...)`", self._worker_id, culprit.job.name, culprit.job.id,
                        BLOCKED_AFTER, where, past)
            return
        key = (stack[0].f_code, stack[0].f_lineno)
        if key in self._told:
            return
        self._told.add(key)
        log.warning("worker %s: code outside any job's perform has held up the event loop for over %.0fs, at %s: "
                    "every job of the worker, its heartbeats and claims wait%s", self._worker_id, BLOCKED_AFTER,
                    where, past)


def _stack(frame: FrameType) -> list[FrameType]:
    """The frames from the innermost out."""
    frames = []
    current: FrameType | None = frame
    while current is not None:
        frames.append(current)
        current = current.f_back
    return frames


def _culprit(stack: list[FrameType], jobs: list[Running]) -> tuple[Running | None, FrameType | None]:
    """The async job whose `perform` is on the stack, and its innermost frame there."""
    codes: dict[CodeType, Running] = {}
    for entry in jobs:
        for code in _perform_codes(job_class(entry.job)):
            codes[code] = entry
    for frame in stack:
        if frame.f_code in codes:
            return codes[frame.f_code], frame
    return None, None


def _perform_codes(cls: type | None) -> list[CodeType]:
    """The code of a job type's `perform`, and of what it wraps (a decorator, job_class.py's
    wrapper of `perform(self)`)."""
    method = getattr(cls, "perform", None)
    codes: list[CodeType] = []
    while method is not None and len(codes) < 10:  # (a __wrapped__ that loops)
        code = getattr(method, "__code__", None)
        if code is not None:
            codes.append(code)
        method = getattr(method, "__wrapped__", None)
    return codes


def _where(frame: FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
